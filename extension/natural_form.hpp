// The natural form of a registered table's rows, as the SQL that reads it: every translated
// reference (a column holding the local id of a row of another registered table) replaced by
// the natural key of the row it points at, nested when that key holds references itself. One
// walk of the natural-key tree, from the catalogs, for every reader: what leaves a node (the
// items_since plan, bulk_query: keys as jsonb objects) and what content hashes cover (the
// content state, the content trigger's lookups: keys as the row hash of their columns). The way
// back, from natural keys to local ids, is reference_keys.hpp.
//
// The SQL is made here from catalog names only, never from a caller's text, and qualifies every
// function and operator it calls.
#pragma once

#include "pg.hpp"

namespace idsync {

// Natural keys nest through references; deeper is a mistake (or a cycle).
constexpr int kMaxNesting = 8;

enum class NaturalPurpose {
    json, // the natural key as a jsonb object of its columns
    hash  // the row hash of the key's columns (a uuid)
};

// A translated reference: `column` holds ids of `parent_column` of `parent`.
struct Translated {
    char *column;
    Oid parent;
    char *parent_column;
};

struct TranslatedList {
    Translated *refs;
    int n;
};

// The translated references of `relid` as idsync._translated lists them (which refuses the
// foreign keys replication cannot follow), in the caller's memory. Read as idsync's owner.
TranslatedList translated(Oid relid);

// "SELECT <natural key as jsonb>, <its row hash> FROM ... WHERE found": the natural key of the
// row of `parent` whose `parent_column` is $1 (bigint); no row when there is none.
char *natural_key_by_id(Oid parent, const char *parent_column);

// "SELECT <the replicated columns, references in natural form>[, extra] FROM <source> c
// <joins>": `source` is a relation or a parenthesized query with the columns of `relid`, and
// `extra` more items over it (alias c); both made by idsync. Checks, as idsync._registration,
// that the caller may read every row of each table walked.
char *natural_select(Oid relid, const char *source, NaturalPurpose purpose, const char *extra);

} // namespace idsync
