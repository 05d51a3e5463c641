#include "ctl_status.hpp"

#include <nlohmann/json.hpp>

#include "ctl_connection.hpp"
#include "log.hpp"
#include "uv_util.hpp"

namespace {

namespace sql {

constexpr const char *node_id = "SELECT idsync.node_id()::text";
constexpr const char *commit_timestamps =
    "SELECT pg_catalog.current_setting('track_commit_timestamp')::boolean::text";
constexpr const char *tables =
    "SELECT t.table_name, t.mode, r.point_column, COALESCE(r.version_column, '') "
    "FROM idsync.replicated_tables() t JOIN idsync.tables r ON r.relid = t.target "
    "ORDER BY t.depth, t.table_name";
constexpr const char *local_state =
    "SELECT s.max_point, s.row_count, s.content_hash FROM idsync.sync_info($1::regclass) s";
constexpr const char *peer_state =
    "SELECT s.row_count, s.content_hash, idsync.get_sync($1::regclass, $2::uuid) "
    "FROM idsync.sync_info($1::regclass) s";
constexpr const char *parked =
    "SELECT count(*) FILTER (WHERE r.sqlstate <> '23503'), "
    "count(*) FILTER (WHERE r.sqlstate = '23503'), "
    "extract(epoch FROM now() - min(r.rejected_at)) FROM idsync.rejects r "
    "WHERE r.relid = $1::regclass";

} // namespace sql

std::string quoted(const std::string &name)
{
    std::string out = "\"";
    for (char c : name) {
        out += c;
        if (c == '"')
            out += '"';
    }
    return out + "\"";
}

Parked read_parked(CtlConnection &db, const std::string &table)
{
    PgResult r = db.query(sql::parked, {table});
    Parked parked;
    parked.rejected = r.int64(0, 0);
    parked.waiting = r.int64(0, 1);
    if (!r.is_null(0, 2))
        parked.oldest_seconds = std::stod(r.text(0, 2));
    return parked;
}

void read_local(CtlConnection &db, StatusReport &report)
{
    report.node_id = db.query(sql::node_id).text(0, 0);
    report.commit_timestamps = db.query(sql::commit_timestamps).text(0, 0) == "true";
    PgResult tables = db.query(sql::tables);
    for (int i = 0; i < tables.rows(); i++) {
        LocalTable t;
        t.name = tables.text(i, 0);
        t.mode = tables.text(i, 1);
        t.point_column = tables.text(i, 2);
        t.version_column = tables.text(i, 3);
        PgResult state = db.query(sql::local_state, {t.name});
        t.max_point = state.int64(0, 0);
        t.rows = state.int64(0, 1);
        t.content_hash = state.text(0, 2);
        t.parked = read_parked(db, t.name);
        report.tables.push_back(std::move(t));
    }
}

// This node's rows of `t` the peer has not merged: after its sync point, up to the stable
// point, not written by the peer itself (those never go back to it).
void read_lag(CtlConnection &local, const StatusReport &report, const LocalTable &t,
              const std::string &peer_node, PeerTable &out)
{
    out.lag_points = std::max<int64_t>(0, t.max_point - std::max<int64_t>(out.merged_point, 0));
    if (t.max_point <= out.merged_point)
        return;
    // Rows, and in lww tables the tombstones of deleted rows (idsync.tombstones): both changes.
    std::string point = "c." + quoted(t.point_column);
    std::string rows = " FROM " + t.name + " c WHERE " + point + " > $1 AND " + point +
                       " <= $2 AND c.idsync_origin IS DISTINCT FROM $3::uuid";
    bool lww = !t.version_column.empty();
    std::string tombstones = " FROM idsync.tombstones g WHERE g.relid = $4::regclass AND g.point "
                             "> $1 AND g.point <= $2 AND g.origin IS DISTINCT FROM $3::uuid";
    PgParams params{std::to_string(out.merged_point), std::to_string(t.max_point), peer_node};
    if (lww)
        params.push_back(t.name);
    std::string cap = std::to_string(kLagRowsCap + 1);
    PgResult count = local.query(
        "SELECT count(*) FROM ((SELECT 1" + rows + " LIMIT " + cap + ")" +
            (lww ? " UNION ALL (SELECT 1" + tombstones + " LIMIT " + cap + ")" : "") + ") x",
        params);
    out.lag_rows = std::min(count.int64(0, 0), kLagRowsCap);
    out.lag_rows_capped = count.int64(0, 0) > kLagRowsCap;
    if (out.lag_rows == 0)
        return;
    // When the oldest of them was written: its commit time when this node tracks commit
    // timestamps, else its lww version (a clock reading); insert_only rows carry no time.
    std::string when = report.commit_timestamps ? "pg_xact_commit_timestamp(c.xmin)" : "NULL";
    std::string query = "SELECT at FROM ((SELECT " + point + " AS p, ";
    if (lww)
        when = "COALESCE(" + when + ", idsync.hlc_time(c." + quoted(t.version_column) + "))";
    query += "extract(epoch FROM now() - " + when + ") AS at" + rows + " ORDER BY " + point +
             " LIMIT 1)";
    if (lww) {
        std::string gone = report.commit_timestamps ? "pg_xact_commit_timestamp(g.xmin)" : "NULL";
        query += " UNION ALL (SELECT g.point, extract(epoch FROM now() - COALESCE(" + gone +
                 ", idsync.hlc_time(g.version)))" + tombstones + " ORDER BY g.point LIMIT 1)";
    }
    PgResult oldest = local.query(query + ") x ORDER BY p LIMIT 1", params);
    if (oldest.rows() > 0 && !oldest.is_null(0, 0))
        out.lag_seconds = std::max(0.0, std::stod(oldest.text(0, 0)));
}

PeerStatus read_peer(const Config &config, const PeerConfig &peer, CtlConnection &local,
                     const StatusReport &report)
{
    PeerStatus status;
    status.name = peer.name;
    CtlConnection db("peer " + peer.name, peer.dsn, config.conn_timeout, config.node_timeout);
    if (!db.connected()) {
        status.error = db.error();
        return status;
    }
    try {
        status.node_id = db.query(sql::node_id).text(0, 0);
        status.reachable = true;
    } catch (const PgError &e) {
        status.error = e.what();
        return status;
    }
    for (const LocalTable &t : report.tables) {
        PeerTable out;
        out.name = t.name;
        try {
            PgResult state = db.query(sql::peer_state, {t.name, report.node_id});
            out.rows = state.int64(0, 0);
            out.in_sync = out.rows == t.rows && state.text(0, 1) == t.content_hash;
            out.merged_point = state.int64(0, 2);
            out.parked = read_parked(db, t.name);
            read_lag(local, report, t, status.node_id, out);
        } catch (const PgError &e) {
            out.error = e.what();
            if (e.connection_lost && e.connection == db.label()) {
                status.reachable = false;
                status.error = e.what();
            }
        }
        status.tables.push_back(std::move(out));
    }
    return status;
}

// "diff/success 3s ago", or "-".
std::string last_pass_text(const StatusReport &report, const std::optional<LastPass> &pass)
{
    if (!pass)
        return "-";
    return strprintf("%s/%s %.0fs ago", pass->mode.c_str(), pass->outcome.c_str(),
                     std::max(0.0, report.now - pass->time));
}

std::string age(const std::optional<double> &seconds)
{
    return seconds ? strprintf("%.0f", *seconds) : "-";
}

nlohmann::json parked_json(const Parked &p)
{
    return {{"rejected", p.rejected},
            {"waiting", p.waiting},
            {"oldest_seconds", p.oldest_seconds ? nlohmann::json(*p.oldest_seconds) : nullptr}};
}

} // namespace

bool StatusReport::all_in_sync() const
{
    if (!local_reachable)
        return false;
    for (const PeerStatus &peer : peers) {
        if (!peer.reachable)
            return false;
        for (const PeerTable &t : peer.tables)
            if (!t.in_sync || !t.error.empty())
                return false;
    }
    return true;
}

StatusReport collect_status(const Config &config)
{
    StatusReport report;
    CtlConnection local("local", config.local_dsn, config.conn_timeout, config.node_timeout);
    if (!local.connected()) {
        report.local_error = local.error();
        return report;
    }
    try {
        read_local(local, report);
        report.local_reachable = true;
    } catch (const PgError &e) {
        report.local_error = e.what();
        return report;
    }
    for (const PeerConfig &peer : config.peers)
        report.peers.push_back(read_peer(config, peer, local, report));
    // The latest passes, when idsyncd runs and its metrics listener is on.
    report.now = wall_seconds();
    std::optional<std::string> metrics =
        fetch_metrics(config.metrics_listen, std::min(1.0, config.node_timeout));
    report.daemon_answered = metrics.has_value();
    LastPasses passes = parse_last_passes(metrics.value_or(""));
    for (PeerStatus &peer : report.peers)
        for (PeerTable &t : peer.tables) {
            auto found = passes.find({peer.name, t.name});
            if (found != passes.end())
                t.last_pass = found->second;
        }
    return report;
}

std::string status_text(const StatusReport &report)
{
    if (!report.local_reachable)
        return "local database unreachable: " + report.local_error + "\n";
    std::string out = strprintf("node %s: %zu tables, %zu peers\n", report.node_id.c_str(),
                                report.tables.size(), report.peers.size());
    for (const LocalTable &t : report.tables)
        if (t.parked.rejected > 0 || t.parked.waiting > 0)
            out += strprintf("parked here: %s: %lld rejected, %lld waiting, oldest %s s\n",
                             t.name.c_str(), static_cast<long long>(t.parked.rejected),
                             static_cast<long long>(t.parked.waiting),
                             age(t.parked.oldest_seconds).c_str());
    if (!report.daemon_answered)
        out += "idsyncd's metrics listener did not answer: no LAST_PASS\n";
    out += strprintf("%-12s %-32s %-10s %10s %10s %9s %9s %9s  %s\n", "PEER", "TABLE", "STATE",
                     "ROWS", "LAG_ROWS", "LAG_S", "REJECTED", "WAITING", "LAST_PASS");
    for (const PeerStatus &peer : report.peers) {
        if (!peer.reachable) {
            out += strprintf("%-12s %-32s unreachable: %s\n", peer.name.c_str(), "-",
                             peer.error.c_str());
            continue;
        }
        for (const PeerTable &t : peer.tables) {
            if (!t.error.empty()) {
                out += strprintf("%-12s %-32s error: %s\n", peer.name.c_str(), t.name.c_str(),
                                 t.error.c_str());
                continue;
            }
            out += strprintf("%-12s %-32s %-10s %10lld %9lld%s %9s %9lld %9lld  %s\n",
                             peer.name.c_str(), t.name.c_str(), t.in_sync ? "in sync" : "differs",
                             static_cast<long long>(t.rows), static_cast<long long>(t.lag_rows),
                             t.lag_rows_capped ? "+" : " ", age(t.lag_seconds).c_str(),
                             static_cast<long long>(t.parked.rejected),
                             static_cast<long long>(t.parked.waiting),
                             last_pass_text(report, t.last_pass).c_str());
        }
    }
    return out;
}

std::string status_json(const StatusReport &report)
{
    nlohmann::json j;
    j["in_sync"] = report.all_in_sync();
    j["local"] = {{"reachable", report.local_reachable}};
    if (!report.local_reachable) {
        j["local"]["error"] = report.local_error;
        return j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    }
    j["local"]["node_id"] = report.node_id;
    j["daemon_answered"] = report.daemon_answered;
    j["local"]["tables"] = nlohmann::json::array();
    for (const LocalTable &t : report.tables)
        j["local"]["tables"].push_back({{"table", t.name},
                                        {"mode", t.mode},
                                        {"rows", t.rows},
                                        {"content_hash", t.content_hash},
                                        {"max_point", t.max_point},
                                        {"parked", parked_json(t.parked)}});
    j["peers"] = nlohmann::json::array();
    for (const PeerStatus &peer : report.peers) {
        nlohmann::json p = {{"name", peer.name}, {"reachable", peer.reachable}};
        if (!peer.error.empty())
            p["error"] = peer.error;
        if (peer.reachable)
            p["node_id"] = peer.node_id;
        p["tables"] = nlohmann::json::array();
        for (const PeerTable &t : peer.tables) {
            nlohmann::json row = {{"table", t.name}, {"in_sync", t.in_sync}};
            if (!t.error.empty()) {
                row["error"] = t.error;
            } else {
                row["rows"] = t.rows;
                row["merged_point"] = t.merged_point;
                row["lag_points"] = t.lag_points;
                row["lag_rows"] = t.lag_rows;
                row["lag_rows_capped"] = t.lag_rows_capped;
                row["lag_seconds"] = t.lag_seconds ? nlohmann::json(*t.lag_seconds) : nullptr;
                row["parked"] = parked_json(t.parked);
                row["last_pass"] = nullptr;
                if (t.last_pass)
                    row["last_pass"] = {
                        {"mode", t.last_pass->mode},
                        {"outcome", t.last_pass->outcome},
                        {"seconds_ago", std::max(0.0, report.now - t.last_pass->time)}};
            }
            p["tables"].push_back(row);
        }
        j["peers"].push_back(p);
    }
    return j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}
