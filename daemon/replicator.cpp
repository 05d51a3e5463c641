#include "replicator.hpp"

#include <algorithm>
#include <csignal>

#include "backoff.hpp"
#include "log.hpp"

// ---------------------------------------------------------------------------------------------
// Peer
// ---------------------------------------------------------------------------------------------

Peer::Peer(Replicator &owner, const PeerConfig &config, const std::string &local_dsn)
    : owner_(owner), config_(config), local_dsn_(local_dsn), sleeper_(owner.loop())
{
}

void Peer::start(bool once, double first_delay)
{
    spawn(run(once, first_delay), [this](std::exception_ptr error) {
        if (error) {
            try {
                std::rethrow_exception(error);
            } catch (const std::exception &e) {
                log_error(strprintf("%s: %s", config_.name.c_str(), e.what()));
            }
        }
        finished_ = true;
        owner_.peer_finished();
    });
}

void Peer::stop()
{
    stopping_ = true;
    sleeper_.wake();
}

void Peer::abort()
{
    stop();
    if (local_)
        local_->close();
    if (remote_)
        remote_->close();
}

void Peer::update(const PeerConfig &config, const std::string &local_dsn)
{
    config_.dsn = config.dsn;
    config_.line = config.line;
    local_dsn_ = local_dsn;
}

// The shortest time between the starts of two change-driven passes to one peer.
constexpr double kChangeGap = 0.01;

void Peer::changed(const std::string &table)
{
    follow_ups_.notified(table, monotonic_seconds());
    // Only the first change wakes the peer: with changes pending, a pass is due within
    // kChangeGap anyway.
    bool first = changed_.empty();
    changed_.insert(table);
    if (first && wakeable_)
        sleeper_.wake();
}

void Peer::changed_every()
{
    follow_ups_.notified_every(monotonic_seconds());
    bool first = changed_.empty();
    if (first && wakeable_)
        sleeper_.wake();
}

void Peer::note_drift(const std::string &table, const std::string &drift)
{
    // One line when a table's drift appears or changes, one when it is gone.
    auto known = drifts_.find(table);
    if (drift.empty()) {
        if (known != drifts_.end()) {
            log_info(strprintf("schema drift of %s to %s resolved: replicating it again",
                               table.c_str(), config_.name.c_str()));
            drifts_.erase(known);
        }
        return;
    }
    if (known != drifts_.end() && known->second == drift)
        return;
    log_warning(strprintf("schema drift: %s is not sent to %s until its shapes agree: %s",
                          table.c_str(), config_.name.c_str(), drift.c_str()));
    drifts_[table] = drift;
}

void Peer::count(const std::string &table, const TableOutcome &outcome, double seconds)
{
    PairStats &stats = owner_.metrics().pair(config_.name, table);
    stats.attempts++;
    count_outcome(stats, outcome);
    stats.pass_seconds = seconds;
    if (outcome.lag >= 0)
        stats.lag_points = outcome.lag;
    double now = wall_seconds();
    double started = now - seconds; // when the preflight read the state below
    if (outcome.success)
        stats.last_success_time = now;
    stats.last_pass_time = now;
    if (outcome.parked_known) // else the shapes were not compared: the gauge stays
        stats.drifted = !outcome.drift.empty();
    bool drifted = !outcome.drift.empty();
    stats.last_outcome = drifted           ? "schema_drift"
                         : outcome.success ? "success"
                         : outcome.capped  ? "diff_capped"
                                           : "failure";
    stats.last_mode = !stats.drifted && (outcome.error.empty() || outcome.capped)
                          ? mode_name(outcome.mode)
                          : "none";
    if (outcome.success && outcome.lag == 0) {
        stats.caught_up_time = started;
        stats.behind = false;
    } else if (outcome.lag > 0) {
        stats.behind = true;
    }
    if (outcome.parked_known) {
        stats.oldest_reject_time =
            outcome.oldest_reject_age ? started - *outcome.oldest_reject_age : 0;
        stats.oldest_waiting_time =
            outcome.oldest_waiting_age ? started - *outcome.oldest_waiting_age : 0;
    }
}

Task<PassSummary> Peer::pass(std::shared_ptr<const Config> config,
                             const std::set<std::string> *only)
{
    PassSummary summary;
    double started = monotonic_seconds();
    // Connections follow the configuration: a changed DSN means a new connection.
    if (!local_ || local_->dsn() != local_dsn_)
        local_ = std::make_unique<PgConnection>(owner_.loop(), "local database", local_dsn_,
                                                config->conn_timeout, config->node_timeout);
    if (!remote_ || remote_->dsn() != config_.dsn)
        remote_ = std::make_unique<PgConnection>(owner_.loop(), "peer " + config_.name, config_.dsn,
                                                 config->conn_timeout, config->node_timeout);
    local_->set_timeouts(config->conn_timeout, config->node_timeout);
    remote_->set_timeouts(config->conn_timeout, config->node_timeout);

    std::vector<TableInfo> tables;
    PassStart start;
    try {
        co_await local_->connect();
        tables = co_await list_tables(*local_);
        std::vector<std::string> registered;
        for (const TableInfo &t : tables)
            registered.push_back(t.name);
        bool every = follow_ups_.begin_pass(registered);
        if (only != nullptr && !every)
            std::erase_if(tables, [only](const TableInfo &t) { return !only->count(t.name); });
        // The points we merged from other nodes, passed on to the peer once it has every row we
        // have (transitive sync); then the cut of the pass.
        start = co_await start_pass(*local_, tables);
        owner_.metrics().set_local_up(true);
        try {
            // On full passes only: change passes come up to a hundred times a second.
            std::map<std::string, int64_t> conflicts;
            if (only == nullptr)
                conflicts = co_await conflict_counts(*local_);
            for (const TableInfo &table : tables)
                if (only == nullptr)
                    owner_.metrics().set_conflict_records(table.name, conflicts[table.name]);
        } catch (const PgError &error) {
            if (error.connection_lost) // (idsync before 0.5.0 keeps no conflict records)
                throw;
        }
    } catch (const PgError &error) {
        owner_.metrics().set_local_up(!error.connection_lost);
        // Once per outage, not once per retry.
        if (!error.connection_lost || local_failures_ == 0)
            log_error(error.what());
        summary.unreachable = true;
        summary.local_down = error.connection_lost;
        summary.seconds = monotonic_seconds() - started;
        co_return summary;
    } catch (const std::exception &error) {
        // What the local database answered could not be read (a name that is not UTF-8, a
        // number out of range): this pass fails, and the next one is the next interval's (no
        // backoff: neither side is down).
        log_error(std::string("reading the local tables: ") + error.what());
        summary.broken = true;
        summary.seconds = monotonic_seconds() - started;
        co_return summary;
    }
    PeerStats &peer_stats = owner_.metrics().peer(config_.name);
    try {
        co_await remote_->connect();
        peer_stats.up = true;
    } catch (const PgError &error) {
        peer_stats.up = false;
        peer_stats.connect_failures++;
        log_error(error.what());
        TableOutcome failed;
        failed.error = error.what();
        for (const TableInfo &table : tables) {
            count(table.name, failed, 0);
            summary.add(failed);
        }
        summary.unreachable = true;
        summary.seconds = monotonic_seconds() - started;
        co_return summary;
    }

    PassContext context{*local_,
                        *remote_,
                        *config,
                        config_.name,
                        stopping_,
                        start.cut,
                        start.pass_on_syncs,
                        start.last_issued};
    for (const TableInfo &table : tables) {
        if (stopping_)
            break;
        double table_started = monotonic_seconds();
        TableOutcome outcome = co_await replicate_table(context, table);
        count(table.name, outcome, monotonic_seconds() - table_started);
        follow_ups_.settle(table.name, outcome.success, outcome.capped, started, start.cut,
                           start.last_issued);
        summary.add(outcome);
        if (outcome.parked_known) // the preflight ran: the shapes were compared
            note_drift(table.name, outcome.drift);
        if (outcome.stopped)
            log_info(strprintf("%s to %s: %s", table.name.c_str(), config_.name.c_str(),
                               outcome.error.c_str()));
        else if (!outcome.error.empty())
            log_error(strprintf("%s to %s failed: %s", table.name.c_str(), config_.name.c_str(),
                                outcome.error.c_str()));
        if (outcome.connection_lost) {
            summary.unreachable = true;
            if (outcome.local_lost) {
                summary.local_down = true;
                owner_.metrics().set_local_up(false);
            } else {
                peer_stats.up = remote_->connected();
            }
            break;
        }
    }
    summary.seconds = monotonic_seconds() - started;
    co_return summary;
}

Task<void> Peer::run(bool once, double first_delay)
{
    // Spread the first passes of many daemons and peers over the interval (Swift does too).
    wakeable_ = true;
    if (first_delay > 0)
        co_await sleeper_.sleep(first_delay);
    wakeable_ = false;
    double next_full = 0; // when the next pass of every table is due
    while (!stopping_) {
        co_await owner_.slots().acquire();
        std::shared_ptr<const Config> config = owner_.config();
        // Every table once per interval; in between, only the tables that changed.
        bool full =
            once || monotonic_seconds() >= next_full || (changed_.empty() && follow_ups_.empty());
        std::set<std::string> only;
        only.swap(changed_);
        follow_ups_.add_to(only);
        double started = monotonic_seconds();
        PassSummary summary;
        if (!stopping_)
            summary = co_await pass(config, full ? nullptr : &only);
        owner_.slots().release();
        last_pass_ = summary;
        PeerStats &peer_stats = owner_.metrics().peer(config_.name);
        if (!full)
            peer_stats.change_passes++;
        if (full && !summary.unreachable)
            next_full = started + config->interval;
        // A change pass stopped at max_diffs goes on with the next pass (one that failed waits
        // for the next full pass, so that a failing table cannot spin).
        if (!full && summary.diff_capped > 0 && !summary.unreachable)
            changed_.insert(only.begin(), only.end());
        bool quiet = !full && summary.quiet(); // a change pass that went well
        if ((summary.tables > 0 || (summary.unreachable && !summary.local_down)) && !quiet)
            log_info(summary.line(config_.name));
        else if (summary.tables > 0)
            log_debug(summary.line(config_.name));
        if (summary.local_down) {
            local_failures_++;
        } else if (local_failures_ > 0) {
            log_info(strprintf("%s: the local database is back after %d failed attempt%s",
                               config_.name.c_str(), local_failures_,
                               local_failures_ == 1 ? "" : "s"));
            local_failures_ = 0;
        }
        if (once || stopping_)
            break;
        double delay;
        if (summary.local_down) {
            // Our own database, not the peer: the peer is not backed off, and the pass is tried
            // again soon, so that the first one after the database returns runs at once.
            delay = std::min(config->backoff_base, config->interval);
            peer_stats.backoff_seconds = 0;
        } else if (summary.unreachable) {
            failures_++;
            delay = backoff_delay(failures_, config->backoff_base, config->backoff_max,
                                  owner_.random01());
            peer_stats.backoff_seconds = delay;
            log_info(strprintf("%s: unreachable %d time%s in a row; next attempt in %.1f s",
                               config_.name.c_str(), failures_, failures_ == 1 ? "" : "s", delay));
        } else {
            failures_ = 0;
            peer_stats.backoff_seconds = 0;
            // Changes that arrived during the pass go at once (at most one change pass per
            // kChangeGap: anyone who can connect may NOTIFY); else wait for the next change or
            // the next full pass.
            double next = std::min(next_full, follow_ups_.next_pass(started).value_or(next_full));
            if (!changed_.empty())
                next = started + kChangeGap;
            if (summary.broken) // what the local database answered could not be read
                next = next_full;
            delay = std::max(0.0, next - monotonic_seconds());
        }
        wakeable_ = !summary.unreachable || summary.local_down;
        co_await sleeper_.sleep(delay);
        wakeable_ = false;
    }
}

// ---------------------------------------------------------------------------------------------
// Replicator
// ---------------------------------------------------------------------------------------------

Replicator::Replicator(uv_loop_t *loop, const Config &config, bool once)
    : loop_(loop), config_(std::make_shared<const Config>(config)), once_(once),
      slots_(config.concurrency), random_(std::random_device{}()), deadline_(loop), finisher_(loop),
      listener_(
          loop, [this](const std::string &table) { on_change(table); }, [this] { on_relisten(); },
          [this] { peer_finished(); })
{
}

void Replicator::on_relisten()
{
    for (auto &[name, peer] : peers_)
        peer->changed_every();
}

void Replicator::on_change(const std::string &table)
{
    metrics_.count_notification();
    for (auto &[name, peer] : peers_)
        peer->changed(table);
}

Replicator::~Replicator() = default;

double Replicator::random01()
{
    return std::uniform_real_distribution<double>(0.0, 1.0)(random_);
}

int Replicator::run()
{
    started_ = monotonic_seconds();
    const int signums[3] = {SIGTERM, SIGINT, SIGHUP};
    for (int i = 0; i < 3; i++) {
        signals_[i] = new uv_signal_t;
        uv_signal_init(loop_, signals_[i]);
        signals_[i]->data = this;
        uv_signal_start(signals_[i], on_signal, signums[i]);
    }
    if (!once_) {
        listen_metrics();
        listener_.start(config_->local_dsn, config_->conn_timeout, config_->backoff_base);
    }
    log_info(strprintf("starting: %zu peer%s, interval %g s, per_diff %d, max_diffs %d%s",
                       config_->peers.size(), config_->peers.size() == 1 ? "" : "s",
                       config_->interval, config_->per_diff, config_->max_diffs,
                       once_ ? ", one pass (--once)" : ""));
    for (const PeerConfig &peer_config : config_->peers) {
        auto peer = std::make_unique<Peer>(*this, peer_config, config_->local_dsn);
        Peer *started = peer.get();
        peers_[peer_config.name] = std::move(peer);
        started->start(once_, once_ ? 0 : random01() * config_->interval);
    }
    if (peers_.empty())
        log_warning("no peers configured; waiting for a reload (SIGHUP) to add some");
    if (once_ && peers_.empty())
        finish();
    uv_run(loop_, UV_RUN_DEFAULT);

    if (!once_)
        return 0;
    total_.seconds = monotonic_seconds() - started_;
    size_t peers = config_->peers.size();
    std::string to = strprintf("%zu peer%s", peers, peers == 1 ? "" : "s");
    log_info(total_.line(to));
    return total_.complete() ? 0 : 1;
}

void Replicator::on_signal(uv_signal_t *handle, int signum)
{
    auto *self = static_cast<Replicator *>(handle->data);
    if (signum == SIGHUP)
        self->reload();
    else
        self->stop(signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

void Replicator::stop(const char *why)
{
    if (stopping_) {
        // A second signal: do not wait for the batch in flight.
        log_warning(
            strprintf("%s again: closing connections now (in-flight work rolls back)", why));
        for (auto &[name, peer] : peers_)
            peer->abort();
        for (auto &peer : retired_)
            peer->abort();
        return;
    }
    stopping_ = true;
    listener_.stop();
    double limit = config_->node_timeout + 5;
    log_info(strprintf("%s: stopping after the batches in flight (at most %g s)", why, limit));
    for (auto &[name, peer] : peers_)
        peer->stop();
    for (auto &peer : retired_)
        peer->stop();
    deadline_.start(limit, [this] {
        log_warning("shutdown deadline reached: closing connections (in-flight work rolls back)");
        for (auto &[name, peer] : peers_)
            peer->abort();
        for (auto &peer : retired_)
            peer->abort();
    });
    peer_finished();
}

void Replicator::reload()
{
    Config fresh;
    std::vector<ConfigError> errors;
    if (!load_config(config_->path, fresh, errors)) {
        for (const ConfigError &error : errors)
            log_error(error.str());
        log_error("SIGHUP: configuration not reloaded; the running one stays in effect");
        return;
    }
    if (stopping_)
        return;
    std::string added;
    std::string removed;
    for (auto it = peers_.begin(); it != peers_.end();) {
        bool kept = std::any_of(fresh.peers.begin(), fresh.peers.end(),
                                [&](const PeerConfig &p) { return p.name == it->first; });
        if (kept) {
            ++it;
            continue;
        }
        removed += (removed.empty() ? "" : ", ") + it->first;
        it->second->stop();
        metrics_.forget_peer(it->first);
        retired_.push_back(std::move(it->second));
        it = peers_.erase(it);
    }
    config_ = std::make_shared<const Config>(fresh);
    slots_.resize(fresh.concurrency);
    for (const PeerConfig &peer_config : fresh.peers) {
        auto found = peers_.find(peer_config.name);
        if (found != peers_.end()) {
            found->second->update(peer_config, fresh.local_dsn);
            continue;
        }
        added += (added.empty() ? "" : ", ") + peer_config.name;
        auto peer = std::make_unique<Peer>(*this, peer_config, fresh.local_dsn);
        Peer *started = peer.get();
        peers_[peer_config.name] = std::move(peer);
        started->start(false, 0);
    }
    listen_metrics();
    listener_.update(fresh.local_dsn, fresh.conn_timeout, fresh.backoff_base);
    log_info(strprintf("SIGHUP: configuration reloaded: %zu peer%s%s%s%s%s", peers_.size(),
                       peers_.size() == 1 ? "" : "s", added.empty() ? "" : "; added ",
                       added.c_str(), removed.empty() ? "" : "; removed ", removed.c_str()));
}

void Replicator::listen_metrics()
{
    const ListenAddress &wanted = config_->metrics_listen;
    if (http_ && wanted.enabled == listening_.enabled && wanted.host == listening_.host &&
        wanted.port == listening_.port)
        return;
    if (http_) {
        http_->close();
        http_.reset();
    }
    listening_ = wanted;
    if (!wanted.enabled)
        return;
    http_ = std::make_unique<HttpServer>(loop_, [this](const HttpRequest &request) {
        return route_request(request, metrics_.render(), unhealthy());
    });
    std::string error = http_->listen(wanted);
    if (!error.empty()) {
        log_error("metrics endpoint: " + error);
        http_.reset();
        listening_ = ListenAddress{};
        listening_.enabled = false;
        return;
    }
    log_info(strprintf("metrics on http://%s:%d/metrics", wanted.host.c_str(), wanted.port));
}

std::string Replicator::unhealthy() const
{
    if (stopping_)
        return "stopping";
    if (!metrics_.local_up() && monotonic_seconds() - started_ > config_->interval + 1)
        return "local database unreachable";
    return "";
}

void Replicator::peer_finished()
{
    // Runs in a peer's completion callback: decide outside of it.
    finisher_.start(0, [this] {
        for (auto it = retired_.begin(); it != retired_.end();)
            it = (*it)->finished() ? retired_.erase(it) : std::next(it);
        bool all_done = std::all_of(peers_.begin(), peers_.end(),
                                    [](const auto &entry) { return entry.second->finished(); });
        if (all_done && retired_.empty() && listener_.finished() && (stopping_ || once_))
            finish();
    });
}

void Replicator::finish()
{
    if (once_)
        for (auto &[name, peer] : peers_)
            total_.add(peer->last_pass());
    peers_.clear();
    retired_.clear();
    deadline_.stop();
    if (http_) {
        http_->close();
        http_.reset();
    }
    for (uv_signal_t *&signal : signals_) {
        if (!signal)
            continue;
        uv_close(reinterpret_cast<uv_handle_t *>(signal),
                 [](uv_handle_t *handle) { delete reinterpret_cast<uv_signal_t *>(handle); });
        signal = nullptr;
    }
    if (!once_)
        log_info("stopped");
}
