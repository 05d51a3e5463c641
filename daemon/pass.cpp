#include "pass.hpp"

#include <algorithm>
#include <tuple>

#include <nlohmann/json.hpp>

#include "log.hpp"
#include "schema_shape.hpp"
#include "task_both.hpp"
#include "uv_util.hpp"

// The SQL of a pass, in one place. (Named constants, not literals inside co_await: GCC 12
// cannot keep string-literal temporaries in a coroutine frame.)
namespace sql {

constexpr const char *local_sync_info =
    "SELECT node_id, max_point, row_count, content_hash, rejects, " IDSYNC_TABLE_SHAPE " "
    "FROM idsync.sync_info($1::regclass, $2::bigint)";
// The peer also merges the rows that waited there for a referenced row which has arrived since
// (a merge in another session may have brought it).
constexpr const char *remote_sync_info =
    "SELECT s.node_id, s.max_point, s.row_count, s.content_hash, s.rejects, "
    "idsync.get_sync($1::regclass, $2::uuid), idsync.retry_waiting($1::regclass), "
    "(SELECT EXTRACT(epoch FROM pg_catalog.now() OPERATOR(pg_catalog.-) "
    "pg_catalog.min(r.rejected_at)) FROM idsync.rejects r WHERE r.relid OPERATOR(pg_catalog.=) "
    "$1::regclass AND r.sqlstate OPERATOR(pg_catalog.<>) '23503'), "
    "(SELECT EXTRACT(epoch FROM pg_catalog.now() OPERATOR(pg_catalog.-) "
    "pg_catalog.min(r.rejected_at)) FROM idsync.rejects r WHERE r.relid OPERATOR(pg_catalog.=) "
    "$1::regclass AND r.sqlstate OPERATOR(pg_catalog.=) '23503'), " IDSYNC_TABLE_SHAPE " "
    "FROM idsync.sync_info($1::regclass) s";
constexpr const char *raise_outgoing_point =
    "SELECT idsync.merge_syncs($1::regclass, jsonb_build_array(jsonb_build_object("
    "'remote_id', $2::uuid, 'sync_point', $3::bigint)), false)";
// The incoming points of each table of $1 (a JSON array of names), in its order: one round
// trip for all the tables of a pass.
constexpr const char *incoming_points =
    "SELECT (SELECT coalesce(jsonb_agg(jsonb_build_object('remote_id', g.remote_id, "
    "'sync_point', g.sync_point)), '[]')::text FROM idsync.get_syncs(t.name::regclass) g) "
    "FROM jsonb_array_elements_text($1::jsonb) WITH ORDINALITY t (name, n) ORDER BY t.n";
// Rows the peer wrote itself come back as their point alone (no echo): counted, not sent.
// With the keys the batch's items carry: a column added here since the preflight compared the
// shapes must not reach a peer that lacks it (schema_shape.hpp). The items up to $6 bytes (the
// first one whatever its size): the whole batch is one jsonb value (at most 256 MB) merged in
// one transaction; the last column says whether rows were left out for that.
constexpr const char *next_batch =
    "WITH a AS (SELECT s.*, sum(coalesce(pg_catalog.pg_column_size(s.item), 0)) OVER (ORDER BY "
    "s.point ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS upto, "
    "coalesce(pg_catalog.pg_column_size(s.item), 0) AS size FROM "
    "idsync.items_since($1::regclass, $2::bigint, $3::integer, $4::bigint, $5::uuid) s), "
    "i AS (SELECT a.point, a.item, a.origin FROM a WHERE a.upto OPERATOR(pg_catalog.<=) "
    "$6::bigint OR a.upto OPERATOR(pg_catalog.=) a.size) "
    "SELECT count(*), coalesce(max(i.point), -1), "
    "coalesce(jsonb_agg(i ORDER BY i.point), '[]')::text, count(*) FILTER (WHERE i.item IS NULL), "
    "(SELECT coalesce(jsonb_agg(DISTINCT k.k), '[]')::text FROM i, "
    "jsonb_object_keys(i.item) k (k) WHERE jsonb_typeof(i.item) = 'object'), "
    "count(*) OPERATOR(pg_catalog.<) (SELECT count(*) FROM a) FROM i";
// The tombstones of an lww table a bulk copy sends after its rows (none for insert_only tables).
constexpr const char *next_tombstones =
    "SELECT count(*), coalesce(max(i.point), -1), coalesce(jsonb_agg(i ORDER BY i.point), "
    "'[]')::text FROM idsync.tombstones_since($1::regclass, $2::bigint, $3::integer, $4::bigint, "
    "$5::uuid) i";
constexpr const char *merge_batch =
    "SELECT received, rejected FROM idsync.merge_items($1::regclass, $2::jsonb, $3::uuid)";
constexpr const char *merge_points = "SELECT idsync.merge_syncs($1::regclass, $2::jsonb)";
// Whether every column of a table is of a built-in type (OIDs below FirstNormalObjectId).
constexpr const char *builtin_types =
    "SELECT pg_catalog.bool_and(a.atttypid OPERATOR(pg_catalog.<) 16384) FROM "
    "pg_catalog.pg_attribute a WHERE a.attrelid OPERATOR(pg_catalog.=) $1::pg_catalog.regclass "
    "AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped";
constexpr const char *stable_point = "SELECT idsync.stable_point()";
constexpr const char *correct_point =
    "SELECT idsync.correct_sync($1::regclass, $2::uuid, $3::bigint)";
constexpr const char *last_point =
    "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM idsync.points";
constexpr const char *merge_staged =
    "SELECT received, rejected FROM idsync.merge_staged($1::regclass, "
    "'pg_temp.idsync_bulk'::regclass, $2::uuid, $3::bigint)";
constexpr const char *create_staging = "SELECT idsync.create_staging($1::regclass, 'idsync_bulk')";
constexpr const char *bulk_query = "SELECT idsync.bulk_query($1::regclass, $2::bigint, $3::uuid)";
constexpr const char *bulk_query_in_key_order =
    "SELECT idsync.bulk_query($1::regclass, $2::bigint, $3::uuid, true)";
// What this node knows of the peer, in one round trip: how far we know it has our rows (our
// outgoing point), a resync an operator asked for (idsyncctl resync), and whether the peer is
// a retired node; then the clearing of the resync after a pass that read it.
constexpr const char *peer_here =
    "SELECT idsync.get_sync($1::regclass, $2::uuid, false), "
    "(SELECT r.requested_at::text FROM idsync.resync_requests r "
    "WHERE r.relid OPERATOR(pg_catalog.=) $1::regclass "
    "AND r.remote_id OPERATOR(pg_catalog.=) $2::uuid), "
    "EXISTS (SELECT FROM idsync.retired_nodes n WHERE n.node_id OPERATOR(pg_catalog.=) $2::uuid)";
constexpr const char *resync_done =
    "SELECT idsync._resync_done($1::regclass, $2::uuid, $3::timestamptz)";
constexpr const char *begin_bulk = "SELECT idsync.begin_bulk($1::regclass, $2::uuid)";
constexpr const char *end_bulk = "SELECT idsync.end_bulk($1::regclass, $2::uuid, $3::bigint)";
// The conflict records kept here per table, named as replicated_tables names them.
constexpr const char *conflict_counts =
    "SELECT pg_catalog.format('%I.%I', n.nspname, c.relname), pg_catalog.count(*) "
    "FROM idsync.conflicts x JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) x.relid "
    "JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace GROUP BY 1";
constexpr const char *registered_tables =
    "SELECT table_name, array_to_string(ARRAY(SELECT quote_ident(c) FROM unnest(columns) c), "
    "', '), depth FROM idsync.replicated_tables()";

} // namespace sql

namespace {

struct Stopped {};

int64_t to_int64(const std::string &text)
{
    return std::stoll(text);
}

// A peer with our node id is this very database (or a copy of it): replicating would be a loop.
void refuse_self(const PassContext &context, const Preflight &preflight)
{
    if (preflight.remote.node_id == preflight.local.node_id)
        throw PgError(context.peer + " has this node's id " + preflight.local.node_id +
                          ": its dsn points at this database (or a copy; see reset_node_id)",
                      "", false);
}

// A node retired here (idsync.retire_node) gets nothing again, whatever the configuration says.
void refuse_retired(const PassContext &context, const Preflight &preflight, bool retired)
{
    if (retired)
        throw PgError(context.peer + " is node " + preflight.remote.node_id +
                          ", retired on this node (idsync.retire_node): remove it from the "
                          "configuration",
                      "", false);
}

Task<Preflight> preflight(PassContext &context, const TableInfo &table)
{
    Preflight preflight;
    PgResult local =
        co_await context.local.query(sql::local_sync_info, table.name, std::to_string(context.cut));
    preflight.local = {local.text(0, 0), local.int64(0, 1), local.int64(0, 2), local.text(0, 3),
                       local.int64(0, 4)};
    preflight.local_shape = local.is_null(0, 5) ? "" : local.text(0, 5);
    PgResult remote =
        co_await context.remote.query(sql::remote_sync_info, table.name, preflight.local.node_id);
    preflight.remote = {remote.text(0, 0), remote.int64(0, 1), remote.int64(0, 2),
                        remote.text(0, 3), remote.int64(0, 4)};
    preflight.remote_point = remote.int64(0, 5);
    if (!remote.is_null(0, 7))
        preflight.remote_oldest_reject = std::stod(remote.text(0, 7));
    if (!remote.is_null(0, 8))
        preflight.remote_oldest_waiting = std::stod(remote.text(0, 8));
    preflight.remote_shape = remote.is_null(0, 9) ? "" : remote.text(0, 9);
    refuse_self(context, preflight);
    PgResult here =
        co_await context.local.query(sql::peer_here, table.name, preflight.remote.node_id);
    preflight.local_outgoing = here.int64(0, 0);
    if (!here.is_null(0, 1))
        preflight.resync_requested_at = here.text(0, 1);
    refuse_retired(context, preflight, here.text(0, 2) == "t");
    co_return preflight;
}

// A peer's incoming point for us beyond every point we issued did not come from us: another
// node passed it on (transitive sync) or someone with the peer's rights set it, and obeyed, it
// would make us skip our rows for good. Lowered on the peer to what we know we pushed (a lower
// point only costs a resend), logged and counted. The sequence is read again first: rows sent
// by a concurrent pass to another peer may have travelled on since our pass started.
Task<void> correct_forged_point(PassContext &context, const TableInfo &table, Preflight &preflight,
                                TableOutcome &outcome)
{
    if (preflight.remote_point <= context.last_issued)
        co_return;
    PgResult last = co_await context.local.query(sql::last_point);
    int64_t issued = last.int64(0, 0);
    if (preflight.remote_point <= issued)
        co_return;
    int64_t corrected = std::min(preflight.local_outgoing, issued);
    co_await context.remote.query(sql::correct_point, table.name, preflight.local.node_id,
                                  std::to_string(corrected));
    log_warning(strprintf("%s on %s: its sync point for this node was %lld, beyond the last point "
                          "this node issued (%lld); corrected to %lld",
                          table.name.c_str(), context.peer.c_str(),
                          static_cast<long long>(preflight.remote_point),
                          static_cast<long long>(issued), static_cast<long long>(corrected)));
    preflight.remote_point = corrected;
    outcome.corrected_points++;
}

// Our outgoing sync point for the peer, raised to `point`.
// Transitive sync: the incoming points read at the start of the pass go to the peer once it has
// every row up to the cut, in a transaction of their own. Inside a bulk copy's transaction,
// after the peer's point for us, two bulk copies into one node (each passing on the other's
// point) deadlocked on the peer's incoming_sync rows, and again on every retry. Lost with a
// crash here, they go with the next pass.
Task<void> pass_on_points(PassContext &context, const TableInfo &table)
{
    if (context.pass_on_syncs)
        co_await context.remote.query(sql::merge_points, table.name, table.syncs);
}

Task<void> raise_outgoing(PassContext &context, const TableInfo &table, const std::string &peer_id,
                          int64_t point)
{
    co_await context.local.query(sql::raise_outgoing_point, table.name, peer_id,
                                 std::to_string(point));
}

// Diff mode (Swift's _usync_db): batches of per_diff changes after the peer's point, at most
// max_diffs of them, each merged with our node id as source so the peer's incoming point moves
// with the rows in the same transaction. Pipelined: while the peer merges one batch, the next is
// read here, so a batch costs the longer of the two, not their sum.
// What a batch of items would carry that the peer's table lacks (see next_batch).
std::string columns_unknown_to_peer(const Preflight &preflight, const std::string &keys)
{
    std::string unknown = unknown_columns(preflight.local_shape, preflight.remote_shape, keys);
    return unknown.empty() ? "" : unknown + " (a column added here during the pass)";
}

// The next batch after point `after`: at most `rows` rows and diff_bytes bytes of items.
Task<PgResult> next_batch(PassContext &context, const TableInfo &table, const Preflight &preflight,
                          int64_t after, int rows)
{
    return context.local.query(sql::next_batch, table.name, std::to_string(after),
                               std::to_string(rows), std::to_string(context.cut),
                               preflight.remote.node_id, std::to_string(context.config.diff_bytes));
}

// The next batch read ahead beside the peer's merge: a failure is kept, not thrown, so that the
// merge that ran beside it is counted before the pass fails.
struct ReadAhead {
    PgResult batch;
    std::exception_ptr error;
};

Task<ReadAhead> read_ahead(PassContext &context, const TableInfo &table, const Preflight &preflight,
                           int64_t after, int rows)
{
    ReadAhead out;
    try {
        out.batch = co_await next_batch(context, table, preflight, after, rows);
    } catch (...) {
        out.error = std::current_exception();
    }
    co_return out;
}

Task<void> send_diffs(PassContext &context, const TableInfo &table, const Preflight &preflight,
                      TableOutcome &outcome)
{
    const Config &config = context.config;
    int64_t point = diff_start(preflight);
    int diffs = 0;
    double started = monotonic_seconds();
    // Rows asked for: per_diff, fewer after a batch that diff_bytes cut short (reading items
    // only to drop them costs as much as sending them), doubling back afterwards.
    int ask = config.per_diff;
    PgResult batch = co_await next_batch(context, table, preflight, point, ask);
    for (;;) {
        if (context.stopping)
            throw Stopped{};
        int64_t rows = batch.int64(0, 0);
        if (rows == 0)
            break;
        if (diffs == config.max_diffs) {
            outcome.capped = true;
            break;
        }
        // Checked before the batch goes: an ALTER TABLE that committed after the preflight.
        outcome.drift = columns_unknown_to_peer(preflight, batch.text(0, 4));
        if (!outcome.drift.empty())
            break;
        int64_t batch_end = batch.int64(0, 1);
        // A short batch is the last one, unless cut short by diff_bytes: nothing to read ahead.
        bool cut_by_bytes = batch.text(0, 5) == "t";
        bool last = rows < ask && !cut_by_bytes;
        ask = cut_by_bytes ? static_cast<int>(std::min<int64_t>(config.per_diff, 2 * rows))
                           : std::min(config.per_diff, 2 * ask);
        Task<PgResult> merge = context.remote.query(sql::merge_batch, table.name, batch.text(0, 2),
                                                    preflight.local.node_id);
        PgResult merged;
        ReadAhead following;
        if (last) {
            merged = co_await std::move(merge);
        } else {
            std::tie(merged, following) = co_await both(
                std::move(merge), read_ahead(context, table, preflight, batch_end, ask));
        }
        diffs++;
        int64_t echoes = batch.int64(0, 3);
        outcome.rows_sent += rows - echoes;
        outcome.echoes_avoided += echoes;
        outcome.rejects += merged.int64(0, 1);
        point = batch_end;
        if (last)
            break;
        if (following.error)
            std::rethrow_exception(following.error);
        batch = std::move(following.batch);
    }
    outcome.lag = std::max<int64_t>(0, preflight.local.max_point - point);
    if (!outcome.drift.empty())
        co_return; // nothing more is sent; the sync point stays where the merged batches left it
    log_debug(strprintf("diff of %s to %s: %llu rows in %d batches in %.2f s", table.name.c_str(),
                        context.peer.c_str(), static_cast<unsigned long long>(outcome.rows_sent),
                        diffs, monotonic_seconds() - started));
    if (outcome.capped) {
        log_info(strprintf("%s to %s: %d batches (max_diffs) sent with changes left; moving on, "
                           "the next pass goes on from point %lld",
                           table.name.c_str(), context.peer.c_str(), diffs,
                           static_cast<long long>(point)));
        co_return;
    }
    co_await pass_on_points(context, table);
    co_await raise_outgoing(context, table, preflight.remote.node_id, point);
    outcome.success = true;
}

// The node whose own rows a bulk copy leaves out (bulk_query's to_node): the peer, which wrote
// them, except in a resync, which repairs what the peer lost, its own rows too. Then no node's
// (the nil uuid, which no node has: node ids are random), so that the rows still carry their
// origin.
std::string rows_for(const Preflight &preflight)
{
    return preflight.resync_requested_at.empty() ? preflight.remote.node_id
                                                 : "00000000-0000-0000-0000-000000000000";
}

// Whether a bulk copy of `table` goes in binary COPY, which skips the text form of every value
// (a bulk copy of timestamps and numerics 1.27 times faster; of text, no faster): when both
// servers are of one major version and every column of the table is of a built-in type on both
// nodes. Binary input checks the type OIDs inside arrays and composites, and the OIDs of types
// created on each node differ. The shapes agree (schema drift is checked first), so the types
// do. Tables with other types go as text.
Task<bool> binary_copy(PassContext &context, const TableInfo &table)
{
    int here = context.local.server_version(), there = context.remote.server_version();
    if (here == 0 || here / 10000 != there / 10000)
        co_return false;
    PgResult local = co_await context.local.query(sql::builtin_types, table.name);
    PgResult remote = co_await context.remote.query(sql::builtin_types, table.name);
    co_return local.text(0, 0) == "t" && remote.text(0, 0) == "t";
}

// Streams `select` from COPY TO STDOUT here into `copy_in` (a COPY FROM STDIN) on the peer, in
// binary or text format, with a progress line every progress_interval; returns the number of
// rows the peer took.
Task<uint64_t> stream_rows(PassContext &context, const TableInfo &table, const std::string &select,
                           std::string copy_in, bool binary)
{
    const Config &config = context.config;
    const char *format = binary ? " (FORMAT binary)" : "";
    co_await context.remote.copy_in_begin(copy_in + format);
    co_await context.local.copy_out_begin("COPY (" + select + ") TO STDOUT" + format);
    uint64_t rows = 0;
    uint64_t bytes = 0;
    double started = monotonic_seconds();
    double next_progress = started + config.progress_interval;
    std::string chunk;
    for (;;) {
        chunk.clear();
        bool more = co_await context.local.copy_out_read(chunk);
        if (!chunk.empty()) {
            co_await context.remote.copy_in_send(chunk);
            if (!binary) // one line per row in text COPY
                rows += std::count(chunk.begin(), chunk.end(), '\n');
            bytes += chunk.size();
        }
        if (context.stopping)
            throw Stopped{};
        if (monotonic_seconds() >= next_progress) {
            double elapsed = monotonic_seconds() - started;
            std::string so_far =
                binary ? std::string() : strprintf("%llu rows, ", (unsigned long long)rows);
            log_info(strprintf("bulk copy of %s to %s: %s%.1f MB in %.1f s so far",
                               table.name.c_str(), context.peer.c_str(), so_far.c_str(),
                               bytes / 1e6, elapsed));
            next_progress += config.progress_interval;
        }
        if (!more)
            break;
    }
    PgResult copied = co_await context.remote.copy_in_end();
    const char *taken = copied.get() ? PQcmdTuples(copied.get()) : "";
    co_return *taken ? static_cast<uint64_t>(to_int64(taken)) : rows;
}

// The tombstones up to the cut, with a bulk copy's rows and in its transaction on the peer: a
// copy carries the live rows only, and the peer must also learn what was deleted here (and keep
// older copies of those rows from coming back). In batches of per_diff, through merge_items.
// What send_tombstones sent, counted into the outcome once the peer's transaction commits.
struct Sent {
    uint64_t rows = 0;
    uint64_t rejects = 0;
};

Task<Sent> send_tombstones(PassContext &context, const TableInfo &table, const Preflight &preflight)
{
    Sent sent;
    int64_t after = -1;
    for (;;) {
        if (context.stopping)
            throw Stopped{};
        PgResult batch =
            co_await context.local.query(sql::next_tombstones, table.name, std::to_string(after),
                                         std::to_string(context.config.per_diff),
                                         std::to_string(context.cut), rows_for(preflight));
        int64_t rows = batch.int64(0, 0);
        if (rows == 0)
            break;
        PgResult merged = co_await context.remote.query(sql::merge_batch, table.name,
                                                        batch.text(0, 2), preflight.local.node_id);
        sent.rows += rows;
        sent.rejects += merged.int64(0, 1);
        after = batch.int64(0, 1);
        if (rows < context.config.per_diff)
            break;
    }
    co_return sent;
}

// The direct path of a bulk copy: when the table is empty on the peer and nobody writes it
// there, idsync.begin_bulk locks it and the rows go by COPY straight into it, in key order; the
// peer's incoming point moves to the cut in the same transaction (end_bulk). Returns whether it
// was taken; when not, or when the peer refused a row (a constraint, a type), the peer's
// transaction is rolled back and a new one is open for the staging path.
Task<bool> send_direct(PassContext &context, const TableInfo &table, const Preflight &preflight,
                       TableOutcome &outcome, double started, bool binary)
{
    int64_t point = context.cut;
    bool direct = false;
    bool committed = false;
    std::string why;
    try {
        PgResult begun =
            co_await context.remote.query(sql::begin_bulk, table.name, preflight.local.node_id);
        direct = begun.text(0, 0) == "t";
        if (!direct)
            co_return false;
        PgResult query = co_await context.local.query(sql::bulk_query_in_key_order, table.name,
                                                      std::to_string(point), rows_for(preflight));
        uint64_t rows = co_await stream_rows(
            context, table, query.text(0, 0),
            "COPY " + table.name + " (" + table.columns + ", idsync_origin) FROM STDIN", binary);
        Sent tombstones = co_await send_tombstones(context, table, preflight);
        PgParams end_params{table.name, preflight.local.node_id, std::to_string(point)};
        double timeout = context.config.node_timeout * std::max(1.0, rows / 10000.0);
        co_await context.remote.query_params(sql::end_bulk, std::move(end_params), timeout);
        co_await context.remote.query("COMMIT");
        committed = true;
        outcome.rows_sent += rows + tombstones.rows;
        outcome.rejects += tombstones.rejects;
        log_debug(strprintf("bulk copy of %s to %s: %llu rows straight into the table in %.2f s "
                            "(%s)",
                            table.name.c_str(), context.peer.c_str(),
                            static_cast<unsigned long long>(rows), monotonic_seconds() - started,
                            binary ? "binary" : "text"));
    } catch (const PgError &error) {
        // Only a row the peer refused falls back; a lost connection or a timeout (57014: the copy
        // took longer than allowed, which the staging path would too) ends the table's pass.
        if (error.connection_lost || error.connection != context.remote.label() ||
            error.sqlstate == "57014")
            throw;
        why = error.what();
    }
    if (committed) {
        co_await pass_on_points(context, table);
        co_await raise_outgoing(context, table, preflight.remote.node_id, point);
        outcome.lag = std::max<int64_t>(0, preflight.local.max_point - point);
        outcome.success = true;
        co_return true;
    }
    // A peer before 0.5.0 has no begin_bulk; a peer that refused a row parks it on the staging
    // path instead.
    if (direct)
        log_warning(strprintf("bulk copy of %s to %s straight into the table failed, copying "
                              "through a staging table: %s",
                              table.name.c_str(), context.peer.c_str(), why.c_str()));
    co_await context.remote.query("ROLLBACK");
    co_await context.remote.query("BEGIN");
    co_return false;
}

// Bulk mode (Swift's rsync_then_merge): every row of the table, streamed from COPY TO STDOUT
// here into COPY FROM STDIN on the peer: straight into the table when it is empty there (above),
// else into a staging table merged there in the same transaction that raises the peer's
// incoming point to the stable point read before the copy.
Task<void> send_bulk(PassContext &context, const TableInfo &table, const Preflight &preflight,
                     TableOutcome &outcome)
{
    // The pass's cut is a stable point: every change at or below it committed before the
    // COPY's snapshot, so the peer has every row up to it afterwards.
    int64_t point = context.cut;
    double started = monotonic_seconds();
    bool binary = co_await binary_copy(context, table);
    co_await context.remote.query("BEGIN");
    if (co_await send_direct(context, table, preflight, outcome, started, binary))
        co_return;

    // References to local ids travel as the natural keys of the referenced rows (jsonb).
    PgResult query = co_await context.local.query(sql::bulk_query, table.name,
                                                  std::to_string(point), rows_for(preflight));
    co_await context.remote.query(sql::create_staging, table.name);
    uint64_t rows = co_await stream_rows(
        context, table, query.text(0, 0),
        "COPY pg_temp.idsync_bulk (" + table.columns + ", idsync_origin) FROM STDIN", binary);
    // Tombstones before the staged rows: their merge takes SHARE ROW EXCLUSIVE, which upgraded
    // from the staged merge's ROW EXCLUSIVE would deadlock with any other peer's merge into the
    // table. (The two commute: a staged row older than a key's tombstone is dropped either way.)
    Sent tombstones = co_await send_tombstones(context, table, preflight);
    // The merge of a big copy takes a while: node_timeout per 10,000 rows staged.
    double merge_timeout = context.config.node_timeout * std::max(1.0, rows / 10000.0);
    PgParams merge_params{table.name, preflight.local.node_id, std::to_string(point)};
    PgResult merged = co_await context.remote.query_params(sql::merge_staged,
                                                           std::move(merge_params), merge_timeout);
    co_await context.remote.query("COMMIT");
    co_await pass_on_points(context, table);
    co_await raise_outgoing(context, table, preflight.remote.node_id, point);
    outcome.rows_sent += rows + tombstones.rows;
    outcome.rejects += merged.int64(0, 1) + tombstones.rejects;
    outcome.lag = std::max<int64_t>(0, preflight.local.max_point - point);
    outcome.success = true;
    log_debug(strprintf("bulk copy of %s to %s: %llu rows in %.2f s (%s)", table.name.c_str(),
                        context.peer.c_str(), static_cast<unsigned long long>(rows),
                        monotonic_seconds() - started, binary ? "binary" : "text"));
}

Task<void> run_pass(PassContext &context, const TableInfo &table, TableOutcome &outcome)
{
    // A failed table may have closed a connection (to roll back); the next one reconnects.
    co_await context.local.connect();
    co_await context.remote.connect();
    Preflight state = co_await preflight(context, table);
    outcome.parked_known = true;
    outcome.oldest_reject_age = state.remote_oldest_reject;
    outcome.oldest_waiting_age = state.remote_oldest_waiting;
    // A table whose shape differs on the peer in a way its rows cannot cross is skipped for that
    // peer, not sent row by row into its rejects; the pass goes on once the shapes agree.
    outcome.drift = schema_drift(state.local_shape, state.remote_shape);
    if (!outcome.drift.empty())
        co_return;
    co_await correct_forged_point(context, table, state, outcome);
    // A resync: every row goes, as to a peer that has none (the merge takes what it lacks).
    if (!state.resync_requested_at.empty()) {
        log_info(strprintf("resync of %s to %s (requested at %s): sending every row",
                           table.name.c_str(), context.peer.c_str(),
                           state.resync_requested_at.c_str()));
        state.remote_point = -1;
        state.local_outgoing = -1;
    }
    outcome.mode = choose_mode(state, {context.config.per_diff, context.config.bulk_ratio});
    // A resync copies the table in bulk, in one transaction, whatever its size: a diff capped
    // part way would leave the rest to passes that start from the peer's (high) point.
    if (!state.resync_requested_at.empty() && outcome.mode == Mode::diff)
        outcome.mode = Mode::bulk;
    outcome.lag = std::max<int64_t>(0, state.local.max_point - diff_start(state));
    log_debug(strprintf("%s to %s: %s (local max %lld, peer has %lld, peer max %lld)",
                        table.name.c_str(), context.peer.c_str(), mode_name(outcome.mode),
                        static_cast<long long>(state.local.max_point),
                        static_cast<long long>(diff_start(state)),
                        static_cast<long long>(state.remote.max_point)));
    switch (outcome.mode) {
    case Mode::no_change:
        outcome.lag = 0;
        outcome.success = true;
        break;
    case Mode::hashmatch:
        // Equal content: the peer holds every row we had up to our max point (our hash was read
        // after it and covers at least those rows). Swift records only the peer's own point,
        // which leaves the rows we merged from the peer to be sent back to it one day.
        if (state.local.max_point >= 0)
            co_await raise_outgoing(context, table, state.remote.node_id,
                                    std::max(state.remote_point, state.local.max_point));
        outcome.lag = 0;
        outcome.success = true;
        break;
    case Mode::bulk:
        co_await send_bulk(context, table, state, outcome);
        break;
    case Mode::diff:
        co_await send_diffs(context, table, state, outcome);
        break;
    }
    if (outcome.success && !state.resync_requested_at.empty())
        co_await context.local.query(sql::resync_done, table.name, state.remote.node_id,
                                     state.resync_requested_at);
}

} // namespace

Task<PassStart> start_pass(PgConnection &local, std::vector<TableInfo> &tables)
{
    nlohmann::json names = nlohmann::json::array();
    for (const TableInfo &table : tables)
        names.push_back(table.name);
    if (!tables.empty()) {
        PgResult syncs = co_await local.query(sql::incoming_points, names.dump());
        for (size_t i = 0; i < tables.size(); i++)
            tables[i].syncs = syncs.text(static_cast<int>(i), 0);
    }
    // Every row merged before the points were read has a point at or below `last`; the pass
    // sends them all when the cut, read afterwards, has reached it.
    PgResult last = co_await local.query(sql::last_point);
    PgResult stable = co_await local.query(sql::stable_point);
    PassStart start;
    start.last_issued = last.int64(0, 0);
    start.cut = stable.int64(0, 0);
    start.pass_on_syncs = last.int64(0, 0) <= start.cut;
    co_return start;
}

Task<std::map<std::string, int64_t>> conflict_counts(PgConnection &local)
{
    PgResult result = co_await local.query(sql::conflict_counts);
    std::map<std::string, int64_t> counts;
    for (int row = 0; row < result.rows(); row++)
        counts[result.text(row, 0)] = result.int64(row, 1);
    co_return counts;
}

Task<std::vector<TableInfo>> list_tables(PgConnection &local)
{
    PgResult result = co_await local.query(sql::registered_tables);
    std::vector<TableInfo> tables;
    for (int row = 0; row < result.rows(); row++)
        tables.push_back({result.text(row, 0), result.text(row, 1),
                          static_cast<int>(to_int64(result.text(row, 2)))});
    co_return tables;
}

Task<TableOutcome> replicate_table(PassContext &context, const TableInfo &table)
{
    TableOutcome outcome;
    try {
        co_await run_pass(context, table, outcome);
    } catch (const PgError &error) {
        outcome.success = false;
        outcome.error = error.what();
        outcome.connection_lost = error.connection_lost;
        outcome.local_lost = error.connection_lost && error.connection == context.local.label();
    } catch (const Stopped &) {
        outcome.success = false;
        outcome.stopped = true;
        outcome.error = "stopped; the batch in flight was rolled back";
    } catch (const std::exception &error) {
        outcome.success = false;
        outcome.error = error.what();
    }
    // Whatever was left open (a transaction, a COPY) is rolled back by closing the connection.
    if (context.local.connected() && !context.local.idle())
        context.local.close();
    if (context.remote.connected() && !context.remote.idle())
        context.remote.close();
    co_return outcome;
}
