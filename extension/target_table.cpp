#include "target_table.hpp"

#include "row_identity.hpp"

namespace idsync {

namespace {

// Columns from `carried_from` on (a merge's non-key columns) may be arrays and composites: they
// are carried into the rows inserted, never compared.
void resolve_columns(TargetTable &t, ArrayType *column_names, int carried_from)
{
    Datum *names;
    bool *nulls;
    int n;
    if (ARR_NDIM(column_names) > 1)
        ereport(ERROR, (errcode(ERRCODE_DATATYPE_MISMATCH),
                        errmsg("columns must be a one-dimensional array")));
    deconstruct_array(column_names, TEXTOID, -1, false, TYPALIGN_INT, &names, &nulls, &n);
    if (n == 0)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("columns must name at least one column")));

    t.ncolumns = n;
    t.attnums = static_cast<AttrNumber *>(palloc(sizeof(AttrNumber) * n));
    t.columns = static_cast<const char **>(palloc(sizeof(char *) * n));
    t.types = static_cast<Oid *>(palloc(sizeof(Oid) * n));
    t.typmods = static_cast<int32 *>(palloc(sizeof(int32) * n));
    t.collations = static_cast<Oid *>(palloc(sizeof(Oid) * n));
    t.as_text = static_cast<bool *>(palloc0(sizeof(bool) * n));
    TupleDesc desc = RelationGetDescr(t.rel);

    for (int c = 0; c < n; c++) {
        if (nulls[c])
            ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
                            errmsg("columns must not contain NULL")));
        const char *name = TextDatumGetCString(names[c]);
        AttrNumber attnum = get_attnum(RelationGetRelid(t.rel), name);
        if (attnum == InvalidAttrNumber)
            ereport(ERROR, (errcode(ERRCODE_UNDEFINED_COLUMN),
                            errmsg("column \"%s\" of relation \"%s\" does not exist", name,
                                   RelationGetRelationName(t.rel))));
        if (attnum < 0)
            ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                            errmsg("cannot use system column \"%s\"", name)));
        for (int prev = 0; prev < c; prev++)
            if (t.attnums[prev] == attnum)
                ereport(ERROR, (errcode(ERRCODE_DUPLICATE_COLUMN),
                                errmsg("column \"%s\" is given more than once", name)));
        Form_pg_attribute att = TupleDescAttr(desc, attnum - 1);
        if (att->attgenerated)
            ereport(ERROR, (errcode(ERRCODE_GENERATED_ALWAYS),
                            errmsg("cannot insert into generated column \"%s\"", name)));
        Oid base = getBaseType(att->atttypid);
        if ((type_is_array(base) || type_is_rowtype(base)) && c < carried_from)
            ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                            errmsg("column \"%s\" has type %s; array and composite columns are not "
                                   "supported",
                                   name, format_type_be(att->atttypid))));
        t.attnums[c] = attnum;
        t.columns[c] = name;
        t.types[c] = att->atttypid;
        t.typmods[c] = att->atttypmod;
        t.collations[c] = att->attcollation;
        // Arrays have no array type of their own, and ROWS FROM would spread a composite over
        // several columns: both travel as text.
        t.as_text[c] = !OidIsValid(get_array_type(att->atttypid)) || type_is_rowtype(base);
    }
}

// The default btree order of every given column: rows are equal when all columns compare 0,
// NULL equal to NULL.
void prepare_column_order(TargetTable &t)
{
    t.column_order = static_cast<SortSupportData *>(palloc0(sizeof(SortSupportData) * t.nmatched));
    for (int c = 0; c < t.nmatched; c++) {
        TypeCacheEntry *tc = lookup_type_cache(t.types[c], TYPECACHE_LT_OPR);
        if (!OidIsValid(tc->lt_opr))
            ereport(ERROR, (errcode(ERRCODE_UNDEFINED_FUNCTION),
                            errmsg("could not identify an ordering operator for type %s",
                                   format_type_be(t.types[c])),
                            errdetail("insert_missing compares rows by every given column, "
                                      "including \"%s\".",
                                      t.columns[c])));
        SortSupport s = &t.column_order[c];
        s->ssup_cxt = CurrentMemoryContext;
        s->ssup_collation = t.collations[c];
        s->ssup_attno = t.attnums[c];
        PrepareSortSupportFromOrderingOp(tc->lt_opr, s);
    }
}

// SELECT and INSERT (lookups: SELECT), on the table or on every column a call reads or writes.
void check_privileges(const TargetTable &t, bool lookup)
{
    Oid relid = RelationGetRelid(t.rel);
    Oid user = GetUserId();
    const AclMode modes[] = {ACL_SELECT, ACL_INSERT};
    for (AclMode mode : modes) {
        if (lookup && mode == ACL_INSERT)
            continue;
        if (pg_class_aclcheck(relid, user, mode) == ACLCHECK_OK)
            continue;
        bool ok = mode != ACL_SELECT || t.id_attnum == 0 ||
                  pg_attribute_aclcheck(relid, t.id_attnum, user, mode) == ACLCHECK_OK;
        // Columns are read to match rows, written all.
        int checked = mode == ACL_SELECT ? t.nmatched : t.ncolumns;
        for (int c = 0; ok && c < checked; c++)
            ok = pg_attribute_aclcheck(relid, t.attnums[c], user, mode) == ACLCHECK_OK;
        if (!ok)
            aclcheck_error(ACLCHECK_NO_PRIV, OBJECT_TABLE, RelationGetRelationName(t.rel));
    }
}

// The id column (row_identity.hpp), or 42P16.
void resolve_id_column(TargetTable &t, bool required)
{
    t.id_attnum = id_column(t.rel);
    if (t.id_attnum > 0 || !required) {
        if (t.id_attnum > 0)
            t.id_type = TupleDescAttr(RelationGetDescr(t.rel), t.id_attnum - 1)->atttypid;
        return;
    }
    ereport(ERROR, (errcode(ERRCODE_INVALID_TABLE_DEFINITION),
                    errmsg("table \"%s\" has no integer id column", RelationGetRelationName(t.rel)),
                    errhint("idsync returns the table's single-column smallint, integer or bigint "
                            "primary key, or else its NOT NULL integer column named \"id\".")));
}

// The unique index that identifies rows (row_identity.hpp): one that reads only given columns,
// or for a merge the registration's, on exactly the key columns.
void choose_unique_index(TargetTable &t, KeyIndexRule rule)
{
    t.index = choose_key_index(t.rel, t.attnums, t.nmatched, rule, &t.index_info);
    if (t.index == nullptr) {
        StringInfoData cols;
        initStringInfo(&cols);
        for (int c = 0; c < t.ncolumns; c++)
            appendStringInfo(&cols, "%s%s", c ? ", " : "", quote_identifier(t.columns[c]));
        ereport(ERROR,
                (errcode(ERRCODE_INVALID_COLUMN_REFERENCE),
                 errmsg("no unique index of \"%s\" covers only the columns (%s)",
                        RelationGetRelationName(t.rel), cols.data),
                 errdetail("Without one, concurrent calls could insert the same row twice."),
                 errhint("Create a unique index on the natural key, for example CREATE UNIQUE "
                         "INDEX ON %s (%s).",
                         t.name, cols.data)));
    }
    BuildSpeculativeIndexInfo(t.index, t.index_info);
}

void prepare_key_order(TargetTable &t)
{
    IndexInfo *info = t.index_info;
    t.nkeys = info->ii_NumIndexKeyAttrs;
    t.key_column = static_cast<int *>(palloc(sizeof(int) * t.nkeys));
    t.key_order = static_cast<SortSupportData *>(palloc0(sizeof(SortSupportData) * t.nkeys));
    t.index_computes_keys = info->ii_Expressions != NIL || info->ii_Predicate != NIL;
    for (int k = 0; k < t.nkeys; k++) {
        t.key_column[k] = -1;
        for (int c = 0; c < t.ncolumns; c++)
            if (info->ii_IndexAttrNumbers[k] == t.attnums[c])
                t.key_column[k] = c;
        int16 option = t.index->rd_indoption[k];
        SortSupport s = &t.key_order[k];
        s->ssup_cxt = CurrentMemoryContext;
        s->ssup_collation = t.index->rd_indcollation[k];
        s->ssup_nulls_first = (option & INDOPTION_NULLS_FIRST) != 0;
        s->ssup_attno = k + 1;
        PrepareSortSupportFromIndexRel(
            t.index, (option & INDOPTION_DESC) ? BTGreaterStrategyNumber : BTLessStrategyNumber, s);
    }
}

// nkey 0: insert_missing's target; else the registered key is the first nkey columns: a merge's
// target, or with `lookup_id` a table whose ids (in that column) are only looked up.
TargetTable open_some_target(Oid relid, ArrayType *column_names, int nkey, AttrNumber lookup_id)
{
    TargetTable t = {};
    bool lookup = lookup_id != InvalidAttrNumber;
    check_before_lock(relid, lookup ? ACL_SELECT : ACL_SELECT | ACL_INSERT);
    t.rel = relation_open(relid, lookup ? AccessShareLock : RowExclusiveLock);
    t.name = quote_qualified_identifier(get_namespace_name(RelationGetNamespace(t.rel)),
                                        RelationGetRelationName(t.rel));
    bool merge = nkey > 0;
    resolve_columns(t, column_names, merge && !lookup ? nkey : PG_INT32_MAX);
    t.nmatched = merge ? Min(nkey, t.ncolumns) : t.ncolumns;
    resolve_id_column(t, !merge);
    if (lookup) {
        t.id_attnum = lookup_id;
        t.id_type = TupleDescAttr(RelationGetDescr(t.rel), lookup_id - 1)->atttypid;
    }
    check_privileges(t, lookup);
    choose_unique_index(t, merge ? KeyIndexRule::exactly_key_columns
                                 : KeyIndexRule::reads_only_given_columns);
    prepare_key_order(t);
    prepare_column_order(t);
    t.row_security = check_enable_rls(relid, InvalidOid, false) == RLS_ENABLED;
    return t;
}

} // namespace

TargetTable open_target(Oid relid, ArrayType *column_names)
{
    return open_some_target(relid, column_names, 0, InvalidAttrNumber);
}

TargetTable open_merge_target(Oid relid, ArrayType *column_names, int nkey)
{
    return open_some_target(relid, column_names, nkey, InvalidAttrNumber);
}

TargetTable open_lookup_target(Oid relid, ArrayType *column_names, int nkey, AttrNumber id)
{
    return open_some_target(relid, column_names, nkey, id);
}

void close_target(TargetTable &t)
{
    index_close(t.index, AccessShareLock);
    relation_close(t.rel, NoLock); // the lock is kept until the end of the transaction
}

// The staging table must be a relation rows can be read from, and the caller must be allowed to
// read some of it: checked before it is locked.
void check_staging_access(Oid staging)
{
    char kind = get_rel_relkind(staging);
    if (kind == '\0')
        ereport(ERROR, (errcode(ERRCODE_UNDEFINED_TABLE),
                        errmsg("relation with OID %u does not exist", staging)));
    if (kind != RELKIND_RELATION && kind != RELKIND_PARTITIONED_TABLE && kind != RELKIND_VIEW &&
        kind != RELKIND_MATVIEW && kind != RELKIND_FOREIGN_TABLE)
        ereport(ERROR, (errcode(ERRCODE_WRONG_OBJECT_TYPE),
                        errmsg("\"%s\" cannot be read as a staging table", get_rel_name(staging)),
                        errdetail("A staging table is a table, view or materialized view.")));
    if (pg_class_aclcheck(staging, GetUserId(), ACL_SELECT) != ACLCHECK_OK &&
        pg_attribute_aclcheck_all(staging, GetUserId(), ACL_SELECT, ACLMASK_ANY) != ACLCHECK_OK)
        aclcheck_error(ACLCHECK_NO_PRIV, get_relkind_objtype(kind), get_rel_name(staging));
}

// The kind of relation and some privilege on it, from the catalogs before the table is locked:
// a role with no rights on a table cannot make calls queue behind the locks on it.
void check_before_lock(Oid relid, AclMode needed)
{
    char kind = get_rel_relkind(relid);
    if (kind == '\0')
        ereport(ERROR, (errcode(ERRCODE_UNDEFINED_TABLE),
                        errmsg("relation with OID %u does not exist", relid)));
    if (kind != RELKIND_RELATION)
        ereport(ERROR, (errcode(ERRCODE_WRONG_OBJECT_TYPE),
                        errmsg("\"%s\" is not a plain table", get_rel_name(relid)),
                        errdetail("idsync writes to ordinary tables only, not to views, foreign, "
                                  "partitioned or other relations.")));
    Oid user = GetUserId();
    if (pg_class_aclcheck(relid, user, needed) != ACLCHECK_OK &&
        pg_attribute_aclcheck_all(relid, user, needed, ACLMASK_ANY) != ACLCHECK_OK)
        aclcheck_error(ACLCHECK_NO_PRIV, OBJECT_TABLE, get_rel_name(relid));
}

char *qualified_operator(Oid opno)
{
    HeapTuple tuple = SearchSysCache1(OPEROID, ObjectIdGetDatum(opno));
    if (!HeapTupleIsValid(tuple))
        elog(ERROR, "cache lookup failed for operator %u", opno);
    Form_pg_operator op = reinterpret_cast<Form_pg_operator>(GETSTRUCT(tuple));
    char *name = psprintf("OPERATOR(%s.%s)", quote_identifier(get_namespace_name(op->oprnamespace)),
                          NameStr(op->oprname));
    ReleaseSysCache(tuple);
    return name;
}

void append_key_order(StringInfo sql, const TargetTable &t)
{
    Oid index = RelationGetRelid(t.index);
    for (int k = 0; k < t.nkeys; k++) {
        char *key =
            TextDatumGetCString(DirectFunctionCall3(pg_get_indexdef_ext, ObjectIdGetDatum(index),
                                                    Int32GetDatum(k + 1), BoolGetDatum(false)));
        int16 option = t.index->rd_indoption[k];
        Oid opno = get_opfamily_member(
            t.index->rd_opfamily[k], t.index->rd_opcintype[k], t.index->rd_opcintype[k],
            (option & INDOPTION_DESC) ? BTGreaterStrategyNumber : BTLessStrategyNumber);
        appendStringInfo(sql, "%s(%s)", k ? ", " : "", key);
        if (OidIsValid(t.index->rd_indcollation[k]))
            appendStringInfo(sql, " COLLATE %s",
                             generate_collation_name(t.index->rd_indcollation[k]));
        appendStringInfo(sql, " USING %s NULLS %s", qualified_operator(opno),
                         (option & INDOPTION_NULLS_FIRST) ? "FIRST" : "LAST");
    }
}

int64 read_id(const TargetTable &t, TupleTableSlot *slot)
{
    bool isnull;
    if (t.id_attnum == 0)
        return 0;
    Datum id = slot_getattr(slot, t.id_attnum, &isnull);
    switch (t.id_type) {
    case INT2OID:
        return DatumGetInt16(id);
    case INT4OID:
        return DatumGetInt32(id);
    default:
        return DatumGetInt64(id);
    }
}

} // namespace idsync
