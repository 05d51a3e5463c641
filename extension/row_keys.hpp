// Input rows in the unique index's order, grouped into distinct rows.
//
// Sorting serves three purposes: equal rows meet and get one id; index probes walk the btree in
// order; and every call takes its row locks (inside INSERT ... ON CONFLICT) in the same order,
// so concurrent calls cannot deadlock on each other.
#pragma once

#include "column_values.hpp"

namespace idsync {

struct RowKeys {
    Datum **key_values;  // [index key column][row]: the index key of each row
    bool **key_nulls;    // [index key column][row]
    bool *protected_row; // [row] false when the index lets duplicates of this row in (NULLs)
    int64 ngroups;       // distinct rows, numbered in index order
    int32 *group_row;    // [group] the first input row of each distinct row
    int32 *row_group;    // [row] the distinct row each input row belongs to
};

// Computes index keys, checks partial-index predicates, sorts and groups. Raises 23505 when two
// input rows share a unique key but differ in another given column.
RowKeys group_rows(const TargetTable &target, const ColumnValues &values);

// True when input row `a` and the row in `slot` are equal in every given column (NULL = NULL).
bool row_equals_slot(const TargetTable &target, const ColumnValues &values, int64 a,
                     TupleTableSlot *slot);

} // namespace idsync
