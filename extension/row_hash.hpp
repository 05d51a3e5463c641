// Row hashes: a 128-bit hash of a row's replicated columns, the same on every node that holds
// the same row. Columns are taken in the order of their names and hashed in their binary send
// form, so column order, DateStyle, TimeZone and extra_float_digits do not matter; the local
// columns (surrogate id, change point) and generated columns are left out.
//
// A table's content hash is the XOR of its rows' hashes: order-independent and maintained in
// O(1) per change (as Swift XORs the hashes of its container rows).
#pragma once

#include "pg.hpp"

namespace idsync {

struct RowHash {
    uint64 h1;
    uint64 h2;
};

// Which attributes of a tuple descriptor are hashed, in name order, and how to send each.
struct HashPlan {
    int ncolumns;
    AttrNumber *attnums;
    FmgrInfo *send;
};

// Builds a plan for `desc` without the columns named in `excluded` (a text[] or nullptr).
HashPlan *build_hash_plan(TupleDesc desc, ArrayType *excluded);
HashPlan *build_hash_plan(TupleDesc desc, char **excluded, int nexcluded);

// Hashes a deformed row (values and nulls indexed by attribute number - 1).
RowHash hash_row(const HashPlan *plan, const Datum *values, const bool *nulls);

// The hash of values already in their send form, in the order given (nullptr for NULL): what
// hash_row computes from them.
RowHash hash_sent(int n, bytea *const *sent);

// The fields of a composite value (a record argument) whose row type is `desc`, in fresh arrays.
void deform_record(HeapTupleHeader record, TupleDesc desc, Datum **values, bool **nulls);

// A hash as the uuid SQL sees (h1 then h2, big-endian): uuids compare as (h1, h2) unsigned.
Datum hash_as_uuid(RowHash h);

} // namespace idsync
