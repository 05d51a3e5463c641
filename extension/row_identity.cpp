#include "row_identity.hpp"

#include "boundary.hpp"

namespace idsync {

namespace {

bool among(AttrNumber attnum, const AttrNumber *columns, int ncolumns)
{
    for (int c = 0; c < ncolumns; c++)
        if (columns[c] == attnum)
            return true;
    return false;
}

// True when every column the index reads (keys, expressions, predicate) is among `columns`.
bool reads_only(IndexInfo *info, const AttrNumber *columns, int ncolumns)
{
    for (int k = 0; k < info->ii_NumIndexKeyAttrs; k++) {
        AttrNumber attnum = info->ii_IndexAttrNumbers[k];
        if (attnum != 0 && !among(attnum, columns, ncolumns))
            return false;
    }
    Bitmapset *used = nullptr;
    pull_varattnos(reinterpret_cast<Node *>(info->ii_Expressions), 1, &used);
    pull_varattnos(reinterpret_cast<Node *>(info->ii_Predicate), 1, &used);
    int member = -1;
    while ((member = bms_next_member(used, member)) >= 0)
        if (!among(member + FirstLowInvalidHeapAttributeNumber, columns, ncolumns))
            return false;
    return true;
}

// True when the index is plain and its key columns are exactly `columns`, in any order.
bool exactly(IndexInfo *info, const AttrNumber *columns, int ncolumns)
{
    if (info->ii_Expressions != NIL || info->ii_Predicate != NIL ||
        info->ii_NumIndexKeyAttrs != ncolumns)
        return false;
    for (int c = 0; c < ncolumns; c++) {
        bool found = false;
        for (int k = 0; k < info->ii_NumIndexKeyAttrs; k++)
            found = found || info->ii_IndexAttrNumbers[k] == columns[c];
        if (!found)
            return false;
    }
    return true;
}

// Lower is better.
int score(Relation index, IndexInfo *info)
{
    return (info->ii_Predicate != NIL ? 8 : 0) + (info->ii_Expressions != NIL ? 4 : 0) +
           (index->rd_index->indisprimary ? 0 : 2) + (info->ii_NullsNotDistinct ? 0 : 1);
}

} // namespace

Relation choose_key_index(Relation rel, const AttrNumber *columns, int ncolumns, KeyIndexRule rule,
                          IndexInfo **info)
{
    List *indexes = RelationGetIndexList(rel); // in OID order
    ListCell *lc;
    Relation best = nullptr;
    int best_score = INT_MAX;
    *info = nullptr;
    foreach (lc, indexes) {
        Relation index = index_open(lfirst_oid(lc), AccessShareLock);
        Form_pg_index form = index->rd_index;
        bool usable = form->indisunique && form->indimmediate && form->indisvalid &&
                      form->indislive && index->rd_rel->relam == BTREE_AM_OID;
        IndexInfo *candidate = usable ? BuildIndexInfo(index) : nullptr;
        if (usable && (rule == KeyIndexRule::reads_only_given_columns
                           ? reads_only(candidate, columns, ncolumns)
                           : exactly(candidate, columns, ncolumns))) {
            int s = score(index, candidate);
            if (s < best_score) {
                if (best != nullptr)
                    index_close(best, AccessShareLock);
                best = index;
                *info = candidate;
                best_score = s;
                continue;
            }
        }
        index_close(index, AccessShareLock);
    }
    list_free(indexes);
    return best;
}

bool is_integer_type(Oid type)
{
    return type == INT2OID || type == INT4OID || type == INT8OID;
}

AttrNumber id_column(Relation rel)
{
    TupleDesc desc = RelationGetDescr(rel);
    Oid pk = RelationGetPrimaryKeyIndex(rel);
    if (OidIsValid(pk)) {
        Relation pkrel = index_open(pk, AccessShareLock);
        Form_pg_index form = pkrel->rd_index;
        AttrNumber attnum = form->indnkeyatts == 1 ? form->indkey.values[0] : 0;
        index_close(pkrel, AccessShareLock);
        if (attnum > 0 && is_integer_type(TupleDescAttr(desc, attnum - 1)->atttypid))
            return attnum;
    }
    AttrNumber attnum = get_attnum(RelationGetRelid(rel), "id");
    if (attnum > 0) {
        Form_pg_attribute att = TupleDescAttr(desc, attnum - 1);
        if (is_integer_type(att->atttypid) && att->attnotnull)
            return attnum;
    }
    return 0;
}

} // namespace idsync

namespace {

// The table of a catalog-only helper, opened after the caller's right to read it is checked;
// nullptr when it is not a plain table.
Relation open_readable_table(Oid relid)
{
    if (get_rel_relkind(relid) != RELKIND_RELATION)
        return nullptr;
    if (pg_class_aclcheck(relid, GetUserId(), ACL_SELECT) != ACLCHECK_OK &&
        pg_attribute_aclcheck_all(relid, GetUserId(), ACL_SELECT, ACLMASK_ANY) != ACLCHECK_OK)
        aclcheck_error(ACLCHECK_NO_PRIV, OBJECT_TABLE, get_rel_name(relid));
    return table_open(relid, AccessShareLock);
}

} // namespace

// idsync._id_column(target regclass) RETURNS name: the id column insert_missing returns, or
// NULL.
IDSYNC_FUNCTION(idsync_id_column)
{
    if (PG_ARGISNULL(0))
        PG_RETURN_NULL();
    Relation rel = open_readable_table(PG_GETARG_OID(0));
    if (rel == nullptr)
        PG_RETURN_NULL();
    AttrNumber attnum = idsync::id_column(rel);
    Datum name = attnum == 0
                     ? Datum(0)
                     : DirectFunctionCall1(
                           namein, CStringGetDatum(NameStr(
                                       TupleDescAttr(RelationGetDescr(rel), attnum - 1)->attname)));
    table_close(rel, AccessShareLock);
    if (attnum == 0)
        PG_RETURN_NULL();
    PG_RETURN_DATUM(name);
}

// idsync._key_index(target regclass, key_columns name[]) RETURNS regclass: the unique index
// that identifies the rows of a registered table by exactly its key columns, or NULL.
IDSYNC_FUNCTION(idsync_key_index)
{
    if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
        PG_RETURN_NULL();
    Oid relid = PG_GETARG_OID(0);
    Datum *names;
    bool *nulls;
    int n;
    deconstruct_array(PG_GETARG_ARRAYTYPE_P(1), NAMEOID, NAMEDATALEN, false, TYPALIGN_CHAR, &names,
                      &nulls, &n);
    AttrNumber *columns = static_cast<AttrNumber *>(palloc(sizeof(AttrNumber) * Max(n, 1)));
    for (int c = 0; c < n; c++) {
        columns[c] =
            nulls[c] ? InvalidAttrNumber : get_attnum(relid, NameStr(*DatumGetName(names[c])));
        if (columns[c] == InvalidAttrNumber)
            PG_RETURN_NULL();
    }
    Relation rel = open_readable_table(relid);
    if (rel == nullptr)
        PG_RETURN_NULL();
    IndexInfo *info;
    Relation index =
        idsync::choose_key_index(rel, columns, n, idsync::KeyIndexRule::exactly_key_columns, &info);
    Oid result = index == nullptr ? InvalidOid : RelationGetRelid(index);
    if (index != nullptr)
        index_close(index, AccessShareLock);
    table_close(rel, AccessShareLock);
    if (!OidIsValid(result))
        PG_RETURN_NULL();
    PG_RETURN_OID(result);
}
