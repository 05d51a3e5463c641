#include "registration.hpp"

#include "boundary.hpp"
#include "state_access.hpp"

namespace idsync {

namespace {

// A text[] column of the current SPI row as C strings in `context`.
int text_array(HeapTuple row, TupleDesc desc, int column, MemoryContext context, char ***out)
{
    bool isnull;
    Datum value = SPI_getbinval(row, desc, column, &isnull);
    *out = nullptr;
    if (isnull)
        return 0;
    Datum *elems;
    bool *nulls;
    int n;
    deconstruct_array(DatumGetArrayTypeP(value), TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls,
                      &n);
    *out = static_cast<char **>(MemoryContextAllocZero(context, sizeof(char *) * Max(n, 1)));
    for (int i = 0; i < n; i++)
        (*out)[i] =
            nulls[i] ? nullptr : MemoryContextStrdup(context, TextDatumGetCString(elems[i]));
    return n;
}

char *text_value(HeapTuple row, TupleDesc desc, int column, MemoryContext context)
{
    char *value = SPI_getvalue(row, desc, column);
    return value == nullptr ? nullptr : MemoryContextStrdup(context, value);
}

} // namespace

const Registration *load_registration(Oid relid, MemoryContext context)
{
    Oid type = OIDOID;
    Datum arg = ObjectIdGetDatum(relid);
    Registration *reg = nullptr;
    // Before ALTER EXTENSION idsync UPDATE to 0.5.0 (the library is newer than the schema):
    // no reference queries yet. Tables with references refuse writes until the update
    // (add_natural_rows), since their old triggers kept SQL in their arguments.
    Oid tables = get_relname_relid("tables", get_namespace_oid("idsync", false));
    bool has_references = get_attnum(tables, "reference_columns") != InvalidAttrNumber;
    const char *sql =
        has_references
            ? "SELECT t.mode, t.point_column::pg_catalog.text, t.version_column::pg_catalog.text, "
              "t.tombstone_column::pg_catalog.text, t.local_columns::pg_catalog.text[], "
              "t.reference_columns::pg_catalog.text[], t.reference_queries "
              "FROM idsync.tables t WHERE t.relid OPERATOR(pg_catalog.=) "
              "$1::pg_catalog.oid::pg_catalog.regclass"
            : "SELECT t.mode, t.point_column::pg_catalog.text, t.version_column::pg_catalog.text, "
              "t.tombstone_column::pg_catalog.text, t.local_columns::pg_catalog.text[], "
              "NULL::pg_catalog.text[], NULL::pg_catalog.text[] "
              "FROM idsync.tables t WHERE t.relid OPERATOR(pg_catalog.=) "
              "$1::pg_catalog.oid::pg_catalog.regclass";

    OwnerScope scope = enter_owner_scope();
    if (SPI_connect() != SPI_OK_CONNECT)
        elog(ERROR, "idsync could not connect to SPI");
    if (SPI_execute_with_args(sql, 1, &type, &arg, nullptr, true, 1) != SPI_OK_SELECT)
        elog(ERROR, "idsync: reading the registration of a table failed");
    if (SPI_processed == 1) {
        HeapTuple row = SPI_tuptable->vals[0];
        TupleDesc desc = SPI_tuptable->tupdesc;
        reg = static_cast<Registration *>(MemoryContextAllocZero(context, sizeof(Registration)));
        reg->relid = relid;
        char *mode = SPI_getvalue(row, desc, 1);
        reg->lww = mode != nullptr && strcmp(mode, "lww") == 0;
        reg->point_column = text_value(row, desc, 2, context);
        reg->version_column = text_value(row, desc, 3, context);
        reg->tombstone_column = text_value(row, desc, 4, context);
        reg->nlocal = text_array(row, desc, 5, context, &reg->local_columns);
        int ncolumns = text_array(row, desc, 6, context, &reg->reference_columns);
        int nqueries = text_array(row, desc, 7, context, &reg->reference_queries);
        reg->nreferences = Min(ncolumns, nqueries);
        reg->schema_outdated = !has_references;
    }
    SPI_finish();
    leave_owner_scope(scope);
    return reg;
}

const Registration *trigger_registration(TriggerData *td, MemoryContext context,
                                         const char *function)
{
    const Registration *reg = load_registration(RelationGetRelid(td->tg_relation), context);
    if (reg == nullptr)
        ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                        errmsg("%s fired on table \"%s\", which is not registered for replication",
                               function, RelationGetRelationName(td->tg_relation)),
                        errhint("idsync's triggers are attached by idsync.replicate() only.")));
    return reg;
}

} // namespace idsync
