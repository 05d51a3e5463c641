// Change-driven passes: LISTEN idsync_changes on the local database. The content trigger of
// every registered table notifies on that channel when a statement changed it (the payload is
// the table's schema-qualified name; PostgreSQL delivers it at commit, once per transaction and
// table); the replicator then starts a pass of those tables to each peer at once, while
// `interval` stays the period of the full check.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "pg_connection.hpp"
#include "task.hpp"
#include "uv_util.hpp"

class ChangeListener {
public:
    // on_change: a notification named `table`; on_relisten: the listener connected again, so
    // the notifications sent while it was away are lost.
    ChangeListener(uv_loop_t *loop, std::function<void(const std::string &table)> on_change,
                   std::function<void()> on_relisten, std::function<void()> on_finished);
    // Listens until stop(); connects again (every `retry` seconds) when the connection fails.
    void start(const std::string &dsn, double conn_timeout, double retry);
    // A reloaded DSN takes effect at the next connection.
    void update(const std::string &dsn, double conn_timeout, double retry);
    void stop();
    bool finished() const { return finished_; }

private:
    Task<void> run();

    uv_loop_t *loop_;
    std::function<void(const std::string &)> on_change_;
    std::function<void()> on_relisten_;
    std::function<void()> on_finished_;
    std::string dsn_;
    double conn_timeout_ = 1;
    double retry_ = 1;
    std::unique_ptr<PgConnection> conn_;
    Sleeper sleeper_;
    bool stopping_ = false;
    bool finished_ = true;
};
