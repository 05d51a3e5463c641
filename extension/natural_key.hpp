// The natural key of an lww row, as its tombstone keeps it once the row is deleted: a jsonb
// object of the key's columns as items carry them (translated references nested as the natural
// keys they point at), and the row hash of the key (references hashed as the hashes of their
// keys, the content state's rule), the same on every node whatever the local ids.
//
// A receiver computes the hash from the jsonb alone, without resolving references: a tombstone
// whose referenced rows this node never had is still kept. A sender computes both from a stored
// row; a referenced row deleted earlier in the same transaction (ON DELETE CASCADE deletes the
// parent first) is found among the keys remembered here.
#pragma once

#include "item_values.hpp"
#include "registration.hpp"
#include "row_hash.hpp"

namespace idsync {

struct NaturalKey {
    Jsonb *json;
    RowHash hash;
};

struct KeyPart;

struct KeyPlan {
    Oid relid;
    int nparts;
    KeyPart *parts; // the key's columns, in name order (the row hash's order)
};

// The key plan of registered table `relid` (nested for references), in `context`. Reads the
// catalogs through SPI.
KeyPlan *key_plan(Oid relid, MemoryContext context);

// The hash of a natural key as items carry it; ERROR (of the value's class) when a value does
// not convert, 22023 when a reference is not an object.
RowHash key_hash_from_json(KeyPlan *plan, JsonbContainer *key);

// The natural key's columns of an item (or of any object holding them), as a new object.
Jsonb *key_json_of_item(const KeyPlan *plan, JsonbContainer *item);

// The natural key of a stored row (values and nulls by attribute number - 1), in the current
// memory context; false when a referenced row is neither here nor deleted earlier in this
// transaction.
bool natural_key_of_row(KeyPlan *plan, const Datum *values, const bool *nulls, NaturalKey *out);

// Remembers the natural key of a row of `relid` deleted in this transaction, by the values of
// its integer local columns (the ids other rows reference), until the transaction ends.
void remember_deleted(const Registration *reg, TupleDesc desc, const Datum *values,
                      const bool *nulls, const NaturalKey &key);

// The natural key of the row of `relid` whose column `attnum` held `id`, deleted earlier in this
// transaction.
bool deleted_key(Oid relid, AttrNumber attnum, int64 id, NaturalKey *out);

// A hash as the 16 bytes of its uuid, and back.
bytea *hash_bytes_of(RowHash h);
RowHash hash_of_uuid(const pg_uuid_t *u);

} // namespace idsync
