#include "merge_rows.hpp"

#include "conflicts.hpp"
#include "kept_plans.hpp"
#include "reference_keys.hpp"
#include "state_access.hpp"
#include "subtransaction.hpp"
#include "work_array.hpp"

namespace idsync {

// A foreign key that is not translated: its columns hold replicated values, equal on every
// node, and a row waits until its parent row is here.
struct PlainReference {
    Oid parent;
    const char *parent_columns; // for messages: "name, version"
    int ncolumns;
    int *column;        // [key column] the merge's column
    SPIPlanPtr missing; // (i, row text) of the rows $1 whose parent row is missing
    int rank;           // of the foreign key among the table's, by constraint name
};

namespace {

const char kWaitingDetail[] =
    "The referenced row has not reached this node yet; the row is merged when it arrives.";

// The replicated columns: the registered key columns first, then the other stored columns in
// table order, leaving out local ones (idsync_origin is local: it is carried separately).
// Translated references get their resolvers.
int replicated_columns(Relation rel, const Registration *reg, ItemColumn *out)
{
    TupleDesc desc = RelationGetDescr(rel);
    int n = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < desc->natts; i++) {
            Form_pg_attribute att = TupleDescAttr(desc, i);
            const char *name = NameStr(att->attname);
            if (att->attisdropped || registered_name_among(name, reg->local_columns, reg->nlocal) ||
                registered_name_among(name, reg->key_columns, reg->nkey) != (pass == 0))
                continue;
            ItemColumn &c = out[n++];
            prepare_item_column(c, att);
            if (registered_name_among(name, reg->reference_columns, reg->nreferences))
                c.reference = column_resolver(rel, att->attnum, 1);
        }
    return n;
}

ArrayType *column_names(const ItemColumn *columns, int ncolumns)
{
    Datum *names = work_array<Datum>(ncolumns + 1);
    for (int c = 0; c < ncolumns; c++)
        names[c] = CStringGetTextDatum(columns[c].name);
    names[ncolumns] = CStringGetTextDatum("idsync_origin");
    return construct_array(names, ncolumns + 1, TEXTOID, -1, false, TYPALIGN_INT);
}

int column_of(const Merge &m, AttrNumber attnum)
{
    for (int c = 0; c < m.ncolumns; c++)
        if (m.batch.target.attnums[c] == attnum)
            return c;
    return -1;
}

// SELECT s.i, ROW(s.k1, ...)::text FROM ROWS FROM (unnest($1), unnest($2), ...) AS s (i, k1, ...)
// WHERE NOT EXISTS (SELECT FROM parent p WHERE p.<key 1> = s.k1 AND ...), with the foreign
// key's own equality operators.
SPIPlanPtr prepare_missing_parents(const Merge &m, const PlainReference &p,
                                   const ForeignKeyCacheInfo *fk)
{
    StringInfoData sql, unnests, names, match;
    initStringInfo(&sql);
    initStringInfo(&unnests);
    initStringInfo(&names);
    initStringInfo(&match);
    Oid *types = work_array<Oid>(p.ncolumns + 1);
    types[0] = INT4ARRAYOID;
    for (int k = 0; k < p.ncolumns; k++) {
        types[k + 1] = column_param_type(m.batch.target, p.column[k]);
        appendStringInfo(&unnests, ", pg_catalog.unnest($%d)", k + 2);
        appendStringInfo(&names, "%ss.k%d", k ? ", " : "", k + 1);
        appendStringInfo(&match, "%sp.%s %s s.k%d", k ? " AND " : "",
                         quote_identifier(get_attname(p.parent, fk->confkey[k], false)),
                         qualified_operator(fk->conpfeqop[k]), k + 1);
    }
    appendStringInfo(
        &sql,
        "SELECT s.i, ROW(%s)::pg_catalog.text FROM ROWS FROM (pg_catalog.unnest($1)%s) "
        "AS s (i",
        names.data, unnests.data);
    for (int k = 0; k < p.ncolumns; k++)
        appendStringInfo(&sql, ", k%d", k + 1);
    appendStringInfo(&sql, ") WHERE NOT EXISTS (SELECT FROM %s p WHERE %s)", relid_name(p.parent),
                     match.data);
    return kept_plan(sql.data, p.ncolumns + 1, types);
}

// The rank of each foreign key by constraint name (names compare as the C collation does).
int *constraint_ranks(List *fkeys)
{
    int n = list_length(fkeys);
    char **names = work_array<char *>(n);
    for (int i = 0; i < n; i++)
        names[i] =
            get_constraint_name(static_cast<ForeignKeyCacheInfo *>(list_nth(fkeys, i))->conoid);
    int *rank = work_array0<int>(n);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            rank[i] += strcmp(names[j], names[i]) < 0;
    return rank;
}

// The foreign keys of the target: the rank of each translated one, and the ones that are not
// translated and hold replicated columns only (registration refuses keys that mix local and
// replicated columns). Keys over columns whose values travel as text are left to the INSERT,
// which parks such a row with its error.
void find_references(Merge &m)
{
    // A copy: the relcache's list goes with the next invalidation, and looking up constraint
    // names and preparing statements below may process one.
    List *fkeys = static_cast<List *>(copyObjectImpl(RelationGetFKeyList(m.batch.target.rel)));
    int *rank = constraint_ranks(fkeys);
    m.plain = work_array0<PlainReference>(list_length(fkeys));
    m.nplain = 0;
    m.column_rank = work_array<int>(m.ncolumns);
    m.column_on_delete = work_array0<char>(m.ncolumns);
    m.parent_keys = work_array0<KeyPlan *>(m.ncolumns);
    for (int c = 0; c < m.ncolumns; c++)
        m.column_rank[c] = -1;
    for (int i = 0; i < list_length(fkeys); i++) {
        auto *fk = static_cast<ForeignKeyCacheInfo *>(list_nth(fkeys, i));
        int first = column_of(m, fk->conkey[0]);
        if (fk->nkeys == 1 && first >= 0 && m.columns[first].reference != nullptr) {
            m.column_rank[first] = rank[i];
            HeapTuple con = SearchSysCache1(CONSTROID, ObjectIdGetDatum(fk->conoid));
            if (HeapTupleIsValid(con)) {
                m.column_on_delete[first] =
                    reinterpret_cast<Form_pg_constraint>(GETSTRUCT(con))->confdeltype;
                ReleaseSysCache(con);
            }
            continue;
        }
        PlainReference &p = m.plain[m.nplain];
        p.parent = fk->confrelid;
        p.ncolumns = fk->nkeys;
        p.column = work_array<int>(fk->nkeys);
        p.rank = rank[i];
        bool plain = true;
        StringInfoData names;
        initStringInfo(&names);
        for (int k = 0; plain && k < fk->nkeys; k++) {
            p.column[k] = column_of(m, fk->conkey[k]);
            plain = p.column[k] >= 0 && m.columns[p.column[k]].reference == nullptr &&
                    !m.batch.target.as_text[p.column[k]];
            appendStringInfo(&names, "%s%s", k ? ", " : "",
                             get_attname(fk->confrelid, fk->confkey[k], false));
        }
        if (!plain)
            continue;
        p.parent_columns = names.data;
        p.missing = prepare_missing_parents(m, p, fk);
        m.nplain++;
    }
}

} // namespace

Jsonb *row_item(const Merge &m, const MergeRows &rows, int64 row)
{
    if (rows.item != nullptr)
        return JsonbValueToJsonb(&rows.item[row]);
    int pinned = pin_output_styles(); // as items_since prints values
    JsonbParseState *state = nullptr;
    pushJsonbValue(&state, WJB_BEGIN_OBJECT, nullptr);
    for (int c = 0; c < m.ncolumns; c++) {
        const ItemColumn &column = m.columns[c];
        JsonbValue v;
        v.type = jbvString;
        v.val.string.val = const_cast<char *>(column.name);
        v.val.string.len = column.length;
        pushJsonbValue(&state, WJB_KEY, &v);
        bool isnull =
            column.reference != nullptr ? rows.keys[c][row] == nullptr : rows.values.nulls[c][row];
        if (isnull) {
            v.type = jbvNull;
            pushJsonbValue(&state, WJB_VALUE, &v);
        } else if (column.reference != nullptr) {
            v.type = jbvBinary;
            v.val.binary.data = rows.keys[c][row];
            v.val.binary.len = 0; // pushJsonbValue reads the container itself
            pushJsonbValue(&state, WJB_VALUE, &v);
        } else {
            push_value_json(&state, column.type, rows.values.values[c][row]);
        }
    }
    Jsonb *item = JsonbValueToJsonb(pushJsonbValue(&state, WJB_END_OBJECT, nullptr));
    unpin_output_styles(pinned);
    return item;
}

namespace {

struct ResolveCall {
    Merge *m;
    MergeRows *rows;
    bool **waiting; // [column] rows waiting for that reference
    int64 first;
    int64 count;
};

// Resolves the translated references of rows first .. first + count - 1.
void run_resolve(void *arg)
{
    auto *call = static_cast<ResolveCall *>(arg);
    MergeRows &rows = *call->rows;
    for (int c = 0; c < call->m->ncolumns; c++) {
        const ItemColumn &column = call->m->columns[c];
        if (column.reference == nullptr)
            continue;
        auto **keys = work_array<JsonbContainer *>(call->count);
        bool *waiting = call->waiting[c] + call->first;
        for (int64 i = 0; i < call->count; i++) {
            int64 row = call->first + i;
            keys[i] = rows.settled[row] ? nullptr : rows.keys[c][row];
            waiting[i] = false;
        }
        resolve_keys(column.reference, keys, call->count, column.type,
                     rows.values.values[c] + call->first, rows.values.nulls[c] + call->first,
                     waiting);
    }
}

// Why each row waits: the first reference, by constraint name, whose row is missing.
struct WaitReasons {
    const char **message; // [row] or nullptr
    int *rank;            // [row]
};

void note_wait(WaitReasons &w, int64 row, int rank, const char *message)
{
    if (w.message[row] == nullptr || rank < w.rank[row]) {
        w.message[row] = message;
        w.rank[row] = rank;
    }
}

// Notes the rows whose parent row of foreign key `p` is missing.
void check_plain_reference(Merge &m, MergeRows &rows, const PlainReference &p, WaitReasons &w)
{
    int64 n = rows.values.nrows;
    Datum *rownums = work_array<Datum>(n);
    int32 *row_of = work_array<int32>(n);
    int64 count = 0;
    for (int64 row = 0; row < n; row++) {
        bool all_set = !rows.settled[row] && !rows.deleted[row];
        for (int k = 0; all_set && k < p.ncolumns; k++)
            all_set = !rows.values.nulls[p.column[k]][row]; // MATCH SIMPLE: a NULL satisfies it
        if (all_set) {
            rownums[count] = Int32GetDatum(static_cast<int32>(count));
            row_of[count++] = static_cast<int32>(row);
        }
    }
    if (count == 0)
        return;
    Datum *params = work_array<Datum>(p.ncolumns + 1);
    params[0] = PointerGetDatum(construct_array(rownums, static_cast<int>(count), INT4OID,
                                                sizeof(int32), true, TYPALIGN_INT));
    for (int k = 0; k < p.ncolumns; k++) {
        int c = p.column[k];
        Datum *values = work_array<Datum>(count);
        bool *nulls = work_array0<bool>(count);
        for (int64 i = 0; i < count; i++)
            values[i] = rows.values.values[c][row_of[i]];
        params[k + 1] = column_array(m.batch.target, c, values, nulls, count);
    }
    // Not read-only: the lookup must see the parent rows this transaction merged just before.
    MemoryContext caller = CurrentMemoryContext; // SPI returns in its own context
    if (SPI_execute_plan(p.missing, params, nullptr, false, 0) != SPI_OK_SELECT)
        elog(ERROR, "idsync: the lookup of parent rows in %s failed", relid_name(p.parent));
    MemoryContextSwitchTo(caller);
    SPITupleTable *result = SPI_tuptable;
    for (uint64 j = 0; j < SPI_processed; j++) {
        bool isnull;
        int32 i = DatumGetInt32(SPI_getbinval(result->vals[j], result->tupdesc, 1, &isnull));
        char *key = SPI_getvalue(result->vals[j], result->tupdesc, 2);
        note_wait(w, row_of[i], p.rank,
                  psprintf("waiting for %s (%s)=%s", relid_name(p.parent), p.parent_columns, key));
    }
    SPI_freetuptable(result);
}

struct WriteCall {
    Merge *m;
    const MergeRows *rows;
    const int32 *live;
    int64 count;
    MergeCounts counts;
};

// Writes rows live[0 .. count-1] on the engine.
void run_write(void *arg)
{
    auto *call = static_cast<WriteCall *>(arg);
    Merge &m = *call->m;
    Batch &b = m.batch;
    const ColumnValues &all = call->rows->values;
    int ncolumns = m.ncolumns + 1; // and the origin
    const int32 *live = call->live;
    int64 count = call->count;
    MergeCounts deletes = {0, 0};
    if (m.reg->lww) {
        // Tombstones first, then the rows newer than the tombstones kept here.
        apply_tombstones(m, *call->rows, live, count, deletes);
        int32 *rows = work_array<int32>(count);
        int64 n = 0;
        for (int64 i = 0; i < count; i++)
            if (!call->rows->deleted[live[i]])
                rows[n++] = live[i];
        count = drop_buried(m, *call->rows, rows, n);
        live = rows;
        if (count == 0) {
            call->counts = deletes;
            return;
        }
    }
    b.values = {count, work_array<Datum *>(ncolumns), work_array<bool *>(ncolumns)};
    for (int c = 0; c < ncolumns; c++) {
        b.values.values[c] = work_array<Datum>(count);
        b.values.nulls[c] = work_array<bool>(count);
        for (int64 i = 0; i < count; i++) {
            b.values.values[c][i] = all.values[c][live[i]];
            b.values.nulls[c][i] = all.nulls[c][live[i]];
        }
    }
    if (m.reg->lww) {
        b.keys = group_rows(b.target, b.values);
        keep_newest(b, m.reg);
        if (m.reg->conflicts_kept > 0)
            record_lost_rows(m, *call->rows, live, b);
        call->counts = upsert_newest(b, m.reg);
        call->counts.updated += deletes.updated;
    } else {
        resolve_batch(b);
        call->counts = {0, 0};
        for (int64 g = 0; g < b.keys.ngroups; g++)
            call->counts.inserted += b.ids.state[g] == IdState::inserted;
    }
}

void write_by_halves(Merge &m, MergeRows &rows, const int32 *live, int64 count)
{
    WriteCall call = {&m, &rows, live, count, {0, 0}};
    ErrorData *error = try_subtransaction(run_write, &call, row_error);
    if (error != nullptr && error->sqlerrcode == ERRCODE_UNIQUE_VIOLATION && m.batch.plain_first) {
        // The plain INSERT met a row after all (a concurrent merge): ON CONFLICT from here on.
        FreeErrorData(error);
        m.batch.plain_first = false;
        error = try_subtransaction(run_write, &call, row_error);
    }
    if (error == nullptr) {
        m.counts.inserted += call.counts.inserted;
        m.counts.updated += call.counts.updated;
        return;
    }
    if (count == 1) {
        set_aside_error(m, rows, live[0], error);
        return;
    }
    FreeErrorData(error);
    write_by_halves(m, rows, live, count / 2);
    write_by_halves(m, rows, live + count / 2, count - count / 2);
}

} // namespace

void begin_merge(Merge &m, Oid relid, Datum source, bool source_null)
{
    m = {};
    m.relid = relid;
    m.source = source;
    m.source_null = source_null;
    m.reg = load_registration(relid, CurrentMemoryContext);
    if (m.reg == nullptr)
        ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                        errmsg("table %s is not registered for replication", relid_name(relid))));
    if (m.reg->nkey == 0)
        ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                        errmsg("table %s has no registered key", relid_name(relid))));
    // The column types are read under a lock kept to the end of the transaction, so that they
    // cannot change before the rows are written.
    check_before_lock(relid, ACL_SELECT | ACL_INSERT);
    if (check_enable_rls(relid, InvalidOid, false) == RLS_ENABLED)
        ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
                        errmsg("row-level security hides rows of table %s from role %s",
                               relid_name(relid), GetUserNameFromId(GetUserId(), false)),
                        errhint("Replicate as the table's owner or as a role with BYPASSRLS.")));
    Relation rel = relation_open(relid, AccessShareLock);
    m.columns = work_array0<ItemColumn>(RelationGetDescr(rel)->natts);
    m.ncolumns = replicated_columns(rel, m.reg, m.columns);
    relation_close(rel, NoLock);
    for (int c = 0; c < m.ncolumns; c++)
        open_resolver(m.columns[c].reference);

    begin_batch(m.batch, relid, column_names(m.columns, m.ncolumns), m.reg->nkey);
    m.batch.merge = true;
    m.batch.plain_first = true;
    find_references(m);
}

const char *tombstone_marker(const Merge &m)
{
    return m.reg->lww ? m.reg->tombstone_column : nullptr;
}

MergeRows new_merge_rows(const Merge &m, int64 n)
{
    int ncolumns = m.ncolumns + 1;
    MergeRows rows = {};
    rows.values = {0, work_array<Datum *>(ncolumns), work_array<bool *>(ncolumns)};
    rows.keys = work_array0<JsonbContainer **>(m.ncolumns);
    for (int c = 0; c < ncolumns; c++) {
        rows.values.values[c] = work_array0<Datum>(n);
        rows.values.nulls[c] = work_array<bool>(n);
        memset(rows.values.nulls[c], true, sizeof(bool) * Max(n, 1));
        if (c < m.ncolumns && m.columns[c].reference != nullptr)
            rows.keys[c] = work_array0<JsonbContainer *>(n);
    }
    rows.settled = work_array0<bool>(n);
    rows.deleted = work_array0<bool>(n);
    rows.absent = work_array0<bool>(n);
    return rows;
}

void set_aside(Merge &m, MergeRows &rows, int64 row, int sqlerrcode, const char *message,
               const char *detail)
{
    rows.settled[row] = true;
    m.rejected++;
    park_row(m.parked, rows.point != nullptr ? &rows.point[row] : nullptr, row_item(m, rows, row),
             sqlerrcode, message, detail);
}

void set_aside_error(Merge &m, MergeRows &rows, int64 row, const ErrorData *error,
                     const char *prefix)
{
    const char *message = error->message != nullptr ? error->message : "";
    if (prefix != nullptr)
        message = psprintf("%s%s", prefix, message);
    set_aside(m, rows, row, error->sqlerrcode, message,
              error->detail != nullptr && error->detail[0] != '\0' ? error->detail : nullptr);
}

void settle_references(Merge &m, MergeRows &rows)
{
    int64 n = rows.values.nrows;
    WaitReasons w = {work_array0<const char *>(n), work_array<int>(n)};
    bool any_translated = false;
    for (int c = 0; c < m.ncolumns; c++)
        any_translated |= m.columns[c].reference != nullptr;
    if (any_translated && n > 0) {
        bool **waiting = work_array0<bool *>(m.ncolumns);
        for (int c = 0; c < m.ncolumns; c++)
            if (m.columns[c].reference != nullptr)
                waiting[c] = work_array0<bool>(n);
        // All rows at once; when a natural key does not convert, each row on its own.
        ResolveCall call = {&m, &rows, waiting, 0, n};
        ErrorData *error = try_subtransaction(run_resolve, &call, row_error);
        for (int64 row = 0; error != nullptr && row < n; row++) {
            if (rows.settled[row])
                continue;
            ResolveCall one = {&m, &rows, waiting, row, 1};
            ErrorData *row_failed = try_subtransaction(run_resolve, &one, row_error);
            if (row_failed != nullptr)
                set_aside_error(m, rows, row, row_failed, "a natural key does not convert: ");
        }
        for (int64 row = 0; row < n; row++)
            for (int c = 0; c < m.ncolumns; c++) {
                if (waiting[c] == nullptr || !waiting[c][row] || rows.settled[row])
                    continue;
                // A tombstone whose key's referenced row is not here has no row here either.
                if (!rows.deleted[row] && m.reg->lww && parent_deleted(m, rows, c, row))
                    follow_deleted_parent(m, rows, c, row);
                if (rows.deleted[row]) {
                    rows.absent[row] |= c < m.reg->nkey;
                    continue;
                }
                if (rows.values.nulls[c][row] && rows.keys[c][row] == nullptr)
                    continue; // set NULL by follow_deleted_parent
                note_wait(w, row, m.column_rank[c],
                          psprintf("waiting for %s %s",
                                   relid_name(resolver_parent(m.columns[c].reference)),
                                   JsonbToCString(nullptr, rows.keys[c][row], -1)));
            }
    }
    for (int p = 0; p < m.nplain; p++)
        check_plain_reference(m, rows, m.plain[p], w);
    for (int64 row = 0; row < n; row++)
        if (w.message[row] != nullptr)
            set_aside(m, rows, row, ERRCODE_FOREIGN_KEY_VIOLATION, w.message[row], kWaitingDetail);
}

void write_rows(Merge &m, MergeRows &rows, bool by_halves)
{
    int32 *live = work_array<int32>(rows.values.nrows);
    int64 count = 0;
    for (int64 row = 0; row < rows.values.nrows; row++)
        if (!rows.settled[row])
            live[count++] = static_cast<int32>(row);
    if (count == 0)
        return;
    if (by_halves) {
        write_by_halves(m, rows, live, count);
        return;
    }
    WriteCall call = {&m, &rows, live, count, {0, 0}};
    run_write(&call);
    m.counts.inserted += call.counts.inserted;
    m.counts.updated += call.counts.updated;
}

void flush_parked(Merge &m)
{
    write_parked(m.parked, m.relid, m.source, m.source_null);
    trim_conflicts(m);
}

Datum merge_counts_record(FunctionCallInfo fcinfo, const MergeResult &r)
{
    TupleDesc desc;
    if (get_call_result_type(fcinfo, nullptr, &desc) != TYPEFUNC_COMPOSITE)
        ereport(ERROR,
                (errcode(ERRCODE_FEATURE_NOT_SUPPORTED), errmsg("a merge must return a record")));
    Datum values[3] = {Int32GetDatum(static_cast<int32>(r.inserted)),
                       Int32GetDatum(static_cast<int32>(r.updated)),
                       Int32GetDatum(static_cast<int32>(r.rejected))};
    bool nulls[3] = {false, false, false};
    return HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(desc), values, nulls));
}

void end_merge(Merge &m)
{
    for (int c = 0; c < m.ncolumns; c++)
        close_resolver(m.columns[c].reference);
    end_batch(m.batch);
}

} // namespace idsync
