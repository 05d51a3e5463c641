// The table a call writes to: its given columns, its id column and the unique index that
// identifies its rows, all resolved and checked once per call.
#pragma once

#include "pg.hpp"

namespace idsync {

struct TargetTable {
    Relation rel;     // opened with RowExclusiveLock, closed by close_target()
    const char *name; // schema-qualified and quoted, ready for SQL text
    int ncolumns;     // the given columns, in the caller's order
    // The first nmatched given columns identify a row: rows equal in them are one row (grouped,
    // probed, matched). The others (merges only) are carried into the rows inserted.
    int nmatched;
    AttrNumber *attnums;  // attribute number of each given column
    const char **columns; // name of each given column
    Oid *types;
    int32 *typmods;
    Oid *collations;
    SortSupportData *column_order; // default btree order of each given column: equality is 0
    // Per given column: its values travel to SQL as text (an array or composite column of a
    // merge, whose values cannot make an array parameter that unnest reads back as they are;
    // column_param_type).
    bool *as_text;

    AttrNumber id_attnum; // the integer surrogate id that calls return (merges: 0 when none)
    Oid id_type;

    Relation index;             // the unique index that identifies rows (AccessShareLock)
    IndexInfo *index_info;      // with the unique-check operators filled in
    int nkeys;                  // key columns of the index
    int *key_column;            // per index key: its given column, or -1 for an expression
    SortSupportData *key_order; // the index's own order of each key column
    bool index_computes_keys;   // the index has expressions or a predicate

    bool row_security; // row-level security applies to the current user
};

// Opens `relid` for a call with the given column names (text[]) and checks
// everything that does not depend on the values: table kind, columns, privileges, id column
// and a usable unique index.
TargetTable open_target(Oid relid, ArrayType *column_names);
// The same for a merge of replicated rows: the first `nkey` columns are the registered key
// columns and identify rows by the registration's key index; the table needs no id column;
// the caller needs SELECT on the key columns and INSERT on every given column.
TargetTable open_merge_target(Oid relid, ArrayType *column_names, int nkey);
// A registered table whose rows are only looked up by their key (the given columns, all key
// columns) to read the local ids in column `id`: SELECT is enough, and the lock is the weakest.
TargetTable open_lookup_target(Oid relid, ArrayType *column_names, int nkey, AttrNumber id);

void close_target(TargetTable &target);

// Before `relid` is locked: 42809 unless it is an ordinary table, 42501 unless the caller has
// some of the rights `needed` on it (so that a role without rights cannot queue behind locks).
void check_before_lock(Oid relid, AclMode needed);

// A staging table (of insert_missing_staged, merge_staged) must be a relation rows can be read
// from, and the caller must be allowed to read some of it: checked before it is locked.
void check_staging_access(Oid staging);

// Appends the unique index's order as an ORDER BY list over unqualified column names: its key
// expressions, collations, operators and NULLS placement.
void append_key_order(StringInfo sql, const TargetTable &target);

// "OPERATOR(schema.name)" for an operator oid: SQL text that finds it whatever the search_path.
char *qualified_operator(Oid opno);

// Returns the id in column `attnum` of `slot` as a bigint.
int64 read_id(const TargetTable &target, TupleTableSlot *slot);

} // namespace idsync
