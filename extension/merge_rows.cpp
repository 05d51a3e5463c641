#include "merge_rows.hpp"

#include "reference_keys.hpp"
#include "work_array.hpp"

namespace idsync {

const Registration *engine_registration(Oid relid, bool lww_ok)
{
    const Registration *reg = load_registration(relid, CurrentMemoryContext);
    if (reg == nullptr)
        ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                        errmsg("table with OID %u is not registered for replication", relid)));
    if ((reg->lww && !lww_ok) || reg->nkey == 0 ||
        check_enable_rls(relid, InvalidOid, false) == RLS_ENABLED)
        return nullptr;
    return reg;
}

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
            if (!prepare_item_column(c, att))
                return -1;
            if (registered_name_among(name, reg->reference_columns, reg->nreferences)) {
                c.reference = column_resolver(rel, att->attnum, 1);
                if (c.reference == nullptr)
                    return -1;
            }
        }
    return n;
}

bool resolve_references(ColumnValues &v, ItemColumn *columns, int ncolumns)
{
    for (int c = 0; c < ncolumns; c++) {
        if (columns[c].reference == nullptr)
            continue;
        auto **keys = work_array<JsonbContainer *>(v.nrows);
        for (int64 row = 0; row < v.nrows; row++)
            keys[row] = v.nulls[c][row]
                            ? nullptr
                            : reinterpret_cast<JsonbContainer *>(DatumGetPointer(v.values[c][row]));
        if (!resolve_keys(columns[c].reference, keys, v.nrows, columns[c].type, v.values[c],
                          v.nulls[c]))
            return false;
    }
    return true;
}

ArrayType *column_names(const ItemColumn *columns, int ncolumns)
{
    Datum *names = work_array<Datum>(ncolumns + 1);
    for (int c = 0; c < ncolumns; c++)
        names[c] = CStringGetTextDatum(columns[c].name);
    names[ncolumns] = CStringGetTextDatum("idsync_origin");
    return construct_array(names, ncolumns + 1, TEXTOID, -1, false, TYPALIGN_INT);
}

void close_resolvers(ItemColumn *columns, int ncolumns)
{
    for (int c = 0; c < ncolumns; c++)
        close_resolver(columns[c].reference);
}

} // namespace idsync
