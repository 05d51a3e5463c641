// Translated references of a merge: each arrives as the natural key of the referenced row (a
// jsonb object, nested when that key holds references itself) and is resolved here to the
// row's local id through the referenced table's key index, with the engine's probes
// (key_probe.hpp): one sorted pass per referenced table and batch.
#pragma once

#include "item_values.hpp"

namespace idsync {

// The resolver of references to column `id` of registered table `parent`. `depth` counts the
// nesting, which stops at 8 as registration's does; a parent that is not registered, or an id
// that is not an integer, is an error.
KeyResolver *make_resolver(Oid parent, AttrNumber id, int depth);

// Opens the parent tables of `resolver` (nested ones included) for lookups, and takes their
// locks, which last to the end of the transaction: before any subtransaction whose rollback
// would release them. 42501 when row-level security hides rows of one from the caller.
void open_resolver(KeyResolver *resolver);

// Resolves keys[0 .. n-1] (natural keys as jsonb objects; nullptr for a NULL reference) to ids
// of type `id_type` in out[] / out_null[]. A row whose referenced row is not on this node (the
// row waits) gets waiting[i] set; rows with waiting[i] already set are skipped. A key that is
// not an object, or whose values do not convert, raises the error of its class.
void resolve_keys(KeyResolver *resolver, JsonbContainer **keys, int64 n, Oid id_type, Datum *out,
                  bool *out_null, bool *waiting);

// The table a resolver looks rows up in.
Oid resolver_parent(const KeyResolver *resolver);

// Closes what resolving opened (the locks stay until the transaction ends).
void close_resolver(KeyResolver *resolver);

// The resolver of translated column `attnum` of `rel` (registered, with that column among its
// reference columns), as make_resolver.
KeyResolver *column_resolver(Relation rel, AttrNumber attnum, int depth);

} // namespace idsync
