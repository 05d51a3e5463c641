// Inserting the distinct rows a probe did not find, through SQL, so that the insert respects
// everything INSERT respects: privileges, row-level security, defaults, constraints, triggers.
#pragma once

#include "group_ids.hpp"
#include "row_keys.hpp"

namespace idsync {

// INSERT INTO target (columns) SELECT * FROM unnest($1, ...) ON CONFLICT (<the unique index>)
// DO NOTHING RETURNING id, columns. Rows go in in index order; a row that a concurrent
// transaction inserted first is waited for by ON CONFLICT and then skipped, and REPEATABLE
// READ raises 40001 when that row is invisible to the transaction's snapshot.
//
// When the rows are known to be missing (every one probed, or a sample found none), a merge may
// insert them by a plain INSERT, which skips ON CONFLICT's extra index probe per row: it is
// about as fast as an INSERT can be. A unique violation (a concurrent insert, or an existing row
// the sample missed) then raises 23505, and the merge, which writes in a subtransaction of its
// own, does it again with ON CONFLICT (merge_rows.hpp).
struct MissingInsert {
    SPIPlanPtr plan;       // with ON CONFLICT DO NOTHING
    SPIPlanPtr plain_plan; // without; prepared on first use
};

// "INSERT INTO <target> AS <alias> (<given columns>) SELECT * FROM (SELECT
// pg_catalog.unnest($1) AS <first column>, ...) AS s": the rows of one array per column. When
// some values travel as text, s is a subquery that casts them back to their column types.
void append_insert_from_arrays(StringInfo sql, const TargetTable &target, const char *alias);

// The values of given column c of the distinct rows groups[0 .. count-1] (each group's
// group_row), as one array of the column's type: a statement's parameter.
Datum group_column_array(const TargetTable &target, const ColumnValues &values, const RowKeys &keys,
                         int c, const int32 *groups, int64 count);

// Needs an SPI connection. The plans are kept for the backend (kept_plans.hpp).
MissingInsert prepare_missing_insert(const TargetTable &target);

// Inserts the distinct rows groups[0 .. count-1] (ascending), marking those it inserted.
// Rows it did not insert were inserted concurrently; the caller looks them up again. With
// `plain`, by a plain INSERT (see above).
void insert_groups(MissingInsert &insert, const TargetTable &target, const ColumnValues &values,
                   const RowKeys &keys, const int32 *groups, int64 count, GroupIds &ids,
                   bool plain);

} // namespace idsync
