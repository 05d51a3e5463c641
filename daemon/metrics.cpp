#include "metrics.hpp"

#include "uv_util.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <optional>

namespace {

using Pairs = std::map<std::pair<std::string, std::string>, PairStats>;

// Label values escape backslash, double quote and newline (exposition format 0.0.4).
std::string escape_label(const std::string &value)
{
    std::string out;
    out.reserve(value.size());
    for (char c : value) {
        if (c == '\\')
            out += "\\\\";
        else if (c == '"')
            out += "\\\"";
        else if (c == '\n')
            out += "\\n";
        else
            out += c;
    }
    return out;
}

// Shortest text that reads back as the same double, independent of the locale; Prometheus spells
// the special values +Inf, -Inf and NaN.
std::string format_double(double value)
{
    if (std::isnan(value))
        return "NaN";
    if (std::isinf(value))
        return value > 0 ? "+Inf" : "-Inf";
    char text[32];
    auto result = std::to_chars(text, text + sizeof text, value);
    return std::string(text, result.ptr);
}

void header(std::string &out, const char *name, const char *type, const char *help)
{
    out += std::string("# HELP ") + name + " " + help + "\n";
    out += std::string("# TYPE ") + name + " " + type + "\n";
}

void sample(std::string &out, const char *name, const std::string &labels, const std::string &value)
{
    out += std::string(name) + labels + " " + value + "\n";
}

std::string peer_labels(const std::string &peer)
{
    return "{peer=\"" + escape_label(peer) + "\"}";
}

std::string pair_labels(const std::pair<std::string, std::string> &key)
{
    return "{peer=\"" + escape_label(key.first) + "\",table=\"" + escape_label(key.second) + "\"}";
}

struct PairCounter {
    const char *name;
    const char *help;
    uint64_t PairStats::*field;
};

const PairCounter pair_counters[] = {
    {"idsyncd_attempts_total", "Table passes attempted.", &PairStats::attempts},
    {"idsyncd_successes_total", "Table passes that brought the peer up to date.",
     &PairStats::successes},
    {"idsyncd_failures_total", "Table passes that failed.", &PairStats::failures},
    {"idsyncd_no_change_total", "Passes that found the peer already had every change.",
     &PairStats::no_change},
    {"idsyncd_hashmatch_total", "Passes that found equal content hashes.", &PairStats::hashmatch},
    {"idsyncd_bulk_total", "Passes that copied the whole table (COPY into a staging table).",
     &PairStats::bulk},
    {"idsyncd_diff_total", "Passes that sent batches of changes.", &PairStats::diff},
    {"idsyncd_diff_capped_total", "Diff passes stopped at max_diffs batches with rows left.",
     &PairStats::diff_capped},
    {"idsyncd_rows_sent_total", "Rows sent to the peer.", &PairStats::rows_sent},
    {"idsyncd_rejects_total", "Rows the peer parked in idsync.rejects.", &PairStats::rejects},
    {"idsyncd_sync_points_corrected_total",
     "Times the peer's sync point for this node was beyond any point this node issued, and was "
     "lowered.",
     &PairStats::corrected_points},
    {"idsyncd_echoes_avoided_total",
     "Rows not sent to the peer because the peer wrote them (no echo): their points only.",
     &PairStats::echoes_avoided},
    {"idsyncd_schema_drift_skips_total",
     "Passes that did not send the table: its columns, types, key or mode differ on the peer.",
     &PairStats::schema_drift},
};

// One metric family over every (peer, table) pair; `value` returns nothing to leave a pair out.
template <typename Value>
void pair_family(std::string &out, const Pairs &pairs, const char *name, const char *type,
                 const char *help, Value value)
{
    header(out, name, type, help);
    for (const auto &[key, stats] : pairs) {
        std::optional<std::string> text = value(stats);
        if (text)
            sample(out, name, pair_labels(key), *text);
    }
}

// The age at `now` of a wall-clock time; none for 0 (never).
std::optional<std::string> age_at(double now, double time)
{
    if (time <= 0)
        return std::nullopt;
    return format_double(std::max(0.0, now - time));
}

void render_pairs(std::string &out, const Pairs &pairs, double now)
{
    for (const PairCounter &counter : pair_counters)
        pair_family(out, pairs, counter.name, "counter", counter.help,
                    [&](const PairStats &s) -> std::optional<std::string> {
                        return std::to_string(s.*counter.field);
                    });
    pair_family(out, pairs, "idsyncd_pass_duration_seconds", "gauge",
                "Duration of the latest pass.",
                [](const PairStats &s) -> std::optional<std::string> {
                    return format_double(s.pass_seconds);
                });
    // An unknown lag (-1) is no sample at all, not a misleading number.
    pair_family(out, pairs, "idsyncd_lag_points", "gauge",
                "Local max change point minus the point the peer has reached, at the latest pass.",
                [](const PairStats &s) -> std::optional<std::string> {
                    if (s.lag_points < 0)
                        return std::nullopt;
                    return std::to_string(s.lag_points);
                });
    pair_family(out, pairs, "idsyncd_lag_seconds", "gauge",
                "0 while the peer holds every change of this node seen by the latest pass; "
                "else the seconds since the start of the latest pass after which it did (at "
                "least the age of the oldest change it lacks).",
                [now](const PairStats &s) -> std::optional<std::string> {
                    if (!s.behind)
                        return s.caught_up_time > 0 ? std::optional<std::string>("0")
                                                    : std::nullopt;
                    return age_at(now, s.caught_up_time);
                });
    // One sample per pair, its mode and outcome as labels.
    const char *last = "idsyncd_last_pass_timestamp_seconds";
    header(out, last, "gauge",
           "When the latest pass ended (Unix time); labelled with its mode and outcome.");
    for (const auto &[key, s] : pairs)
        if (s.last_pass_time > 0) {
            std::string labels = pair_labels(key);
            labels.pop_back();
            labels += ",mode=\"" + escape_label(s.last_mode) + "\",outcome=\"" +
                      escape_label(s.last_outcome) + "\"}";
            sample(out, last, labels, format_double(s.last_pass_time));
        }
    pair_family(out, pairs, "idsyncd_last_success_timestamp_seconds", "gauge",
                "When the latest successful pass ended (Unix time).",
                [](const PairStats &s) -> std::optional<std::string> {
                    if (s.last_success_time <= 0)
                        return std::nullopt;
                    return format_double(s.last_success_time);
                });
    pair_family(out, pairs, "idsyncd_schema_drift", "gauge",
                "1 while the table is not sent to the peer because their shapes differ (schema "
                "drift, logged once), at the latest pass; else 0.",
                [](const PairStats &s) -> std::optional<std::string> {
                    return std::string(s.drifted ? "1" : "0");
                });
    pair_family(out, pairs, "idsyncd_oldest_reject_seconds", "gauge",
                "Age of the oldest row the peer parked as refused (0: none), at the latest pass.",
                [now](const PairStats &s) -> std::optional<std::string> {
                    return age_at(now, s.oldest_reject_time).value_or("0");
                });
    pair_family(out, pairs, "idsyncd_oldest_waiting_seconds", "gauge",
                "Age of the oldest row waiting on the peer for a referenced row (0: none), at "
                "the latest pass.",
                [now](const PairStats &s) -> std::optional<std::string> {
                    return age_at(now, s.oldest_waiting_time).value_or("0");
                });
}

void render_peers(std::string &out, const std::map<std::string, PeerStats> &peers)
{
    header(out, "idsyncd_peer_up", "gauge", "1 if the latest connection to the peer worked.");
    for (const auto &[name, stats] : peers)
        sample(out, "idsyncd_peer_up", peer_labels(name), stats.up ? "1" : "0");
    header(out, "idsyncd_peer_connect_failures_total", "counter",
           "Failed attempts to connect to the peer.");
    for (const auto &[name, stats] : peers)
        sample(out, "idsyncd_peer_connect_failures_total", peer_labels(name),
               std::to_string(stats.connect_failures));
    header(out, "idsyncd_change_passes_total", "counter",
           "Passes started by a change here (LISTEN idsync_changes), of the changed tables only.");
    for (const auto &[name, stats] : peers)
        sample(out, "idsyncd_change_passes_total", peer_labels(name),
               std::to_string(stats.change_passes));
    header(out, "idsyncd_peer_backoff_seconds", "gauge",
           "Delay before the next attempt while the peer fails; 0 when it does not (an outage of "
           "the local database never backs a peer off).");
    for (const auto &[name, stats] : peers)
        sample(out, "idsyncd_peer_backoff_seconds", peer_labels(name),
               format_double(stats.backoff_seconds));
}

} // namespace

void Metrics::forget_peer(const std::string &name)
{
    // Keys sort by peer first, so the peer's pairs are one contiguous range.
    auto first = pairs_.lower_bound({name, std::string()});
    auto last = first;
    while (last != pairs_.end() && last->first.first == name)
        ++last;
    pairs_.erase(first, last);
    peers_.erase(name);
}

std::string Metrics::render() const
{
    return render(wall_seconds());
}

std::string Metrics::render(double now) const
{
    std::string out;
    render_pairs(out, pairs_, now);
    render_peers(out, peers_);
    header(out, "idsyncd_local_up", "gauge", "1 if the local database answered the latest pass.");
    sample(out, "idsyncd_local_up", "", local_up_ ? "1" : "0");
    header(out, "idsyncd_notifications_total", "counter",
           "Notifications of changed tables received from the local database (a session "
           "notifies a table at most once per 50 ms).");
    sample(out, "idsyncd_notifications_total", "", std::to_string(notifications_));
    header(out, "idsyncd_conflict_records", "gauge",
           "Conflict records kept on this node for the table (idsync.conflicts: lww versions "
           "that lost in a merge, for tables that record them), at the latest pass.");
    for (const auto &[table, count] : conflict_records_)
        sample(out, "idsyncd_conflict_records", "{table=\"" + escape_label(table) + "\"}",
               std::to_string(count));
    return out;
}
