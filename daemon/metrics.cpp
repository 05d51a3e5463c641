#include "metrics.hpp"

#include <cstdio>
#include <sstream>

namespace {

// Label values escape backslash, double quote and newline (exposition format 0.0.4).
std::string escape_label(const std::string &value)
{
    std::string out;
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

std::string number(double value)
{
    char text[32];
    snprintf(text, sizeof text, "%.6g", value);
    return text;
}

struct PairMetric {
    const char *name;
    const char *type;
    const char *help;
    // The sample of one pair, or false to leave it out.
    bool (*value)(const PairStats &, std::string &);
};

#define COUNTER(field, help_text)                                                                  \
    {                                                                                              \
        "idsyncd_" #field "_total", "counter", help_text,                                          \
            [](const PairStats &s, std::string &out) {                                             \
                out = std::to_string(s.field);                                                     \
                return true;                                                                       \
            }                                                                                      \
    }

const PairMetric pair_metrics[] = {
    COUNTER(attempts, "Table passes attempted."),
    COUNTER(successes, "Table passes that brought the peer up to date."),
    COUNTER(failures, "Table passes that failed."),
    COUNTER(no_change, "Passes that found the peer already had every change."),
    COUNTER(hashmatch, "Passes that found equal content hashes."),
    COUNTER(bulk, "Passes that copied the whole table (COPY into a staging table)."),
    COUNTER(diff, "Passes that sent batches of changes."),
    COUNTER(diff_capped, "Diff passes stopped at max_diffs batches with rows left."),
    COUNTER(rows_sent, "Rows sent to the peer."),
    COUNTER(rejects, "Rows the peer parked in idsync.rejects."),
    {"idsyncd_pass_duration_seconds", "gauge", "Duration of the latest pass.",
     [](const PairStats &s, std::string &out) {
         out = number(s.pass_seconds);
         return true;
     }},
    {"idsyncd_lag_points", "gauge",
     "Local max change point minus the point the peer has reached, at the latest pass.",
     [](const PairStats &s, std::string &out) {
         out = std::to_string(s.lag_points);
         return s.lag_points >= 0;
     }},
};

#undef COUNTER

void header(std::ostringstream &out, const char *name, const char *type, const char *help)
{
    out << "# HELP " << name << " " << help << "\n# TYPE " << name << " " << type << "\n";
}

} // namespace

void Metrics::forget_peer(const std::string &name)
{
    for (auto it = pairs_.begin(); it != pairs_.end();)
        it = it->first.first == name ? pairs_.erase(it) : std::next(it);
    peers_.erase(name);
}

std::string Metrics::render() const
{
    std::ostringstream out;
    for (const PairMetric &metric : pair_metrics) {
        header(out, metric.name, metric.type, metric.help);
        std::string value;
        for (const auto &[key, stats] : pairs_)
            if (metric.value(stats, value))
                out << metric.name << "{peer=\"" << escape_label(key.first) << "\",table=\""
                    << escape_label(key.second) << "\"} " << value << "\n";
    }
    header(out, "idsyncd_peer_up", "gauge", "1 if the latest connection to the peer worked.");
    for (const auto &[name, stats] : peers_)
        out << "idsyncd_peer_up{peer=\"" << escape_label(name) << "\"} " << (stats.up ? 1 : 0)
            << "\n";
    header(out, "idsyncd_peer_connect_failures_total", "counter",
           "Failed attempts to connect to the peer.");
    for (const auto &[name, stats] : peers_)
        out << "idsyncd_peer_connect_failures_total{peer=\"" << escape_label(name) << "\"} "
            << stats.connect_failures << "\n";
    header(out, "idsyncd_local_up", "gauge", "1 if the local database answered the latest pass.");
    out << "idsyncd_local_up " << (local_up_ ? 1 : 0) << "\n";
    return out.str();
}
