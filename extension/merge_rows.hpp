// What the merges on the insert-missing engine share (merge_items.cpp for batches of items,
// merge_staged_rows.cpp for staging tables). A merge reads its rows, sets aside the ones it
// cannot write yet or at all, and writes the rest:
//   1. translated references are resolved to local ids (reference_keys.hpp): a row whose
//      referenced row has not arrived waits; a natural key that does not convert is refused;
//   2. the other foreign keys are looked up in their parent tables: a row whose parent row is
//      missing waits;
//   3. the rest is written on the engine in the key index's order: in insert_only tables the
//      rows this node lacks are inserted, in lww tables the newest row per key wins
//      (newest_rows.hpp). When the table refuses a row (a constraint, a trigger), the rows are
//      written again by halves until the refused ones stand alone: k bad rows cost about
//      2k log n attempts, and the good rows all merge;
//      In lww tables a tombstone deletes the stored row when it is as new or newer (the table's
//      foreign keys act as on any delete: one that refuses parks the tombstone as waiting), and
//      is kept in idsync.tombstones; a row older than the tombstone of its key is dropped, a
//      newer one replaces it. A row whose referenced row was deleted here becomes a tombstone
//      itself (ON DELETE SET NULL: loses the reference), newer than the row, so that every node
//      ends with what the delete would have done to it;
//   4. the rows set aside are parked in idsync.rejects (parked_rows.hpp), waiting ones with
//      SQLSTATE 23503, for retry_waiting to merge when what they wait for arrives.
#pragma once

#include "insert_missing.hpp"
#include "item_values.hpp"
#include "newest_rows.hpp"
#include "parked_rows.hpp"
#include "natural_key.hpp"
#include "registration.hpp"

namespace idsync {

struct PlainReference;

// The rows of one merge: a batch of items, or a chunk of a staging table.
struct MergeRows {
    ColumnValues values;    // the replicated columns (Merge::columns), then idsync_origin
    JsonbContainer ***keys; // [column] of a translated reference: each row's natural key
    JsonbValue *item;       // [row] the item as it came (items), or nullptr (staging)
    int64 *point;           // [row] the item's point (items), or nullptr
    bool *settled;          // [row] set aside (parked, or to be): not written
    bool *deleted;          // [row] lww: a tombstone (the item's tombstone marker is true)
    bool *absent;           // [row] a tombstone whose referenced rows are not here: no live row
};

struct Merge {
    Oid relid;
    const Registration *reg;
    ItemColumn *columns; // the replicated columns: the key first (replicated_columns)
    int ncolumns;
    PlainReference *plain; // the foreign keys that are not translated
    int nplain;
    // [column] of a translated reference: the rank of its foreign key by constraint name (a row
    // that waits for several rows is parked naming the first), as PlainReference::rank
    int *column_rank;
    // [column] of a translated reference: its foreign key's ON DELETE action
    // (FKCONSTR_ACTION_*), and the key plan of the referenced table, built when needed
    char *column_on_delete;
    KeyPlan **parent_keys;
    KeyPlan *key; // lww: the table's key plan, built when needed
    Batch batch;
    Datum source;
    bool source_null;
    ParkedRows parked;
    MergeCounts counts;
    int64 rejected;
    int64 conflicts; // conflict records written since the last trim (conflicts.hpp)
};

// Opens a merge into registered table `relid` in the name of `source`: the table locked, its
// replicated columns read, the tables its references point to opened and locked (before any
// subtransaction). 55000 when the table is not registered, 42501 when row-level security hides
// rows of it or of a table it references.
void begin_merge(Merge &m, Oid relid, Datum source, bool source_null);

// The JSON key that marks an item as a tombstone in lww tables (the registration's
// tombstone_column), or nullptr.
const char *tombstone_marker(const Merge &m);

// Room for n rows, none settled.
MergeRows new_merge_rows(const Merge &m, int64 n);

// The item of row `row` as it would have come: as it came (items), or made from the staged
// values with references as their natural keys.
Jsonb *row_item(const Merge &m, const MergeRows &rows, int64 row);

// Sets row `row` aside with the error that refused it (parked by flush_parked).
void set_aside(Merge &m, MergeRows &rows, int64 row, int sqlerrcode, const char *message,
               const char *detail);
void set_aside_error(Merge &m, MergeRows &rows, int64 row, const ErrorData *error,
                     const char *prefix = nullptr);

// Steps 1 and 2: resolves the translated references of the rows not settled, and sets aside
// the rows that wait or whose natural keys do not convert.
void settle_references(Merge &m, MergeRows &rows);

// Step 3 for the rows not settled. `by_halves`: refused rows are set aside (each attempt in a
// subtransaction); without it an error propagates (the caller has a subtransaction of its own
// and tries again by halves).
void write_rows(Merge &m, MergeRows &rows, bool by_halves);

// Step 3 in lww tables (merge_tombstones.cpp): applies the tombstones among rows idx[0 ..
// count-1]; then keeps, of the others, the rows newer than the tombstones of their keys (which
// it removes), and returns how many.
void apply_tombstones(Merge &m, const MergeRows &rows, const int32 *idx, int64 count,
                      MergeCounts &counts);
int64 drop_buried(Merge &m, const MergeRows &rows, int32 *idx, int64 count);

// Step 1 for a row waiting for the row its reference in column `c` points at: whether that row
// was deleted here (a tombstone of its key is kept); if so, follow_deleted_parent makes the row
// what the delete made of it here: a tombstone, or (ON DELETE SET NULL, a column outside the
// key) a row without the reference, in both cases newer than it came and from this node.
bool parent_deleted(Merge &m, const MergeRows &rows, int c, int64 row);
void follow_deleted_parent(Merge &m, MergeRows &rows, int c, int64 row);

// Step 4: parks the rows set aside so far.
void flush_parked(Merge &m);

// What a merge did: rows received, inserted, updated and parked (the rest were unchanged).
struct MergeResult {
    int64 received;
    int64 inserted;
    int64 updated;
    int64 rejected;
};

// (inserted, updated, rejected) as a record of the function's result type.
Datum merge_counts_record(FunctionCallInfo fcinfo, const MergeResult &result);

// Merges a batch of items, a JSON array checked by check_items (merge_items.cpp).
MergeResult merge_item_batch(Oid relid, Jsonb *items, Datum source, bool source_null);

// The points of the items (rows parked as waiting, each with its reject_id as its point) that
// would no longer wait: their values convert and what they reference is here. Nothing is
// written (merge_items.cpp).
ArrayType *waiting_ready(Oid relid, Jsonb *items);

// Checks a staging table's columns against the target's replicated columns: 42703 naming those
// it lacks, 42804 for a translated reference that is not jsonb (merge_staged_rows.cpp).
void check_staging(Oid relid, Oid staging);

// Merges the rows of a staging table (merge_staged_rows.cpp).
MergeResult merge_staging_table(Oid relid, Oid staging, Datum source, bool source_null);

// Releases what begin_merge took, except the locks, which last until the transaction ends.
void end_merge(Merge &m);

} // namespace idsync
