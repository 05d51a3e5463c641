#include "change_listener.hpp"

#include "log.hpp"

namespace sql {
constexpr const char *listen = "LISTEN idsync_changes";
} // namespace sql

ChangeListener::ChangeListener(uv_loop_t *loop, std::function<void(const std::string &)> on_change,
                               std::function<void()> on_relisten, std::function<void()> on_finished)
    : loop_(loop), on_change_(std::move(on_change)), on_relisten_(std::move(on_relisten)),
      on_finished_(std::move(on_finished)), sleeper_(loop)
{
}

void ChangeListener::start(const std::string &dsn, double conn_timeout, double retry)
{
    update(dsn, conn_timeout, retry);
    finished_ = false;
    spawn(run(), [this](std::exception_ptr) {
        finished_ = true;
        on_finished_();
    });
}

void ChangeListener::update(const std::string &dsn, double conn_timeout, double retry)
{
    dsn_ = dsn;
    conn_timeout_ = conn_timeout;
    retry_ = retry;
}

void ChangeListener::stop()
{
    stopping_ = true;
    sleeper_.wake();
    if (conn_)
        conn_->close();
}

Task<void> ChangeListener::run()
{
    bool reported = false; // one log line per outage
    bool listened = false; // a connection listened before this one
    while (!stopping_) {
        bool failed = false;
        try {
            if (!conn_ || conn_->dsn() != dsn_ || !conn_->connected()) {
                conn_ = std::make_unique<PgConnection>(loop_, "local database (changes)", dsn_,
                                                       conn_timeout_, 10);
                co_await conn_->connect();
                co_await conn_->query(sql::listen);
                if (reported)
                    log_info("listening for changes again");
                reported = false;
                if (listened)
                    on_relisten_();
                listened = true;
            }
            std::vector<std::string> tables = co_await conn_->wait_notifications(60);
            for (const std::string &table : tables)
                on_change_(table);
        } catch (const PgError &error) {
            if (!stopping_ && !reported)
                log_warning(std::string(error.what()) +
                            "; passes run every interval until it is back");
            failed = true;
        }
        // (No co_await inside a catch handler: C++ forbids it.)
        if (failed && !stopping_) {
            reported = true;
            if (conn_)
                conn_->close();
            co_await sleeper_.sleep(retry_);
        }
    }
    conn_.reset();
}
