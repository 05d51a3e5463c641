#include "ctl_compare.hpp"

#include <algorithm>
#include <chrono>
#include <atomic>
#include <exception>
#include <map>
#include <mutex>
#include <stdexcept>
#include <thread>

#include <nlohmann/json.hpp>

#include "ctl_connection.hpp"
#include "log.hpp"
#include "schema_shape.hpp"

namespace {

constexpr const char *sync_state =
    "SELECT s.row_count, s.content_hash, s.node_id::text, $1::regclass::text "
    "FROM idsync.sync_info($1::regclass) s";
constexpr const char *buckets_query =
    "SELECT b.bucket, b.row_count, b.hash1, b.hash2 FROM idsync.compare_buckets($1::regclass, "
    "$2::integer, $3::integer[]) b";
constexpr const char *rows_query =
    "SELECT r.key_hash::text, r.row_hash::text, r.key::text, r.item::text, r.origin::text "
    "FROM idsync.compare_rows($1::regclass, $2::integer[], $3::integer) r";
constexpr const char *recompute_query = "SELECT idsync._recompute_content_state($1::regclass)";
constexpr const char *merge_query =
    "SELECT m.received, m.inserted, m.updated, m.unchanged, m.rejected "
    "FROM idsync.merge_items($1::regclass, $2::jsonb, $3::uuid) m";

// The bucket bits of each level: 256 buckets, then 16 sub-buckets per level down to 65,536.
constexpr int kLevels[] = {8, 12, 16};
// Rows per bucket below which the rows themselves are cheaper to read than another level.
constexpr int64_t kRowsPerBucket = 32;
// The statement timeout of compare and repair: the first level reads the whole table on each
// node, which takes longer than node_timeout allows a replication query on a big table.
constexpr double kScanTimeout = 3600;
// Items per merge_items call of a repair.
constexpr size_t kRepairBatch = 1000;

struct Bucket {
    int64_t rows = 0;
    std::string hash;
};

struct Row {
    std::string row_hash, key, item, origin;
};

std::string int_array(const std::vector<int> &values)
{
    std::string out = "{";
    for (size_t i = 0; i < values.size(); i++)
        out += (i ? "," : "") + std::to_string(values[i]);
    return out + "}";
}

const PeerConfig &find_peer(const Config &config, const std::string &peer)
{
    for (const PeerConfig &p : config.peers)
        if (p.name == peer)
            return p;
    throw std::invalid_argument("no peer named \"" + peer + "\" in " + config.path);
}

// The content hash of a table as sync_info prints it, from its buckets (the XOR of theirs).
std::string xor_of(const std::map<int, Bucket> &buckets)
{
    uint64_t h1 = 0, h2 = 0;
    for (const auto &[bucket, b] : buckets) {
        size_t slash = b.hash.find('/');
        h1 ^= static_cast<uint64_t>(std::stoll(b.hash.substr(0, slash)));
        h2 ^= static_cast<uint64_t>(std::stoll(b.hash.substr(slash + 1)));
    }
    return strprintf("%016llx%016llx", static_cast<unsigned long long>(h1),
                     static_cast<unsigned long long>(h2));
}

struct Comparison {
    CompareReport &report;
    CtlConnection &local;
    CtlConnection &remote;
    std::string kept_here, kept_there; // the kept content hashes (sync_info)

    std::mutex counting;

    PgResult query(CtlConnection &db, const char *sql, const PgParams &params)
    {
        PgResult result = db.query(sql, params);
        std::lock_guard<std::mutex> hold(counting);
        report.round_trips++;
        report.rows_read += result.rows();
        return result;
    }

    // f(local) and f(remote) at once (each connection used by one thread): each node reads its
    // table while the other does. When one fails, the other's statement is cancelled.
    template <class F> auto on_both(F f) -> std::pair<decltype(f(local)), decltype(f(local))>
    {
        decltype(f(local)) here, there;
        std::exception_ptr failed;
        PGcancel *cancel_local = local.cancel_handle();
        PGcancel *cancel_remote = remote.cancel_handle();
        auto free_handles = [&] {
            if (cancel_local)
                PQfreeCancel(cancel_local);
            if (cancel_remote)
                PQfreeCancel(cancel_remote);
        };
        // The first failure is the one reported, not the other side's cancellation.
        std::atomic<bool> one_failed{false};
        bool local_first = false;
        std::thread other([&] {
            try {
                here = f(local);
            } catch (...) {
                failed = std::current_exception();
                local_first = !one_failed.exchange(true);
                CtlConnection::cancel(cancel_remote);
            }
        });
        std::exception_ptr failed_here;
        try {
            there = f(remote);
        } catch (...) {
            failed_here = std::current_exception();
            if (!one_failed.exchange(true))
                CtlConnection::cancel(cancel_local);
        }
        other.join();
        free_handles();
        if (failed && (local_first || !failed_here))
            std::rethrow_exception(failed);
        if (failed_here)
            std::rethrow_exception(failed_here);
        return {std::move(here), std::move(there)};
    }

    std::map<int, Bucket> buckets(CtlConnection &db, int bits, const std::vector<int> *parents)
    {
        PgParams params{report.table, std::to_string(bits),
                        parents ? std::optional<std::string>(int_array(*parents)) : std::nullopt};
        PgResult result = query(db, buckets_query, params);
        std::map<int, Bucket> out;
        for (int i = 0; i < result.rows(); i++)
            out[static_cast<int>(result.int64(i, 0))] = {
                result.int64(i, 1), result.text(i, 2) + "/" + result.text(i, 3)};
        return out;
    }

    std::map<std::string, Row> rows(CtlConnection &db, int bits, const std::vector<int> &which)
    {
        PgResult result =
            query(db, rows_query, {report.table, int_array(which), std::to_string(bits)});
        std::map<std::string, Row> out;
        for (int i = 0; i < result.rows(); i++)
            out[result.text(i, 0)] = {result.text(i, 1), result.text(i, 2), result.text(i, 3),
                                      result.text(i, 4)};
        return out;
    }
};

// The differing rows, level by level.
void find_differences(Comparison &c)
{
    CompareReport &report = c.report;
    std::vector<int> differing; // buckets of the previous level that differ
    int bits = 0;
    for (size_t level = 0; level < std::size(kLevels); level++) {
        bits = kLevels[level];
        report.levels.push_back(bits);
        const std::vector<int> *parents = level == 0 ? nullptr : &differing;
        auto [here, there] =
            c.on_both([&](CtlConnection &db) { return c.buckets(db, bits, parents); });
        if (level == 0) {
            report.stale_here = xor_of(here) != c.kept_here;
            report.stale_there = xor_of(there) != c.kept_there;
        }
        std::vector<int> next;
        int64_t rows = 0;
        for (const auto &[bucket, b] : here) {
            auto other = there.find(bucket);
            if (other == there.end() || other->second.hash != b.hash ||
                other->second.rows != b.rows) {
                next.push_back(bucket);
                rows += std::max(b.rows, other == there.end() ? 0 : other->second.rows);
            }
        }
        for (const auto &[bucket, b] : there)
            if (!here.count(bucket)) {
                next.push_back(bucket);
                rows += b.rows;
            }
        std::sort(next.begin(), next.end());
        differing = std::move(next);
        // Few rows per differing bucket: read them rather than another level.
        if (differing.empty() ||
            rows <= kRowsPerBucket * static_cast<int64_t>(differing.size()) * 2)
            break;
    }
    if (differing.empty())
        return;
    report.differing_buckets = static_cast<int>(differing.size());
    auto [here, there] = c.on_both([&](CtlConnection &db) { return c.rows(db, bits, differing); });
    for (const auto &[key_hash, row] : here) {
        auto other = there.find(key_hash);
        if (other == there.end())
            report.differences.push_back({row.key, "missing_there", row.item, "", row.origin, ""});
        else if (other->second.row_hash != row.row_hash)
            report.differences.push_back({row.key, "different", row.item, other->second.item,
                                          row.origin, other->second.origin});
    }
    for (const auto &[key_hash, row] : there)
        if (!here.count(key_hash))
            report.differences.push_back({row.key, "missing_here", "", row.item, "", row.origin});
    std::sort(report.differences.begin(), report.differences.end(),
              [](const Difference &a, const Difference &b) { return a.key < b.key; });
}

CompareReport run_compare(const Config &config, CtlConnection &local, CtlConnection &remote,
                          const std::string &table, const std::string &peer)
{
    auto started = std::chrono::steady_clock::now();
    CompareReport report;
    report.peer = peer;
    report.table = table;
    Comparison c{report, local, remote};
    // Each node is read in one REPEATABLE READ transaction: every level sees the same rows, and
    // the table is hashed once (compare_buckets keeps its buckets for the transaction).
    c.on_both([](CtlConnection &db) {
        db.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
        return 0;
    });
    PgResult mine = c.query(local, sync_state, {table});
    PgResult theirs = c.query(remote, sync_state, {table});
    report.table = mine.text(0, 3);
    report.local_node = mine.text(0, 2);
    report.peer_node = theirs.text(0, 2);
    c.kept_here = mine.text(0, 1);
    c.kept_there = theirs.text(0, 1);
    // Not the kept content hashes alone: rows changed with idsync's triggers off (what a compare
    // is for) leave them as they were. The rows are hashed afresh, once on each node.
    find_differences(c);
    c.on_both([](CtlConnection &db) {
        db.query("COMMIT");
        return 0;
    });
    (void)config;
    report.seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    return report;
}

// merge_items batches of `items` (JSON texts), in the name of `source`; adds the counts.
std::string send_items(CtlConnection &db, const std::string &table,
                       const std::vector<std::pair<std::string, std::string>> &items,
                       const std::string &source, const std::string &to)
{
    int64_t received = 0, inserted = 0, updated = 0, unchanged = 0, rejected = 0;
    for (size_t start = 0; start < items.size(); start += kRepairBatch) {
        // The items as the server printed them, not parsed and printed again here: a JSON
        // library would turn 1.10 into 1.1 (or round a long number), another row for the hash.
        // Point 0: the source's sync point there does not move past its real one (points start
        // at 1, and sync points only move up).
        std::string batch = "[";
        for (size_t i = start; i < std::min(items.size(), start + kRepairBatch); i++)
            batch += std::string(i > start ? "," : "") +
                     "{\"point\": 0, \"item\": " + items[i].first + ", \"origin\": " +
                     (items[i].second.empty() ? "null" : "\"" + items[i].second + "\"") + "}";
        batch += "]";
        PgResult r = db.query(merge_query, {table, batch, source});
        received += r.int64(0, 0);
        inserted += r.int64(0, 1);
        updated += r.int64(0, 2);
        unchanged += r.int64(0, 3);
        rejected += r.int64(0, 4);
    }
    return strprintf("sent %lld rows to %s: %lld inserted, %lld updated, %lld unchanged, %lld "
                     "parked\n",
                     static_cast<long long>(received), to.c_str(), static_cast<long long>(inserted),
                     static_cast<long long>(updated), static_cast<long long>(unchanged),
                     static_cast<long long>(rejected));
}

} // namespace

CompareReport compare_table(const Config &config, const std::string &table, const std::string &peer)
{
    const PeerConfig &p = find_peer(config, peer);
    CtlConnection local("local", config.local_dsn, config.conn_timeout, kScanTimeout);
    CtlConnection remote("peer " + peer, p.dsn, config.conn_timeout, kScanTimeout);
    return run_compare(config, local, remote, table, peer);
}

CompareReport repair_table(const Config &config, const std::string &table, const std::string &peer,
                           const std::string &peer_dsn, std::string *done)
{
    const PeerConfig &p = find_peer(config, peer);
    CtlConnection local("local", config.local_dsn, config.conn_timeout, kScanTimeout);
    CtlConnection remote("peer " + peer, peer_dsn.empty() ? p.dsn : peer_dsn, config.conn_timeout,
                         kScanTimeout);
    CompareReport before = run_compare(config, local, remote, table, peer);
    // Rows of a table whose shape differs would be parked there one by one (see idsyncd's
    // schema drift): refused until the shapes agree.
    std::string here_shape = local.query("SELECT " IDSYNC_TABLE_SHAPE, {table}).text(0, 0);
    std::string there_shape = remote.query("SELECT " IDSYNC_TABLE_SHAPE, {table}).text(0, 0);
    std::string outward = schema_drift(here_shape, there_shape);
    std::string inward = schema_drift(there_shape, here_shape); // worded as seen from the peer
    if (!outward.empty() || !inward.empty())
        throw std::runtime_error(
            before.table + " has another shape on " + peer + " (" +
            (outward.empty() ? "" : "rows from here: " + outward) +
            (outward.empty() || inward.empty() ? "" : "; ") +
            (inward.empty() ? "" : "rows from " + peer + ", as " + peer + " sees it: " + inward) +
            "): nothing was sent; make the schemas agree first");
    std::vector<std::pair<std::string, std::string>> to_peer, to_here;
    for (const Difference &d : before.differences) {
        if (!d.here.empty())
            to_peer.push_back({d.here, d.here_origin});
        if (!d.there.empty())
            to_here.push_back({d.there, d.there_origin});
    }
    *done = strprintf("%s: %zu differences with %s before the repair\n", before.table.c_str(),
                      before.differences.size(), peer.c_str());
    // Our rows go to the peer in our name (its peer role speaks for this node); the peer's
    // rows merge here in its name, which takes an administrator's connection here (--dsn).
    if (!to_peer.empty())
        *done += send_items(remote, before.table, to_peer, before.local_node, peer);
    if (!to_here.empty())
        *done += send_items(local, before.table, to_here, before.peer_node, "this node");
    CompareReport after = run_compare(config, local, remote, table, peer);
    // Same rows, but a kept content hash that is not theirs (rows changed with idsync's triggers
    // off): recomputed, so that the hashes agree again (and hashmatch passes can happen).
    if (after.differences.empty() && (after.stale_here || after.stale_there)) {
        if (after.stale_here) {
            local.query(recompute_query, {after.table});
            *done += "recomputed the kept content hash here\n";
        }
        if (after.stale_there && !peer_dsn.empty()) {
            remote.query(recompute_query, {after.table});
            *done += "recomputed the kept content hash on " + peer + "\n";
        } else if (after.stale_there) {
            *done += "the kept content hash on " + peer +
                     " is stale: recompute it there as an "
                     "administrator (--peer-dsn), or SELECT idsync._recompute_content_state('" +
                     after.table + "') there\n";
        }
        after = run_compare(config, local, remote, table, peer);
    }
    return after;
}

std::string compare_text(const CompareReport &report)
{
    int here = 0, there = 0, different = 0;
    for (const Difference &d : report.differences)
        (d.state == "missing_here" ? here : d.state == "missing_there" ? there : different)++;
    std::string levels;
    for (int bits : report.levels)
        levels += (levels.empty() ? "" : ", ") + std::to_string(bits);
    std::string out = strprintf(
        "%s on this node and on %s: %zu differences (%d missing here, %d missing on %s, %d "
        "different); read %lld rows in %d round trips (bucket levels: %s) in %.2f s\n",
        report.table.c_str(), report.peer.c_str(), report.differences.size(), here, there,
        report.peer.c_str(), different, static_cast<long long>(report.rows_read),
        report.round_trips, levels.empty() ? "none, equal hashes" : levels.c_str(), report.seconds);
    if (report.stale_here)
        out += "the content hash kept here is not what the rows hash to (rows changed with "
               "idsync's triggers off); repair recomputes it\n";
    if (report.stale_there)
        out += "the content hash kept on " + report.peer +
               " is not what its rows hash to; repair with --peer-dsn recomputes it\n";
    if (report.differences.empty())
        return out;
    out += strprintf("%-14s %s\n", "STATE", "KEY");
    for (const Difference &d : report.differences)
        out += strprintf("%-14s %s\n", d.state.c_str(), escape_log_text(d.key).c_str());
    return out;
}

std::string compare_json(const CompareReport &report)
{
    nlohmann::json differences = nlohmann::json::array();
    for (const Difference &d : report.differences)
        differences.push_back(
            {{"key", nlohmann::json::parse(d.key)},
             {"state", d.state},
             {"here", d.here.empty() ? nlohmann::json(nullptr) : nlohmann::json::parse(d.here)},
             {"there",
              d.there.empty() ? nlohmann::json(nullptr) : nlohmann::json::parse(d.there)}});
    nlohmann::json out = {{"table", report.table},
                          {"peer", report.peer},
                          {"differences", differences},
                          {"rows_read", report.rows_read},
                          {"round_trips", report.round_trips},
                          {"levels", report.levels},
                          {"stale_here", report.stale_here},
                          {"stale_there", report.stale_there},
                          {"changed_during_comparison", report.unsettled()},
                          {"seconds", report.seconds}};
    return out.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}
