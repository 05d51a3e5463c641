// One libpq connection driven by libuv: non-blocking connect, queries, COPY in and out. Each
// wait has a deadline; a query past it is cancelled (PQcancel, on libuv's thread pool since it
// blocks), and a connection whose cancel gets no answer is closed.
#pragma once

#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include <libpq-fe.h>
#include <uv.h>

#include "task.hpp"
#include "uv_util.hpp"

// A failed call. connection_lost: the connection is unusable (closed, broken, timed out
// unanswered); otherwise the server refused this statement and the session is still usable.
class PgError : public std::runtime_error {
public:
    PgError(const std::string &message, std::string sqlstate, bool connection_lost,
            std::string connection = "")
        : std::runtime_error(message), sqlstate(std::move(sqlstate)),
          connection_lost(connection_lost), connection(std::move(connection))
    {
    }
    std::string sqlstate;
    bool connection_lost;
    std::string connection; // the label of the connection that failed (PgConnection::label)
    std::string where;      // the server function that raised it (PG_DIAG_SOURCE_FUNCTION)
};

// Owns a PGresult.
class PgResult {
public:
    PgResult() = default;
    explicit PgResult(PGresult *result) : result_(result, PQclear) {}
    int rows() const { return result_ ? PQntuples(result_.get()) : 0; }
    bool is_null(int row, int column) const { return PQgetisnull(result_.get(), row, column); }
    std::string text(int row, int column) const { return PQgetvalue(result_.get(), row, column); }
    int64_t int64(int row, int column) const; // NULL reads as -1
    PGresult *get() const { return result_.get(); }

private:
    std::shared_ptr<PGresult> result_;
};

using PgParams = std::vector<std::optional<std::string>>;

class PgConnection {
public:
    // label names the connection in messages ("local", "peer b"); the DSN is never printed.
    PgConnection(uv_loop_t *loop, std::string label, std::string dsn, double conn_timeout,
                 double node_timeout);
    ~PgConnection();
    PgConnection(const PgConnection &) = delete;

    const std::string &label() const { return label_; }
    const std::string &dsn() const { return dsn_; }
    void set_timeouts(double conn_timeout, double node_timeout);
    bool connected() const { return conn_ && PQstatus(conn_) == CONNECTION_OK; }
    // The server's version as a number (150004), 0 when not connected.
    int server_version() const { return conn_ ? PQserverVersion(conn_) : 0; }
    // Idle: connected, no transaction open, no COPY in progress.
    bool idle() const;

    // Connects unless connected; throws PgError (connection_lost) on failure or timeout.
    Task<void> connect();
    // Runs one statement with text parameters; returns its result or throws PgError.
    // timeout: seconds without an answer before the call is cancelled; 0 means node_timeout.
    // A statement with parameters is prepared on the connection the first time it runs there,
    // so that the server parses and plans it once (the passes run the same ones again and
    // again); one whose plan no longer fits (an upgrade changed what it calls: 0A000) is
    // prepared again the next time. Behind a pooler that loses them (transaction pooling),
    // none are prepared.
    Task<PgResult> query_params(std::string sql, PgParams params, double timeout = 0);
    // query(sql, "a", b, ...): text parameters $1, $2, ... (The list is built here, outside the
    // coroutine: GCC 12 cannot keep an initializer list's array in a coroutine frame.)
    template <typename... Params> Task<PgResult> query(std::string sql, const Params &...params)
    {
        return query_params(std::move(sql), PgParams{std::string(params)...});
    }

    // COPY ... TO STDOUT: start it, then read rows until read_copy returns false.
    Task<void> copy_out_begin(std::string sql) { return copy_begin(std::move(sql), true); }
    // Appends the next rows (up to about 64 kB) to `out`; false at the end of the data, when
    // `out` may still hold the last rows.
    Task<bool> copy_out_read(std::string &out);
    // COPY ... FROM STDIN: start it, send data (waits while the socket is full: flow control),
    // then end it; end_copy_in returns the COPY's result or throws.
    Task<void> copy_in_begin(std::string sql) { return copy_begin(std::move(sql), false); }
    Task<void> copy_in_send(const std::string &data);
    Task<PgResult> copy_in_end();

    // After LISTEN: the payloads of the notifications that arrive within `seconds` (none when
    // the time passes first); throws PgError when the connection is lost.
    Task<std::vector<std::string>> wait_notifications(double seconds);

    // Closes the connection now; a coroutine waiting on it resumes with a PgError.
    void close();

private:
    enum class Woken { ready, timeout, closed };
    Task<void> copy_begin(std::string sql, bool out);
    // Waits until the socket is ready for `events` or `seconds` pass.
    Task<Woken> wait_socket(int events, double seconds);
    // Sends what libpq holds; with a full socket, waits (this is the flow control of COPY IN).
    Task<void> flush();
    // Waits for input until `deadline`; past it, sends a cancel once and waits a little more.
    Task<void> wait_input(double &deadline, bool &cancelled);
    Task<PgResult> collect_results(bool stop_at_copy, double timeout);
    Task<void> send_cancel();
    void close_poll();
    // Closes the connection and throws `what` (a format with one %g for seconds). Errors are
    // built outside the coroutines: GCC 12 miscompiled a coroutine that threw a formatted
    // message from inside a loop (it never started).
    [[noreturn]] void give_up(const char *what, double seconds, const char *sqlstate);
    [[noreturn]] void raise(const PgResult &error, bool cancelled, double limit);
    [[noreturn]] void fail(const std::string &what, const char *sqlstate = "08006");
    static bool pooled(const PgError &error);
    static void on_poll(uv_poll_t *handle, int status, int events);
    // Reads what the server sent and moves the notifications' payloads to `out`.
    void take_notifications(std::vector<std::string> &out);

    uv_loop_t *loop_;
    std::string label_;
    std::string dsn_;
    double conn_timeout_;
    double node_timeout_;
    PGconn *conn_ = nullptr;
    uv_poll_t *poll_ = nullptr; // watches poll_fd_; re-made when libpq's socket changes
    int poll_fd_ = -1;
    Timer timer_;
    Waiter waiter_;
    Woken woken_ = Woken::ready;
    bool cancel_pending_ = false; // a cancel runs on the thread pool and will resume us
    std::shared_ptr<bool> alive_; // lets a cancel finishing on the thread pool see we are gone
    // The statements prepared on this connection (text -> name), forgotten when it closes.
    std::unordered_map<std::string, std::string> statements_;
    unsigned long next_statement_ = 0;
    bool unprepared_ = false; // a pooler mixed up prepared statements: none on this connection
    // Statement names: a random prefix per connection object (a pooler shares server sessions
    // between clients and keeps their statements; a reused pid must not find its names there).
    std::string statement_prefix_;
};

// A libpq message on one line (libpq ends messages with newlines and may have several).
std::string one_line(const char *message);
