#include "pg_connection.hpp"

#include <algorithm>
#include <cstdlib>
#include <random>

#include "log.hpp"

namespace {

// Past a deadline the query is cancelled; this is how long the cancel gets to take effect
// before the connection is given up.
constexpr double cancel_grace_seconds = 5;
// COPY OUT hands rows over in chunks of about this size.
constexpr size_t copy_chunk_bytes = 64 * 1024;
// Statements prepared per connection at most (the daemon runs a few dozen texts per table).
constexpr size_t max_prepared = 1024;

} // namespace

std::string one_line(const char *message)
{
    std::string text = message ? message : "";
    while (!text.empty() && (text.back() == '\n' || text.back() == ' '))
        text.pop_back();
    std::string out;
    for (char c : text) {
        if (c == '\n')
            out += "; ";
        else
            out += c;
    }
    return out.empty() ? "unknown error" : out;
}

int64_t PgResult::int64(int row, int column) const
{
    if (is_null(row, column))
        return -1;
    return std::strtoll(PQgetvalue(result_.get(), row, column), nullptr, 10);
}

PgConnection::PgConnection(uv_loop_t *loop, std::string label, std::string dsn, double conn_timeout,
                           double node_timeout)
    : loop_(loop), label_(std::move(label)), dsn_(std::move(dsn)), conn_timeout_(conn_timeout),
      node_timeout_(node_timeout), timer_(loop), alive_(std::make_shared<bool>(true))
{
    std::random_device random;
    statement_prefix_ = strprintf("idsyncd_%08x%08x_", random(), random());
}

PgConnection::~PgConnection()
{
    *alive_ = false;
    close_poll();
    if (conn_)
        PQfinish(conn_);
}

void PgConnection::set_timeouts(double conn_timeout, double node_timeout)
{
    conn_timeout_ = conn_timeout;
    node_timeout_ = node_timeout;
}

bool PgConnection::idle() const
{
    return connected() && PQtransactionStatus(conn_) == PQTRANS_IDLE;
}

void PgConnection::close_poll()
{
    if (!poll_)
        return;
    uv_poll_stop(poll_);
    poll_->data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t *>(poll_),
             [](uv_handle_t *handle) { delete reinterpret_cast<uv_poll_t *>(handle); });
    poll_ = nullptr;
    poll_fd_ = -1;
}

void PgConnection::close()
{
    close_poll();
    if (conn_) {
        PQfinish(conn_); // the server rolls back whatever was open
        conn_ = nullptr;
    }
    statements_.clear();
    timer_.stop();
    cancel_pending_ = false;
    if (waiter_.waiting()) {
        woken_ = Woken::closed;
        waiter_.resume();
    }
}

void PgConnection::fail(const std::string &what, const char *sqlstate)
{
    std::string message = label_ + ": " + what;
    if (conn_)
        message += ": " + one_line(PQerrorMessage(conn_));
    close();
    throw PgError(message, sqlstate, true, label_);
}

void PgConnection::on_poll(uv_poll_t *handle, int, int)
{
    auto *self = static_cast<PgConnection *>(handle->data);
    if (!self)
        return;
    // A poll error (status < 0) is left for libpq to find on its next read or write.
    uv_poll_stop(handle);
    self->timer_.stop();
    self->woken_ = Woken::ready;
    self->waiter_.resume();
}

Task<PgConnection::Woken> PgConnection::wait_socket(int events, double seconds)
{
    if (!conn_)
        throw PgError(label_ + ": connection closed", "08003", true, label_);
    // libpq may switch sockets while connecting (another host or address); one poll handle
    // per socket, made again when it changes.
    int fd = PQsocket(conn_);
    if (fd != poll_fd_) {
        close_poll();
        poll_ = new uv_poll_t;
        if (int rc = uv_poll_init(loop_, poll_, fd); rc != 0) {
            delete poll_;
            poll_ = nullptr;
            fail(std::string("cannot watch the socket: ") + uv_strerror(rc));
        }
        poll_->data = this;
        poll_fd_ = fd;
    }
    uv_poll_start(poll_, events, on_poll);
    timer_.start(std::max(seconds, 0.0), [this] {
        if (poll_)
            uv_poll_stop(poll_);
        woken_ = Woken::timeout;
        waiter_.resume();
    });
    woken_ = Woken::ready;
    co_await waiter_.wait();
    if (woken_ == Woken::closed)
        throw PgError(label_ + ": connection closed", "08003", true, label_);
    co_return woken_;
}

Task<void> PgConnection::connect()
{
    if (connected())
        co_return;
    close();
    // UTF-8 whatever the databases' encodings: rows and names pass from one node to another,
    // and the server converts. (A connection parameter, not `options`: poolers refuse that.)
    const char *keys[] = {"dbname", "fallback_application_name", "client_encoding", nullptr};
    const char *values[] = {dsn_.c_str(), "idsyncd", "UTF8", nullptr};
    conn_ = PQconnectStartParams(keys, values, 1);
    if (!conn_)
        throw PgError(label_ + ": cannot connect: out of memory", "08001", true, label_);
    if (PQstatus(conn_) == CONNECTION_BAD)
        fail("cannot connect", "08001");
    double deadline = monotonic_seconds() + conn_timeout_;
    PostgresPollingStatusType status = PGRES_POLLING_WRITING;
    while (status != PGRES_POLLING_OK) {
        if (status == PGRES_POLLING_FAILED)
            fail("cannot connect", "08001");
        int events = status == PGRES_POLLING_READING ? UV_READABLE : UV_WRITABLE;
        Woken woken = co_await wait_socket(events, deadline - monotonic_seconds());
        if (woken == Woken::timeout)
            give_up("cannot connect: no answer within %g s (conn_timeout)", conn_timeout_, "08001");
        status = PQconnectPoll(conn_);
    }
    if (PQsetnonblocking(conn_, 1) != 0)
        fail("cannot switch to non-blocking mode");
    // A pooler (PgBouncer) answers the startup with a process id of its own: behind it the
    // next statement may run in another server session, so nothing is prepared.
    PgResult pid = co_await query("SELECT pg_catalog.pg_backend_pid()");
    if (pid.int64(0, 0) != PQbackendPID(conn_))
        unprepared_ = true;
}

Task<void> PgConnection::flush()
{
    for (;;) {
        int rc = PQflush(conn_);
        if (rc == 0)
            co_return;
        if (rc < 0)
            fail("cannot send");
        Woken woken = co_await wait_socket(UV_WRITABLE | UV_READABLE, node_timeout_);
        if (woken == Woken::timeout)
            give_up("could not send for %g s (node_timeout)", node_timeout_, "08006");
        // The server may talk while we send (notices, an early error); libpq must read it.
        if (!PQconsumeInput(conn_))
            fail("connection lost");
    }
}

Task<void> PgConnection::send_cancel()
{
    PGcancel *cancel = PQgetCancel(conn_);
    if (!cancel)
        co_return;
    // PQcancel opens its own connection and blocks: run it on libuv's thread pool.
    struct Work {
        uv_work_t request;
        PGcancel *cancel;
        PgConnection *connection;
        std::shared_ptr<bool> alive;
        char error[256];
    };
    auto *work = new Work{{}, cancel, this, alive_, {0}};
    work->request.data = work;
    int rc = uv_queue_work(
        loop_, &work->request,
        [](uv_work_t *request) {
            auto *w = static_cast<Work *>(request->data);
            PQcancel(w->cancel, w->error, sizeof w->error);
        },
        [](uv_work_t *request, int) {
            auto *w = static_cast<Work *>(request->data);
            PQfreeCancel(w->cancel);
            PgConnection *connection = *w->alive ? w->connection : nullptr;
            delete w;
            if (connection && connection->cancel_pending_) {
                connection->cancel_pending_ = false;
                connection->waiter_.resume();
            }
        });
    if (rc != 0) {
        PQfreeCancel(cancel);
        delete work;
        co_return;
    }
    log_warning(strprintf("%s: no answer within %g s; cancelling the statement", label_.c_str(),
                          node_timeout_));
    cancel_pending_ = true;
    co_await waiter_.wait();
    if (!conn_)
        throw PgError(label_ + ": connection closed", "08003", true, label_);
}

Task<void> PgConnection::wait_input(double &deadline, bool &cancelled)
{
    Woken woken = co_await wait_socket(UV_READABLE, deadline - monotonic_seconds());
    while (woken == Woken::timeout) {
        if (cancelled)
            give_up("no answer within %g s (node_timeout), not even to a cancel request; "
                    "connection closed",
                    node_timeout_, "57014");
        cancelled = true;
        co_await send_cancel();
        deadline = monotonic_seconds() + cancel_grace_seconds;
        woken = co_await wait_socket(UV_READABLE, deadline - monotonic_seconds());
    }
    if (!PQconsumeInput(conn_))
        fail("connection lost");
}

void PgConnection::raise(const PgResult &error, bool cancelled, double limit)
{
    const char *state = PQresultErrorField(error.get(), PG_DIAG_SQLSTATE);
    std::string sqlstate = state ? state : "";
    std::string message = one_line(PQresultErrorMessage(error.get()));
    if (cancelled && sqlstate == "57014")
        message = strprintf("no answer within %g s, cancelled", limit);
    const char *function = PQresultErrorField(error.get(), PG_DIAG_SOURCE_FUNCTION);
    bool lost = PQstatus(conn_) != CONNECTION_OK;
    if (lost)
        close();
    PgError raised(label_ + ": " + message, sqlstate, lost, label_);
    raised.where = function ? function : "";
    throw raised;
}

void PgConnection::give_up(const char *what, double seconds, const char *sqlstate)
{
    close();
    throw PgError(label_ + ": " + strprintf(what, seconds), sqlstate, true, label_);
}

Task<PgResult> PgConnection::collect_results(bool stop_at_copy, double timeout)
{
    double limit = timeout > 0 ? timeout : node_timeout_;
    double deadline = monotonic_seconds() + limit;
    bool cancelled = false;
    PgResult last;
    PgResult error;
    for (;;) {
        while (PQisBusy(conn_))
            co_await wait_input(deadline, cancelled);
        PGresult *raw = PQgetResult(conn_);
        if (!raw)
            break;
        PgResult result(raw);
        ExecStatusType status = PQresultStatus(raw);
        if (status == PGRES_COPY_IN || status == PGRES_COPY_OUT) {
            if (stop_at_copy && !error.get())
                co_return result;
            fail("unexpected COPY state");
        }
        if (status == PGRES_FATAL_ERROR || status == PGRES_BAD_RESPONSE) {
            if (!error.get())
                error = result;
        } else {
            last = result;
        }
    }
    if (error.get())
        raise(error, cancelled, limit);
    co_return last;
}

// What a pooler in transaction mode does to prepared statements when it does not track them
// (PgBouncer before 1.21, or later with max_prepared_statements = 0): our statements land on any
// of its server connections, where ours is missing (26000) or another client's has its name
// (42P05). connect() looks for a pooler first; this is for one it did not see.
bool PgConnection::pooled(const PgError &error)
{
    return !error.connection_lost && (error.sqlstate == "26000" || error.sqlstate == "42P05");
}

Task<PgResult> PgConnection::query_params(std::string sql, PgParams params, double timeout)
{
    if (!connected())
        throw PgError(label_ + ": not connected", "08003", true, label_);
    std::vector<const char *> values;
    values.reserve(params.size());
    for (const auto &param : params)
        values.push_back(param ? param->c_str() : nullptr);
    int nparams = static_cast<int>(values.size());
    std::string name;
    if (nparams > 0 && !unprepared_) {
        auto known = statements_.find(sql);
        if (known != statements_.end()) {
            name = known->second;
        } else if (statements_.size() < max_prepared) {
            std::string fresh = statement_prefix_ + std::to_string(++next_statement_);
            if (!PQsendPrepare(conn_, fresh.c_str(), sql.c_str(), nparams, nullptr))
                fail("cannot send the query");
            co_await flush();
            bool prepared = true;
            try {
                co_await collect_results(false, timeout); // throws when the statement is refused
            } catch (const PgError &error) {
                if (!pooled(error))
                    throw;
                unprepared_ = true;
                if (PQtransactionStatus(conn_) == PQTRANS_INERROR)
                    throw; // (see below)
                prepared = false;
            }
            if (prepared) {
                statements_.emplace(sql, fresh);
                name = fresh;
            }
        }
    }
    bool sent = name.empty() ? PQsendQueryParams(conn_, sql.c_str(), nparams, nullptr,
                                                 values.data(), nullptr, nullptr, 0)
                             : PQsendQueryPrepared(conn_, name.c_str(), nparams, values.data(),
                                                   nullptr, nullptr, 0);
    if (!sent)
        fail("cannot send the query");
    co_await flush();
    PgResult result;
    bool again = false;
    try {
        result = co_await collect_results(false, timeout);
    } catch (const PgError &error) {
        if (name.empty())
            throw;
        // The plan's result changed under it (an upgrade replaced a function it calls):
        // prepared again next time. Other errors are the statement's, not the plan's: it
        // stays (forgetting it would leave one more statement in the session each time).
        if (error.sqlstate == "0A000" && error.where == "RevalidateCachedQuery")
            statements_.erase(sql);
        if (!pooled(error))
            throw;
        statements_.erase(sql);
        unprepared_ = true;
        // In a failed transaction block the statement cannot run again: the caller's
        // transaction fails with the pooler's error, and the next one runs unprepared.
        if (PQtransactionStatus(conn_) == PQTRANS_INERROR)
            throw;
        again = true;
    }
    if (again) { // (no co_await inside a catch handler)
        if (!PQsendQueryParams(conn_, sql.c_str(), nparams, nullptr, values.data(), nullptr,
                               nullptr, 0))
            fail("cannot send the query");
        co_await flush();
        result = co_await collect_results(false, timeout);
    }
    co_return result;
}

Task<void> PgConnection::copy_begin(std::string sql, bool out)
{
    if (!connected())
        throw PgError(label_ + ": not connected", "08003", true, label_);
    if (!PQsendQuery(conn_, sql.c_str()))
        fail("cannot send COPY");
    co_await flush();
    PgResult result = co_await collect_results(true, 0);
    if (PQresultStatus(result.get()) != (out ? PGRES_COPY_OUT : PGRES_COPY_IN))
        throw PgError(label_ + ": COPY did not start", "", false, label_);
}

Task<bool> PgConnection::copy_out_read(std::string &out)
{
    double deadline = monotonic_seconds() + node_timeout_;
    bool cancelled = false;
    for (;;) {
        char *buffer = nullptr;
        int size = PQgetCopyData(conn_, &buffer, 1);
        if (size > 0) {
            out.append(buffer, size);
            PQfreemem(buffer);
            if (out.size() >= copy_chunk_bytes)
                co_return true;
            continue;
        }
        if (size == 0) {
            // Nothing buffered: hand over what we have before waiting for the network.
            if (!out.empty())
                co_return true;
            co_await wait_input(deadline, cancelled);
            continue;
        }
        if (size == -1) {
            co_await collect_results(false, 0); // throws if the COPY failed
            co_return false;                    // the caller still sends what `out` holds
        }
        fail("COPY TO STDOUT failed");
    }
}

Task<void> PgConnection::copy_in_send(const std::string &data)
{
    for (;;) {
        int rc = PQputCopyData(conn_, data.data(), static_cast<int>(data.size()));
        if (rc == 1)
            break;
        if (rc < 0)
            fail("COPY FROM STDIN failed");
        co_await flush(); // 0: libpq's buffer is full; drain it and try again
    }
    // Wait until libpq's buffer is on the wire: memory stays bounded by one chunk per peer.
    co_await flush();
}

Task<PgResult> PgConnection::copy_in_end()
{
    for (;;) {
        int rc = PQputCopyEnd(conn_, nullptr);
        if (rc == 1)
            break;
        if (rc < 0)
            fail("cannot end COPY FROM STDIN");
        co_await flush();
    }
    co_await flush();
    co_return co_await collect_results(false, 0);
}

void PgConnection::take_notifications(std::vector<std::string> &out)
{
    if (!PQconsumeInput(conn_))
        fail("lost while listening");
    while (PGnotify *notify = PQnotifies(conn_)) {
        out.emplace_back(notify->extra ? notify->extra : "");
        PQfreemem(notify);
    }
}

Task<std::vector<std::string>> PgConnection::wait_notifications(double seconds)
{
    std::vector<std::string> payloads;
    if (!connected())
        fail("not connected", "08003");
    take_notifications(payloads);
    if (!payloads.empty())
        co_return payloads;
    Woken woken = co_await wait_socket(UV_READABLE, seconds);
    if (woken == Woken::ready)
        take_notifications(payloads);
    co_return payloads;
}
