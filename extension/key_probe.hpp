// Index lookups of distinct input rows.
#pragma once

#include "group_ids.hpp"
#include "row_keys.hpp"

namespace idsync {

// Looks up the distinct rows `groups[0 .. count-1]` (in index order) in the unique index with
// a fresh snapshot and records the id of each one found. Raises 23505 when a row with the same
// unique key exists but differs in another given column.
void probe_groups(const TargetTable &target, const ColumnValues &values, const RowKeys &keys,
                  const int32 *groups, int64 count, GroupIds &ids);

} // namespace idsync
