#include "natural_form.hpp"

#include "boundary.hpp"
#include "insert_missing.hpp"
#include "registration.hpp"
#include "spi_calls.hpp"
#include "state_access.hpp"
#include "tombstones.hpp"
#include "work_array.hpp"

namespace idsync {

namespace {

} // namespace

TranslatedList translated(Oid relid)
{
    MemoryContext caller = CurrentMemoryContext;
    // As the owner: it reads the catalogs and idsync's registrations only, and the triggers of
    // registered tables call it in the name of writers who may not run idsync's functions.
    OwnerScope scope = enter_owner_scope();
    if (SPI_connect() != SPI_OK_CONNECT)
        elog(ERROR, "idsync could not connect to SPI");
    Oid types[1] = {OIDOID};
    Datum values[1] = {ObjectIdGetDatum(relid)};
    run_pinned(
        "SELECT t.column_name::pg_catalog.text, t.parent::pg_catalog.oid, "
        "t.parent_column::pg_catalog.text FROM idsync._translated($1::pg_catalog.regclass) t",
        1, types, values, nullptr, false, 0);
    TranslatedList list;
    list.n = static_cast<int>(SPI_processed);
    list.refs = static_cast<Translated *>(
        MemoryContextAllocZero(caller, sizeof(Translated) * (list.n > 0 ? list.n : 1)));
    for (int i = 0; i < list.n; i++) {
        HeapTuple row = SPI_tuptable->vals[i];
        TupleDesc desc = SPI_tuptable->tupdesc;
        bool isnull;
        list.refs[i].column = MemoryContextStrdup(caller, SPI_getvalue(row, desc, 1));
        list.refs[i].parent = DatumGetObjectId(SPI_getbinval(row, desc, 2, &isnull));
        list.refs[i].parent_column = MemoryContextStrdup(caller, SPI_getvalue(row, desc, 3));
    }
    SPI_finish();
    leave_owner_scope(scope);
    return list;
}

namespace {

const Translated *find(const TranslatedList &list, const char *column)
{
    for (int i = 0; i < list.n; i++)
        if (strcmp(list.refs[i].column, column) == 0)
            return &list.refs[i];
    return nullptr;
}

struct Walk {
    NaturalPurpose purpose;
    StringInfoData joins; // the LEFT JOINs of the referenced rows
};

// The natural key of the row of `parent` whose `parent_column` equals the SQL expression `ref`,
// as an SQL expression (NULL when ref is NULL); the join of that row, as `alias`, goes to
// walk->joins, and nested keys join theirs after it.
char *natural_key(Walk *walk, Oid parent, const char *parent_column, const char *ref,
                  const char *alias, int depth)
{
    if (depth > kMaxNesting)
        ereport(ERROR,
                (errcode(ERRCODE_STATEMENT_TOO_COMPLEX),
                 errmsg("natural keys nest deeper than %d levels at table %s", kMaxNesting,
                        relid_name(parent)),
                 errhint("A chain of key columns that reference each other in a cycle cannot be "
                         "replicated.")));
    require_replicable(parent);
    const Registration *reg = load_registration(parent, CurrentMemoryContext);
    const char *qalias = quote_identifier(alias);
    appendStringInfo(&walk->joins, " LEFT JOIN %s %s ON %s.%s OPERATOR(pg_catalog.=) %s",
                     relid_name(parent), qalias, qalias, quote_identifier(parent_column), ref);
    TranslatedList nested = translated(parent);
    StringInfoData parts;
    initStringInfo(&parts);
    for (int k = 0; k < reg->nkey; k++) {
        const char *column = reg->key_columns[k];
        char *part = psprintf("%s.%s", qalias, quote_identifier(column));
        if (const Translated *r = find(nested, column))
            part = natural_key(walk, r->parent, r->parent_column, part,
                               psprintf("%s_%d", alias, k + 1), depth + 1);
        if (k > 0)
            appendStringInfoString(&parts, ", ");
        if (walk->purpose == NaturalPurpose::json)
            appendStringInfo(&parts, "%s, %s", quote_literal_cstr(column), part);
        else
            appendStringInfo(&parts, "%s AS %s", part, quote_identifier(column));
    }
    if (walk->purpose == NaturalPurpose::json)
        return psprintf("CASE WHEN %s IS NULL THEN NULL ELSE pg_catalog.jsonb_build_object(%s) END",
                        ref, parts.data);
    return psprintf("CASE WHEN %s IS NULL THEN NULL ELSE (SELECT idsync.row_hash(k.*, "
                    "'{}'::pg_catalog.text[]) FROM (SELECT %s) k) END",
                    ref, parts.data);
}

} // namespace

char *natural_key_by_id(Oid parent, const char *parent_column)
{
    Walk json, hash;
    json.purpose = NaturalPurpose::json;
    hash.purpose = NaturalPurpose::hash;
    initStringInfo(&json.joins);
    initStringInfo(&hash.joins);
    char *json_key = natural_key(&json, parent, parent_column, "c.x", "pj", 1);
    char *hash_key = natural_key(&hash, parent, parent_column, "c.x", "ph", 1);
    return psprintf("SELECT %s, %s FROM (SELECT $1::pg_catalog.int8 AS x) c%s%s WHERE pj.%s IS NOT "
                    "NULL",
                    json_key, hash_key, json.joins.data, hash.joins.data,
                    quote_identifier(parent_column));
}

char *natural_select(Oid relid, const char *source, NaturalPurpose purpose, const char *extra)
{
    require_replicable(relid);
    const Registration *reg = load_registration(relid, CurrentMemoryContext);
    TranslatedList refs = translated(relid);
    Walk walk;
    walk.purpose = purpose;
    initStringInfo(&walk.joins);
    StringInfoData items;
    initStringInfo(&items);
    HeapTuple cls = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
    if (!HeapTupleIsValid(cls))
        elog(ERROR, "cache lookup failed for relation %u", relid);
    int natts = reinterpret_cast<Form_pg_class>(GETSTRUCT(cls))->relnatts;
    ReleaseSysCache(cls);
    int n = 0;
    for (AttrNumber attnum = 1; attnum <= natts; attnum++) {
        HeapTuple att = SearchSysCache2(ATTNUM, ObjectIdGetDatum(relid), Int16GetDatum(attnum));
        if (!HeapTupleIsValid(att))
            continue;
        auto *form = reinterpret_cast<Form_pg_attribute>(GETSTRUCT(att));
        char *column = form->attisdropped ? nullptr : pstrdup(NameStr(form->attname));
        ReleaseSysCache(att);
        if (column == nullptr || registered_name_among(column, reg->local_columns, reg->nlocal))
            continue;
        n++;
        if (n > 1)
            appendStringInfoString(&items, ", ");
        char *value = psprintf("c.%s", quote_identifier(column));
        if (const Translated *r = find(refs, column))
            appendStringInfo(
                &items, "%s AS %s",
                natural_key(&walk, r->parent, r->parent_column, value, psprintf("p%d", n), 1),
                quote_identifier(column));
        else
            appendStringInfoString(&items, value);
    }
    if (extra != nullptr)
        appendStringInfo(&items, "%s%s", n > 0 ? ", " : "", extra);
    return psprintf("SELECT %s FROM %s c%s", items.data, source, walk.joins.data);
}

} // namespace idsync

using namespace idsync;

namespace {

// The plan's query of items_since for `relid`: (point, item, origin) of the changes after $1 up
// to $2, at most $3, in point order; $4 the receiver, $5 this node. A row the receiver wrote
// itself goes as its point alone (item NULL): it moves the receiver's sync point, nothing else.
char *live_items_query(Oid relid)
{
    require_replicable(relid);
    const Registration *reg = load_registration(relid, CurrentMemoryContext);
    const char *point = quote_identifier(reg->point_column);
    char *changes = psprintf("FROM %s r WHERE r.%s OPERATOR(pg_catalog.>) $1 AND r.%s "
                             "OPERATOR(pg_catalog.<=) $2 ORDER BY r.%s LIMIT $3",
                             relid_name(relid), point, point, point);
    if (translated(relid).n == 0) {
        // The local columns leave by name, as a text[] literal.
        Datum *names = work_array<Datum>(reg->nlocal);
        for (int i = 0; i < reg->nlocal; i++)
            names[i] = CStringGetTextDatum(reg->local_columns[i]);
        ArrayType *locals = construct_array(names, reg->nlocal, TEXTOID, -1, false, TYPALIGN_INT);
        char *literal = OidOutputFunctionCall(F_ARRAY_OUT, PointerGetDatum(locals));
        return psprintf("SELECT r.%s, CASE WHEN COALESCE(r.idsync_origin, $5) "
                        "OPERATOR(pg_catalog.=) $4 THEN NULL ELSE pg_catalog.to_jsonb(r.*) "
                        "OPERATOR(pg_catalog.-) %s::pg_catalog.text[] END, "
                        "COALESCE(r.idsync_origin, $5) %s",
                        point, quote_literal_cstr(literal), changes);
    }
    char *rows = natural_select(relid, psprintf("(SELECT * %s)", changes), NaturalPurpose::json,
                                psprintf("c.%s, c.idsync_origin", point));
    return psprintf("SELECT n.%s, CASE WHEN COALESCE(n.idsync_origin, $5) OPERATOR(pg_catalog.=) "
                    "$4 THEN NULL ELSE pg_catalog.to_jsonb(n.*) OPERATOR(pg_catalog.-) %s "
                    "OPERATOR(pg_catalog.-) 'idsync_origin'::pg_catalog.text END, "
                    "COALESCE(n.idsync_origin, $5) FROM (%s) n ORDER BY n.%s",
                    point, quote_literal_cstr(reg->point_column), rows, point);
}

// In lww tables, the tombstones too, in the same point order.
char *items_query(Oid relid)
{
    char *live = live_items_query(relid);
    const Registration *reg = load_registration(relid, CurrentMemoryContext);
    if (!reg->lww)
        return live;
    return psprintf("SELECT * FROM ((%s) UNION ALL (%s)) u ORDER BY 1 LIMIT $3", live,
                    tombstone_items_query(relid, reg));
}

} // namespace

// idsync._items_query(target regclass) RETURNS text: the query of items_since for `target`,
// kept in its plan by idsync._build_plan.
IDSYNC_FUNCTION(idsync_items_query)
{
    Oid relid = DatumGetObjectId(required_arg(fcinfo, 0, "target"));
    PG_RETURN_TEXT_P(cstring_to_text(items_query(relid)));
}

// idsync._content_state_query(target regclass) RETURNS text: the query of the content state of
// `target` (row_count, hash1, hash2) computed afresh from its rows, references hashed as the
// natural keys they point at: the state the content trigger keeps.
IDSYNC_FUNCTION(idsync_content_state_query)
{
    Oid relid = DatumGetObjectId(required_arg(fcinfo, 0, "target"));
    char *rows = natural_select(relid, relid_name(relid), NaturalPurpose::hash, nullptr);
    PG_RETURN_TEXT_P(cstring_to_text(psprintf(
        "SELECT pg_catalog.count(*)::pg_catalog.int8 AS row_count, "
        "COALESCE(pg_catalog.bit_xor(('x' OPERATOR(pg_catalog.||) pg_catalog.\"left\"(h, 16))"
        "::pg_catalog.\"bit\"(64)::pg_catalog.int8), 0) AS hash1, "
        "COALESCE(pg_catalog.bit_xor(('x' OPERATOR(pg_catalog.||) pg_catalog.\"right\"(h, 16))"
        "::pg_catalog.\"bit\"(64)::pg_catalog.int8), 0) AS hash2 "
        "FROM (SELECT pg_catalog.replace(idsync.row_hash(n.*, '{}'::pg_catalog.text[])"
        "::pg_catalog.text, '-', '') AS h FROM (%s) n) x",
        rows)));
}

// idsync._ref_hash_query(parent regclass, parent_column name) RETURNS text: the query the
// content trigger runs for a translated reference to `parent`: (id, the row hash of the natural
// key of the parent row with that id) for the ids in $1 (bigint[]), the hash natural_select
// gives the reference. An id whose row this snapshot does not show gives no row (the trigger
// then raises), not the hash of a key of NULLs.
IDSYNC_FUNCTION(idsync_ref_hash_query)
{
    Oid parent = DatumGetObjectId(required_arg(fcinfo, 0, "parent"));
    const char *column = NameStr(*DatumGetName(required_arg(fcinfo, 1, "parent_column")));
    Walk walk;
    walk.purpose = NaturalPurpose::hash;
    initStringInfo(&walk.joins);
    char *key = natural_key(&walk, parent, column, "c.x", "p1", 1);
    PG_RETURN_TEXT_P(cstring_to_text(
        psprintf("SELECT c.x, %s FROM pg_catalog.unnest($1::pg_catalog.int8[]) AS c(x)%s WHERE "
                 "p1.%s IS NOT NULL",
                 key, walk.joins.data, quote_identifier(column))));
}
