// What idsyncd counts, per peer and table, and its rendering in Prometheus text format 0.0.4.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>

// One (peer, table) pair. Counters only grow; the gauges hold the latest pass.
struct PairStats {
    uint64_t attempts = 0;
    uint64_t successes = 0;
    uint64_t failures = 0;
    uint64_t no_change = 0;
    uint64_t hashmatch = 0;
    uint64_t bulk = 0;
    uint64_t diff = 0;
    uint64_t diff_capped = 0;
    uint64_t rows_sent = 0;
    uint64_t rejects = 0;          // rows the peer parked in idsync.rejects
    uint64_t corrected_points = 0; // the peer's point for us was beyond any we issued
    uint64_t echoes_avoided = 0;   // rows the peer wrote itself, not sent back to it
    uint64_t schema_drift = 0;     // passes that skipped the table: its shape differs on the peer
    bool drifted = false;          // gauge: the latest pass found the shapes different
    double pass_seconds = 0;       // gauge: duration of the latest pass of this pair
    int64_t lag_points = -1;       // gauge: local max point minus what the peer has; -1 unknown
    // Wall-clock times (Unix seconds; 0: never, or none): the end of the latest successful pass;
    // the start of the latest pass that left the peer with every change of this node, and
    // whether a pass since found it lacking some; the oldest rows parked on the peer.
    double last_success_time = 0;
    double caught_up_time = 0;
    bool behind = false;
    double oldest_reject_time = 0;
    double oldest_waiting_time = 0;
    // The latest pass: when it ended (0: none yet), its mode (no_change, hashmatch, bulk, diff;
    // none when it failed before choosing one) and outcome (success, diff_capped, failure).
    double last_pass_time = 0;
    std::string last_mode;
    std::string last_outcome;
};

struct PeerStats {
    uint64_t connect_failures = 0;
    bool up = false;            // the latest connection attempt or call succeeded
    double backoff_seconds = 0; // the delay before the next attempt, while the peer is failing
    uint64_t change_passes = 0; // passes started by changes here, of the changed tables only
};

class Metrics {
public:
    PairStats &pair(const std::string &peer, const std::string &table)
    {
        return pairs_[{peer, table}];
    }
    PeerStats &peer(const std::string &name) { return peers_[name]; }
    void set_local_up(bool up) { local_up_ = up; }
    // The conflict records kept on the local node for `table` (idsync.conflicts).
    void set_conflict_records(const std::string &table, int64_t count)
    {
        conflict_records_[table] = count;
    }
    bool local_up() const { return local_up_; }
    // A notification of a changed table arrived (LISTEN idsync_changes).
    void count_notification() { notifications_++; }
    // Drops a peer that left the configuration.
    void forget_peer(const std::string &name);
    // Prometheus text exposition format 0.0.4: HELP and TYPE lines, then one sample per pair.
    // Ages are taken at `now` (Unix seconds; the wall clock when omitted).
    std::string render() const;
    std::string render(double now) const;

private:
    std::map<std::pair<std::string, std::string>, PairStats> pairs_;
    std::map<std::string, PeerStats> peers_;
    bool local_up_ = false;
    uint64_t notifications_ = 0;
    std::map<std::string, int64_t> conflict_records_;
};
