// The daemon: one Peer per configured peer, each on its own schedule (a pass every interval,
// backing off when unreachable, so a dead peer never delays the others), at most `concurrency`
// passes at once; signals (SIGTERM/SIGINT stop, SIGHUP reloads) and the metrics endpoint.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <random>
#include <string>

#include <uv.h>

#include "change_listener.hpp"
#include "config.hpp"
#include "follow_ups.hpp"
#include "http.hpp"
#include "metrics.hpp"
#include "pass_summary.hpp"
#include "pg_connection.hpp"
#include "task.hpp"
#include "uv_util.hpp"

class Replicator;

class Peer {
public:
    Peer(Replicator &owner, const PeerConfig &config, const std::string &local_dsn);
    const std::string &name() const { return config_.name; }
    // Starts the peer's loop: one pass with --once, else passes forever after a random delay.
    void start(bool once, double first_delay);
    // Finishes the table in flight (a bulk copy is rolled back), then ends.
    void stop();
    // Closes both connections now: the servers roll back whatever was in flight.
    void abort();
    // A reloaded configuration; new DSNs take effect at the start of the next pass.
    void update(const PeerConfig &config, const std::string &local_dsn);
    // A transaction changed `table` here (a notification): pass it to the peer soon (at once,
    // unless the peer is backed off or a pass is running; then right after), and keep passing
    // it until the transactions that skipped their notification are covered.
    void changed(const std::string &table);
    // Every table counts as notified (notifications were lost while the listener was away).
    void changed_every();
    bool finished() const { return finished_; }
    const PassSummary &last_pass() const { return last_pass_; }

private:
    Task<void> run(bool once, double first_delay);
    // A pass of every registered table, or only of those in `only` (a change-driven pass).
    Task<PassSummary> pass(std::shared_ptr<const Config> config, const std::set<std::string> *only);
    void count(const std::string &table, const TableOutcome &outcome, double seconds);
    void note_drift(const std::string &table, const std::string &drift);

    Replicator &owner_;
    PeerConfig config_;
    std::string local_dsn_;
    std::unique_ptr<PgConnection> local_;
    std::unique_ptr<PgConnection> remote_;
    Sleeper sleeper_;
    bool stopping_ = false;
    bool finished_ = false;
    int failures_ = 0;              // consecutive passes that could not reach the peer
    int local_failures_ = 0;        // consecutive passes that could not use the local database
    std::set<std::string> changed_; // tables changed since the last pass took them
    FollowUps follow_ups_;          // notified tables to pass again (follow_ups.hpp)
    std::map<std::string, std::string> drifts_; // tables skipped for schema drift, and why
    bool wakeable_ = false;                     // sleeping until the next pass, not backing off
    PassSummary last_pass_;
};

class Replicator {
public:
    Replicator(uv_loop_t *loop, const Config &config, bool once);
    ~Replicator();
    // Runs until stopped (or, with --once, until every peer had its pass); the exit status.
    int run();

    // For the peers.
    uv_loop_t *loop() const { return loop_; }
    std::shared_ptr<const Config> config() const { return config_; }
    Metrics &metrics() { return metrics_; }
    Semaphore &slots() { return slots_; }
    double random01();
    void peer_finished();

private:
    static void on_signal(uv_signal_t *handle, int signum);
    void stop(const char *why);
    void reload();
    void listen_metrics();
    void finish();
    std::string unhealthy() const;
    void on_change(const std::string &table);
    void on_relisten();

    uv_loop_t *loop_;
    std::shared_ptr<const Config> config_;
    bool once_;
    bool stopping_ = false;
    Metrics metrics_;
    Semaphore slots_;
    std::mt19937_64 random_;
    std::map<std::string, std::unique_ptr<Peer>> peers_;
    std::vector<std::unique_ptr<Peer>> retired_; // removed by a reload, finishing their pass
    std::unique_ptr<HttpServer> http_;
    ListenAddress listening_;
    uv_signal_t *signals_[3] = {};
    Timer deadline_;    // bounds the shutdown
    Timer finisher_;    // runs finish() outside of a peer's own callbacks
    PassSummary total_; // --once: every peer's pass
    ChangeListener listener_;
    double started_ = 0;
};
