// What the merges on the insert-missing engine share (merge_new_rows.cpp for batches of items,
// merge_staged_rows.cpp for staging tables): which tables they take, the replicated columns in
// the order the engine wants them, and the resolution of translated references.
#pragma once

#include "column_values.hpp"
#include "item_values.hpp"
#include "registration.hpp"

namespace idsync {

// The registration of `relid` when the engine takes its merges (insert_only, or lww where
// `lww_ok`; no row-level security), else nullptr; 55000 when the table is not registered.
const Registration *engine_registration(Oid relid, bool lww_ok);

// The replicated columns: the registered key columns first, then the other stored columns in
// table order, leaving out local ones (idsync_origin is local: it is carried separately).
// Translated references get their resolvers. Returns -1 when a column is one only the SQL merge
// reads (arrays, composites, a reference whose keys cannot be read here).
int replicated_columns(Relation rel, const Registration *reg, ItemColumn *out);

// The names of `columns` and idsync_origin, as a text[] for begin_batch.
ArrayType *column_names(const ItemColumn *columns, int ncolumns);

// Turns the natural keys of translated references (JsonbContainer pointers in the values) into
// local ids; false when a referenced row is not on this node (the row waits).
bool resolve_references(ColumnValues &values, ItemColumn *columns, int ncolumns);

void close_resolvers(ItemColumn *columns, int ncolumns);

} // namespace idsync
