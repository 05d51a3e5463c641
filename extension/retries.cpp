// The retries of parked rows: retry_waiting, which merges the rows parked as waiting whose
// references now resolve (after every merge), and retry_rejects, an administrator's retry of
// every parked row of a table after fixing what refused them; and discard_rejects, an
// administrator's drop of parked rows that will never merge, kept as a record. Rows are taken out
// of idsync.rejects by idsync._take_rejects (which checks the caller) and merged again through
// merge_items, without raising a sync point (the point already moved past them); rows refused
// again are parked again with their source.
#include "boundary.hpp"
#include "merge_calls.hpp"
#include "spi_calls.hpp"
#include "state_access.hpp"
#include "work_array.hpp"

namespace idsync {

extern bool retrying; // idsync.retrying (module.cpp): a round of retries is going on

namespace {

struct Retried {
    int64 retried;
    int64 merged; // inserted + updated + unchanged
    int64 inserted;
};

// Runs a query with search_path pinned, in an SPI connection of the caller's.
void query(const char *sql, int nargs, Oid *types, Datum *values, const char *nulls)
{
    run_pinned(sql, nargs, types, values, nulls, false, 0);
}

// The same, with one argument: the table `relid`.
void query_about(const char *sql, Oid relid)
{
    Oid types[1] = {OIDOID};
    Datum values[1] = {ObjectIdGetDatum(relid)};
    query(sql, 1, types, values, nullptr);
}

// Merges the parked rows of `relid` picked by `reject_ids` (all of them, for an administrator's
// retry_rejects, when NULL; else rows waiting for a referenced row) once more, one batch per
// source.
Retried retry(Oid relid, ArrayType *reject_ids)
{
    Retried total = {0, 0, 0};
    if (SPI_connect() != SPI_OK_CONNECT)
        elog(ERROR, "idsync could not connect to SPI");
    Oid types[2] = {OIDOID, INT8ARRAYOID};
    Datum values[2] = {ObjectIdGetDatum(relid), PointerGetDatum(reject_ids)};
    char nulls[3] = {' ', reject_ids == nullptr ? 'n' : ' ', '\0'};
    query("SELECT t.source, pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object("
          "'point', COALESCE(t.point, 0), 'item', t.item) ORDER BY t.reject_id) "
          "FROM idsync._take_rejects($1::pg_catalog.regclass, $2, $2 IS NOT NULL) t "
          "GROUP BY t.source",
          2, types, values, nulls);
    // Kept: the merges below run statements of their own.
    SPITupleTable *batches = SPI_tuptable;
    uint64 nbatches = SPI_processed;
    for (uint64 i = 0; i < nbatches; i++) {
        bool source_null, items_null;
        Datum source = SPI_getbinval(batches->vals[i], batches->tupdesc, 1, &source_null);
        Jsonb *items =
            DatumGetJsonbP(SPI_getbinval(batches->vals[i], batches->tupdesc, 2, &items_null));
        MergeResult r = merge_items_call(relid, items, source, source_null, false).result;
        total.retried += r.received;
        total.merged += r.received - r.rejected;
        total.inserted += r.inserted;
    }
    SPI_finish();
    return total;
}

// The registered tables with rows waiting for what a merge into `relid` may have changed: it,
// the tables that reference it (rows waiting for a referenced row), and the tables it references
// (tombstones waiting for the rows that reference theirs to go).
ArrayType *waiting_children(Oid relid)
{
    query_about(
        "SELECT DISTINCT t.relid::pg_catalog.oid FROM idsync.tables t "
        "WHERE (t.relid OPERATOR(pg_catalog.=) $1::pg_catalog.regclass OR EXISTS ("
        "  SELECT FROM pg_catalog.pg_constraint c WHERE c.conrelid OPERATOR(pg_catalog.=) t.relid"
        "  AND c.confrelid OPERATOR(pg_catalog.=) $1 AND c.contype OPERATOR(pg_catalog.=) 'f') "
        "  OR EXISTS (SELECT FROM pg_catalog.pg_constraint c WHERE c.conrelid "
        "  OPERATOR(pg_catalog.=) $1 AND c.confrelid OPERATOR(pg_catalog.=) t.relid AND "
        "  c.contype OPERATOR(pg_catalog.=) 'f')) "
        "AND EXISTS (SELECT FROM idsync.rejects r WHERE r.relid OPERATOR(pg_catalog.=) t.relid "
        "  AND r.sqlstate OPERATOR(pg_catalog.=) '23503')",
        relid);
    Datum *children = work_array<Datum>(SPI_processed);
    for (uint64 i = 0; i < SPI_processed; i++) {
        bool isnull;
        children[i] = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);
    }
    return construct_array(children, static_cast<int>(SPI_processed), OIDOID, sizeof(Oid), true,
                           TYPALIGN_INT);
}

// Rows parked as waiting are looked at this many at a time: the memory of a round stays bounded
// however many wait.
constexpr int64 kWaitingPage = 10000;

// Merges again the rows of `child` parked as waiting whose references now resolve, a page of
// them at a time (rows parked again during the round come after `last` and wait for the next
// one). Returns what retry() counted.
Retried retry_ready(Oid child)
{
    Retried total = {0, 0, 0};
    if (SPI_connect() != SPI_OK_CONNECT)
        elog(ERROR, "idsync could not connect to SPI");
    query_about("SELECT COALESCE(pg_catalog.max(r.reject_id), 0) FROM idsync.rejects r "
                "WHERE r.relid OPERATOR(pg_catalog.=) $1::pg_catalog.regclass",
                child);
    bool isnull;
    int64 last =
        DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
    int64 after = 0;
    for (;;) {
        Oid types[4] = {OIDOID, INT8OID, INT8OID, INT8OID};
        Datum values[4] = {ObjectIdGetDatum(child), Int64GetDatum(after), Int64GetDatum(last),
                           Int64GetDatum(kWaitingPage)};
        query("SELECT pg_catalog.max(p.reject_id), pg_catalog.jsonb_agg("
              "pg_catalog.jsonb_build_object('point', p.reject_id, 'item', p.item)) "
              "FROM (SELECT r.reject_id, r.item FROM idsync.rejects r "
              "      WHERE r.relid OPERATOR(pg_catalog.=) $1::pg_catalog.regclass "
              "      AND r.sqlstate OPERATOR(pg_catalog.=) '23503' "
              "      AND r.reject_id OPERATOR(pg_catalog.>) $2 "
              "      AND r.reject_id OPERATOR(pg_catalog.<=) $3 "
              "      ORDER BY r.reject_id LIMIT $4) p",
              4, types, values, nullptr);
        SPITupleTable *page = SPI_tuptable;
        Datum page_last = SPI_getbinval(page->vals[0], page->tupdesc, 1, &isnull);
        if (isnull)
            break;
        after = DatumGetInt64(page_last);
        Datum items = SPI_getbinval(page->vals[0], page->tupdesc, 2, &isnull);
        ArrayType *ready = waiting_ready(child, DatumGetJsonbP(items));
        SPI_freetuptable(page);
        if (ArrayGetNItems(ARR_NDIM(ready), ARR_DIMS(ready)) == 0)
            continue;
        Retried r = retry(child, ready);
        total.retried += r.retried;
        total.merged += r.merged;
        total.inserted += r.inserted;
    }
    SPI_finish();
    return total;
}

// The round retry_waiting starts: the tables to look at are a queue; a table that gained rows
// wakes the tables that reference it in turn.
int64 retry_round(Oid relid)
{
    int64 total = 0;
    int64 capacity = 16, head = 0, tail = 0;
    Oid *queue = work_array<Oid>(capacity);
    queue[tail++] = relid;
    while (head < tail) {
        Oid current = queue[head++];
        if (SPI_connect() != SPI_OK_CONNECT)
            elog(ERROR, "idsync could not connect to SPI");
        ArrayType *children = waiting_children(current);
        Datum *child_oids;
        int nchildren;
        deconstruct_array(children, OIDOID, sizeof(Oid), true, TYPALIGN_INT, &child_oids, nullptr,
                          &nchildren);
        for (int c = 0; c < nchildren; c++) {
            Oid child = DatumGetObjectId(child_oids[c]);
            Retried r = retry_ready(child);
            total += r.merged;
            bool queued = false;
            for (int64 q = head; q < tail; q++)
                queued |= queue[q] == child;
            if (r.inserted > 0 && !queued) {
                if (tail == capacity) {
                    capacity *= 2;
                    queue = static_cast<Oid *>(repalloc_huge(queue, sizeof(Oid) * capacity));
                }
                queue[tail++] = child;
            }
        }
        SPI_finish();
    }
    return total;
}

} // namespace

int64 retry_waiting(Oid relid)
{
    // A retry merges through merge_items, which calls back here: the round in progress goes on.
    if (retrying)
        return 0;
    int level = NewGUCNestLevel();
    (void)set_config_option("idsync.retrying", "on", PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
                            true, 0, false);
    int64 merged = retry_round(relid);
    AtEOXact_GUC(true, level);
    return merged;
}

} // namespace idsync

using namespace idsync;

// idsync.retry_waiting(target regclass) RETURNS integer: merges the rows of a table, and of the
// registered tables that reference it, that wait for a referenced row which is now here.
IDSYNC_FUNCTION(idsync_retry_waiting)
{
    Oid relid = DatumGetObjectId(required_arg(fcinfo, 0, "target"));
    require_replicable(relid);
    PG_RETURN_INT32(static_cast<int32>(retry_waiting(relid)));
}

// idsync.retry_rejects(target regclass) RETURNS TABLE (retried integer, merged integer,
// still_rejected integer): an administrator's retry of every parked row of a table.
IDSYNC_FUNCTION(idsync_retry_rejects)
{
    Oid relid = DatumGetObjectId(required_arg(fcinfo, 0, "target"));
    require_replicable(relid);
    InitMaterializedSRF(fcinfo, 0);
    auto *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
    Retried r = retry(relid, nullptr);
    Datum values[3] = {Int32GetDatum(static_cast<int32>(r.retried)),
                       Int32GetDatum(static_cast<int32>(r.merged)),
                       Int32GetDatum(static_cast<int32>(r.retried - r.merged))};
    bool nulls[3] = {false, false, false};
    tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
    return Datum(0);
}

// idsync.discard_rejects(target regclass, reject_ids bigint[] DEFAULT NULL) RETURNS integer:
// moves the parked rows of `target` (those of `reject_ids`, or all) to idsync.discarded_rejects
// with who discarded them and when; returns how many.
IDSYNC_FUNCTION(idsync_discard_rejects)
{
    Oid relid = DatumGetObjectId(required_arg(fcinfo, 0, "target"));
    require_registered(relid);
    require(caller_roles().admin, "only idsync administrators discard parked rows");
    Oid types[3] = {OIDOID, INT8ARRAYOID, NAMEOID};
    Datum values[3] = {
        ObjectIdGetDatum(relid), PG_ARGISNULL(1) ? Datum(0) : PG_GETARG_DATUM(1),
        DirectFunctionCall1(namein, CStringGetDatum(GetUserNameFromId(GetUserId(), false)))};
    char nulls[4] = {' ', PG_ARGISNULL(1) ? 'n' : ' ', ' ', '\0'};
    uint64 discarded = exec_as_owner(
        "WITH d AS (DELETE FROM idsync.rejects r WHERE r.relid OPERATOR(pg_catalog.=) "
        "$1::pg_catalog.regclass AND ($2 IS NULL OR r.reject_id OPERATOR(pg_catalog.=) ANY ($2)) "
        "RETURNING r.*) "
        "INSERT INTO idsync.discarded_rejects (reject_id, relid, source, point, item, sqlstate, "
        "message, detail, rejected_at, discarded_by) SELECT d.reject_id, d.relid, d.source, "
        "d.point, d.item, d.sqlstate, d.message, d.detail, d.rejected_at, $3 FROM d",
        3, types, values, nulls);
    PG_RETURN_INT32(static_cast<int32>(discarded));
}
