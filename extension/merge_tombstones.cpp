// Tombstones in an lww merge (merge_rows.hpp, step 3): the incoming tombstones are applied one
// by one, the incoming rows are weighed against the tombstones kept here. Per key the newest
// version wins; a tombstone wins a tie with a row.
#include "merge_rows.hpp"

#include "target_table.hpp"
#include "conflicts.hpp"
#include "hlc.hpp"
#include "kept_plans.hpp"
#include "reference_keys.hpp"
#include "state_access.hpp"
#include "tombstones.hpp"
#include "work_array.hpp"

namespace idsync {

namespace {

int version_column(const Merge &m)
{
    for (int c = 0; c < m.ncolumns; c++)
        if (strcmp(m.columns[c].name, m.reg->version_column) == 0)
            return c;
    elog(ERROR, "idsync: the version column of %s is not replicated", relid_name(m.relid));
    return -1;
}

KeyPlan *table_key(Merge &m)
{
    if (m.key == nullptr)
        m.key = key_plan(m.relid, m.batch.caller);
    return m.key;
}

// The stored row of the key of row `row` (its key columns as the merge resolved them): with
// `version`, "DELETE ... WHERE <key> AND version <= $n RETURNING true"; without, "SELECT true
// ... WHERE <key>". Run as the caller; the key's NULLs compare as IS NULL, as the key index's
// NULLS NOT DISTINCT does.
bool stored_row(Merge &m, const MergeRows &rows, int64 row, const int64 *version,
                int64 *found_version = nullptr, pg_uuid_t *found_origin = nullptr,
                bool *origin_null = nullptr)
{
    const TargetTable &t = m.batch.target;
    int nkey = m.reg->nkey;
    StringInfoData sql;
    initStringInfo(&sql);
    if (version != nullptr)
        appendStringInfo(&sql, "DELETE FROM %s t WHERE ", t.name);
    else
        appendStringInfo(&sql, "SELECT t.%s, t.idsync_origin FROM %s t WHERE ",
                         quote_identifier(m.reg->version_column), t.name);
    Oid *types = work_array<Oid>(nkey + 1);
    Datum *values = work_array<Datum>(nkey + 1);
    int nargs = 0;
    for (int c = 0; c < nkey; c++) {
        const char *column = quote_identifier(m.columns[c].name);
        if (c > 0)
            appendStringInfoString(&sql, " AND ");
        if (rows.values.nulls[c][row]) {
            appendStringInfo(&sql, "t.%s IS NULL", column);
            continue;
        }
        types[nargs] = t.as_text[c] ? TEXTOID : t.types[c];
        values[nargs] = rows.values.values[c][row];
        if (t.as_text[c]) { // an array or composite: as its text, cast back below
            Oid output;
            bool varlena;
            getTypeOutputInfo(t.types[c], &output, &varlena);
            values[nargs] = CStringGetTextDatum(OidOutputFunctionCall(output, values[nargs]));
        }
        nargs++;
        TypeCacheEntry *type = lookup_type_cache(t.types[c], TYPECACHE_EQ_OPR);
        if (!OidIsValid(type->eq_opr))
            ereport(ERROR, (errcode(ERRCODE_UNDEFINED_FUNCTION),
                            errmsg("column %s of %s has no equality operator", column,
                                   relid_name(m.relid))));
        appendStringInfo(&sql, "t.%s %s $%d::%s", column, qualified_operator(type->eq_opr), nargs,
                         format_type_with_typemod(t.types[c], t.typmods[c]));
    }
    if (version != nullptr) {
        types[nargs] = INT8OID;
        values[nargs] = Int64GetDatum(*version);
        nargs++;
        appendStringInfo(&sql, " AND t.%s OPERATOR(pg_catalog.<=) $%d RETURNING true",
                         quote_identifier(m.reg->version_column), nargs);
    }
    int pinned = pin_search_path();
    SPIPlanPtr plan = kept_plan(sql.data, nargs, types);
    unpin_search_path(pinned);
    MemoryContext caller = CurrentMemoryContext; // SPI returns in its own context
    // No row limit: a DELETE stopped after its first row would skip its statement triggers.
    int ret = SPI_execute_plan(plan, values, nullptr, false, 0);
    MemoryContextSwitchTo(caller);
    if (ret < 0)
        elog(ERROR, "idsync: looking up a stored row failed: %s", SPI_result_code_string(ret));
    bool found = SPI_processed > 0;
    if (found && version == nullptr && found_version != nullptr) {
        bool isnull;
        Datum v = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
        *found_version = isnull ? -1 : DatumGetInt64(v);
        Datum o = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, origin_null);
        if (!*origin_null)
            *found_origin = *DatumGetUUIDP(o);
    }
    SPI_freetuptable(SPI_tuptable);
    return found;
}

// The node of the tombstone of `key` (nullptr: this one).
const pg_uuid_t *buried_origin(Oid relid, RowHash key)
{
    Oid types[2] = {OIDOID, UUIDOID};
    Datum values[2] = {ObjectIdGetDatum(relid),
                       UUIDPGetDatum(reinterpret_cast<pg_uuid_t *>(VARDATA(hash_bytes_of(key))))};
    MemoryContext caller = CurrentMemoryContext;
    OwnerScope scope = enter_owner_scope();
    if (SPI_connect() != SPI_OK_CONNECT)
        elog(ERROR, "idsync could not connect to SPI");
    if (SPI_execute_plan(kept_plan("SELECT t.origin FROM idsync.tombstones t WHERE t.relid "
                                   "OPERATOR(pg_catalog.=) $1 AND t.key_hash "
                                   "OPERATOR(pg_catalog.=) $2",
                                   2, types),
                         values, nullptr, false, 1) != SPI_OK_SELECT)
        elog(ERROR, "idsync: reading a tombstone failed");
    pg_uuid_t *origin = nullptr;
    bool isnull = true;
    Datum o = SPI_processed > 0
                  ? SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)
                  : Datum(0);
    if (!isnull) {
        origin = static_cast<pg_uuid_t *>(MemoryContextAlloc(caller, sizeof(pg_uuid_t)));
        *origin = *DatumGetUUIDP(o);
    }
    SPI_finish();
    leave_owner_scope(scope);
    return origin;
}

const pg_uuid_t *row_origin(const Merge &m, const MergeRows &rows, int64 row)
{
    return rows.values.nulls[m.ncolumns][row] ? nullptr
                                              : DatumGetUUIDP(rows.values.values[m.ncolumns][row]);
}

} // namespace

void apply_tombstones(Merge &m, const MergeRows &rows, const int32 *idx, int64 count,
                      MergeCounts &counts)
{
    int vc = -1;
    for (int64 i = 0; i < count; i++) {
        int64 row = idx[i];
        if (!rows.deleted[row])
            continue;
        if (vc < 0) {
            vc = version_column(m);
            // Writers of the table wait while tombstones apply, and the merge waits for those
            // under way: an insert of the same key can neither miss the tombstone nor be missed
            // by it. Self-conflicting: two merges applying tombstones to one table queue. (Taken
            // already by merge_item_batch, before the table was opened; again here for a merge
            // whose tombstones came another way.)
            LockRelationOid(m.relid, ShareRowExclusiveLock);
        }
        if (rows.values.nulls[vc][row])
            ereport(ERROR, (errcode(ERRCODE_NOT_NULL_VIOLATION),
                            errmsg("a tombstone of %s has no version", relid_name(m.relid))));
        int64 version = DatumGetInt64(rows.values.values[vc][row]);
        KeyPlan *key = table_key(m);
        Jsonb *item = row_item(m, rows, row);
        NaturalKey natural = {key_json_of_item(key, &item->root),
                              key_hash_from_json(key, &item->root)};
        bool deleted = false;
        if (!rows.absent[row]) {
            // The table's foreign keys act on this delete; one that refuses raises 23503 and
            // the tombstone is parked as waiting (write_by_halves).
            deleted = stored_row(m, rows, row, &version);
            int64 newer;
            pg_uuid_t origin;
            bool origin_null = true;
            if (!deleted && stored_row(m, rows, row, nullptr, &newer, &origin, &origin_null)) {
                // The row here is newer.
                if (m.reg->conflicts_kept > 0)
                    record_conflict(m, rows, row, ConflictKind::delete_lost_to_row, newer,
                                    origin_null ? nullptr : &origin);
                continue;
            }
        }
        if (record_tombstone(m.relid, natural, version, row_origin(m, rows, row)) || deleted)
            counts.updated++;
    }
}

int64 drop_buried(Merge &m, const MergeRows &rows, int32 *idx, int64 count)
{
    if (count == 0 || !has_tombstones(m.relid))
        return count;
    int vc = version_column(m);
    KeyPlan *key = table_key(m);
    RowHash *hashes = work_array<RowHash>(count);
    int64 *buried = work_array<int64>(count);
    for (int64 i = 0; i < count; i++) {
        Jsonb *item = row_item(m, rows, idx[i]);
        hashes[i] = key_hash_from_json(key, &item->root);
    }
    tombstone_versions(m.relid, hashes, count, buried);
    int64 kept = 0;
    for (int64 i = 0; i < count; i++) {
        int64 row = idx[i];
        if (buried[i] >= 0) {
            // A row without a version loses; a tie goes to the tombstone.
            if (rows.values.nulls[vc][row] ||
                DatumGetInt64(rows.values.values[vc][row]) <= buried[i]) {
                if (m.reg->conflicts_kept > 0)
                    record_conflict(m, rows, row, ConflictKind::row_lost_to_delete, buried[i],
                                    buried_origin(m.relid, hashes[i]));
                continue;
            }
            drop_tombstone(m.relid, hashes[i], DatumGetInt64(rows.values.values[vc][row]));
        }
        idx[kept++] = static_cast<int32>(row);
    }
    return kept;
}

bool parent_deleted(Merge &m, const MergeRows &rows, int c, int64 row)
{
    Oid parent = resolver_parent(m.columns[c].reference);
    if (rows.keys[c][row] == nullptr || !has_tombstones(parent))
        return false;
    if (m.parent_keys[c] == nullptr)
        m.parent_keys[c] = key_plan(parent, m.batch.caller);
    RowHash h = key_hash_from_json(m.parent_keys[c], rows.keys[c][row]);
    int64 version;
    tombstone_versions(parent, &h, 1, &version);
    return version >= 0;
}

void follow_deleted_parent(Merge &m, MergeRows &rows, int c, int64 row)
{
    // Newer than the row, and this node's own change: it goes to every node, the row's source
    // included, which does the same when the parent's tombstone reaches it.
    int vc = version_column(m);
    int64 version = rows.values.nulls[vc][row] ? 0 : DatumGetInt64(rows.values.values[vc][row]);
    rows.values.values[vc][row] = Int64GetDatum(Max(hlc_now(), version + 1));
    rows.values.nulls[vc][row] = false;
    auto *node = static_cast<pg_uuid_t *>(palloc(sizeof(pg_uuid_t)));
    *node = this_node();
    rows.values.values[m.ncolumns][row] = UUIDPGetDatum(node);
    rows.values.nulls[m.ncolumns][row] = false;
    if (m.column_on_delete[c] == FKCONSTR_ACTION_SETNULL && c >= m.reg->nkey) {
        rows.keys[c][row] = nullptr;
        rows.values.nulls[c][row] = true;
        return;
    }
    rows.deleted[row] = true;
    if (c < m.reg->nkey)
        rows.absent[row] = true;
}

} // namespace idsync
