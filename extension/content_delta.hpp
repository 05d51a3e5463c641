// Content deltas: the changes of a registered table's content state (row count and the XOR of
// its row and tombstone hashes), appended to idsync.table_deltas as its owner and summed by
// sync_info (content_trigger.cpp).
#pragma once

#include "pg.hpp"

namespace idsync {

// Appends one delta of `relid` and wakes idsyncd (NOTIFY idsync_changes) at commit.
void append_content_delta(Oid relid, uint64 h1, uint64 h2, int64 rows);

} // namespace idsync
