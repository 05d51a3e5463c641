// What identifies a table's rows, one rule each for insert_missing and registration, exposed to
// SQL as idsync._key_index and idsync._id_column:
// - the unique index: for insert_missing one that reads only the given columns, for
//   registration one on exactly the key columns, without expressions or predicate;
// - the id column: the single-column integer primary key, else a NOT NULL integer column "id".
#pragma once

#include "pg.hpp"

namespace idsync {

enum class KeyIndexRule {
    reads_only_given_columns, // insert_missing: keys, expressions and predicate among `columns`
    exactly_key_columns,      // replication: a plain index on exactly `columns`
};

// Among the valid, immediate unique btree indexes of `rel` that the rule admits: a plain one
// before one with expressions before a partial one, then a primary key, then NULLS NOT
// DISTINCT, then the oldest. The index comes back open (AccessShareLock) with its IndexInfo,
// or nullptr when none fits.
Relation choose_key_index(Relation rel, const AttrNumber *columns, int ncolumns, KeyIndexRule rule,
                          IndexInfo **info);

// The id column's attribute number, or 0 when the table has none.
AttrNumber id_column(Relation rel);

} // namespace idsync
