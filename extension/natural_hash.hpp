// Row hashes of tables whose rows reference other registered tables by local id: each such
// reference is hashed as the natural key of the row it points at (the row hash of that key, a
// uuid), so that equal rows hash equal on every node whatever their ids. One rule for the
// content trigger (a statement's rows at once), for lww merges breaking version ties, and for
// SQL (idsync._natural_row_hash).
#pragma once

#include "registration.hpp"
#include "row_hash.hpp"

namespace idsync {

struct NaturalHash {
    int natts;           // of the table's tuple descriptor
    HashPlan *plan;      // the table's stored columns, references sent as uuids
    int nrefs;           // the translated references, as in the registration
    AttrNumber *attnums; // per reference: its column
    Oid *types;          // per reference: its integer type
    const char *
        *queries; // per reference: (id, key hash) of the referenced rows whose ids are in $1
    SPIPlanPtr *prepared;       // per reference: prepared on first use, freed with the context
    Oid *parents;               // per reference: the referenced table
    AttrNumber *parent_attnums; // per reference: the referenced column
};

// The row hash of the key of the row of `parent` whose column `attnum` holds `id`, for a row
// deleted earlier in this transaction (natural_key.hpp): what a reference to it hashes as.
bool deleted_reference_hash(const NaturalHash *hash, int ref, int64 id, pg_uuid_t *out);

// For table `rel` with registration `reg`, in `context` (whose reset or deletion frees the
// lookups' plans).
NaturalHash *natural_hash(Relation rel, const Registration *reg, MemoryContext context);

// The id a reference column holds, as a bigint.
int64 reference_id(Datum value, Oid type);

// The hash of one row (values and nulls by attribute number - 1 of rel): one lookup per
// non-NULL reference, run as the caller with search_path pinned. A referenced row this snapshot
// does not show hashes as NULL, as the SQL join would.
RowHash natural_row_hash(NaturalHash *hash, const Datum *values, const bool *nulls);

} // namespace idsync
