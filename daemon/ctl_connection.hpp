// idsyncctl's connections: blocking libpq, since a command-line tool has nothing else to do
// while it waits. Each has a connect timeout and a statement timeout, and pins search_path, so
// that nothing planted in a schema of the role's path runs.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <libpq-fe.h>

#include "pg_connection.hpp"

class CtlConnection {
public:
    // label names the node in messages ("local", "peer b"); the DSN is never printed.
    CtlConnection(std::string label, const std::string &dsn, double conn_timeout,
                  double statement_timeout);
    ~CtlConnection();
    CtlConnection(const CtlConnection &) = delete;
    CtlConnection &operator=(const CtlConnection &) = delete;

    bool connected() const;
    const std::string &label() const { return label_; }
    // Why the connection failed (one line), when it did.
    const std::string &error() const { return error_; }
    // Runs one statement with text parameters; throws PgError.
    PgResult query(const std::string &sql, const PgParams &params = {});
    // A handle that cancels this connection's running statement from another thread (taken in
    // the thread that uses the connection; PQfreeCancel it), and the cancel itself.
    PGcancel *cancel_handle() const;
    static void cancel(PGcancel *handle);

private:
    std::string label_;
    std::string error_;
    PGconn *conn_ = nullptr;
};
