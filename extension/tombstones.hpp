// Tombstones of lww tables: what is left of a deleted row, kept in idsync.tombstones, out of the
// user's table. A tombstone holds the row's natural key (natural_key.hpp), its version (newer
// than the row's last), its change point and origin; it replicates like a row, beats older
// copies of the row wherever they arrive, and is purged by reclaim. Per key, a node holds the
// newest of the live row and the tombstone, never both.
//
// Tombstones are part of their table's content state: each adds tombstone_hash(key, version) to
// the XOR of the row hashes (content deltas, content_delta.hpp), so nodes that hold the same live
// rows and the same tombstones have the same hash.
//
// Only idsync writes idsync.tombstones, as its owner: the callers here have checked their own
// callers (the triggers of the table, a merge's rights).
#pragma once

#include "natural_key.hpp"

namespace idsync {

// A tombstone's share of its table's content hash.
RowHash tombstone_hash(RowHash key, int64 version);

// Keeps the tombstone of `key` at `version` unless one as new or newer is kept; its point is a
// new change point of this transaction, its origin `origin` (nullptr: this node). Returns
// whether it was written.
bool record_tombstone(Oid relid, const NaturalKey &key, int64 version, const pg_uuid_t *origin);

// Removes the tombstone of `key` when its version is below `below`; returns the version it had,
// or -1 when none was removed.
int64 drop_tombstone(Oid relid, RowHash key, int64 below);

// Removes the tombstones of keys[0 .. n-1], whatever their versions (one statement).
void drop_tombstones(Oid relid, const RowHash *keys, int64 n);

// The versions of the tombstones of keys[0 .. n-1] (-1 where there is none).
void tombstone_versions(Oid relid, const RowHash *keys, int64 n, int64 *versions);

// Whether `relid` has any tombstone (a cheap test before looking up keys).
bool has_tombstones(Oid relid);

// Keeps the tombstones of the rows a DELETE of lww table `rel` removed (its transition table):
// versions newer than the rows', new change points, this node as their origin. Not for the rows a
// merge deletes (it keeps the tombstones that came) nor those reclaim moves out.
void record_deleted_rows(Relation rel, const Registration *reg, Tuplestorestate *rows);

// Settles the rows of an INSERT into lww table `rel` (its transition table) whose keys have
// tombstones now, kept by a delete this statement waited for (tombstone_settle.cpp).
void settle_inserted_rows(Relation rel, const Registration *reg, Tuplestorestate *rows);

// The query of the tombstones of lww table `relid` as items_since returns changes: (point, item,
// origin) after $1 up to $2, at most $3, in point order; $4 the receiver (which gets its own
// tombstones as their points alone), $5 this node. An item is the natural key, the version and
// the registration's tombstone marker set to true.
char *tombstone_items_query(Oid relid, const Registration *reg);

} // namespace idsync
