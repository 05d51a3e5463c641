// Translated references of a merge: each arrives as the natural key of the referenced row (a
// jsonb object, nested when that key holds references itself) and is resolved here to the
// row's local id through the referenced table's key index, with the engine's probes
// (key_probe.hpp): one sorted pass per referenced table and batch.
#pragma once

#include "item_values.hpp"

namespace idsync {

// The resolver of references to column `id` of registered table `parent`, or nullptr when one of
// the keys on the way cannot be read here (then the SQL merge takes the batch). `depth` counts
// the nesting, which stops at 8 as registration's does.
KeyResolver *make_resolver(Oid parent, AttrNumber id, int depth);

// Resolves keys[0 .. n-1] (natural keys as jsonb objects; nullptr for a NULL reference) to ids
// of type `id_type` in out[] / out_null[]. Returns false when a referenced row is not on this
// node (the row waits: the SQL merge parks it). A key that is not an object, or whose values do
// not convert, raises the error of its class.
bool resolve_keys(KeyResolver *resolver, JsonbContainer **keys, int64 n, Oid id_type, Datum *out,
                  bool *out_null);

// Closes what resolving opened (the locks stay until the transaction ends).
void close_resolver(KeyResolver *resolver);

// The resolver of translated column `attnum` of `rel` (registered, with that column among its
// reference columns), or nullptr as make_resolver.
KeyResolver *column_resolver(Relation rel, AttrNumber attnum, int depth);

} // namespace idsync
