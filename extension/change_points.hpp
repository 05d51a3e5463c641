// Change points: every insert, update or tombstone of a registered table gets a bigint point
// from the sequence idsync.points, and readers only ever see points below the stable point.
//
// Transactions commit out of point order, so "the largest committed point" is not safe to hand
// out: a transaction holding a smaller point may still commit. The protocol that makes it safe
// without serialising writers:
//
//   writer, once per transaction: read the sequence's last value L0 and take a shared advisory
//     lock whose key is L0 + 1 (kept until the transaction ends); every point the transaction
//     then draws is > L0, so the key is a lower bound of all its points.
//   reader: read the sequence's last value L, then list the point locks held right now; the
//     stable point is min(L, smallest key - 1). Every transaction that holds or will draw a
//     point <= the stable point has ended, and a snapshot taken afterwards sees its commit.
//
// Writers share the lock mode, so they never wait for each other; readers take no lock at all.
#pragma once

#include "pg.hpp"

namespace idsync {

// The next point for a change made by this transaction (registers the transaction first).
int64 next_point();

// The largest point p such that every change with a point <= p is committed or rolled back.
// Take the snapshot that reads the changes after calling this.
int64 stable_point();

} // namespace idsync
