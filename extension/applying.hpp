// The flag that tells idsync's own writes to a registered table from the application's.
//
// Merges keep the versions rows come with, and reclaim deletes tombstones for good; everything
// else is a local change. The flag is raised per table by idsync._begin_apply(), a C function
// that checks its caller first (an administrator, or a peer role with the privileges a merge
// needs), and lowered by idsync._end_apply() or when the (sub)transaction that raised it
// aborts. No setting can raise it: idsync.applying is kept only so that old install scripts
// load, and has no effect.
#pragma once

#include "pg.hpp"

namespace idsync {

enum class ApplyPurpose { merge = 1, reclaim = 2 };

// True while idsync applies rows to `relid` for `purpose` in this transaction.
bool applying(Oid relid, ApplyPurpose purpose);

// The node the rows being merged into `relid` come from, as the newest merge flag names it, or
// nullptr. A merged row without an origin takes it (change_trigger.cpp).
const pg_uuid_t *applying_source(Oid relid);

// Raises the flag for `relid` after checking the caller: for a merge, an administrator or a
// peer role with the rights a merge needs (speaking for `source`, when given); for reclaim, an
// administrator who owns the table.
void begin_apply(Oid relid, const pg_uuid_t *source, ApplyPurpose purpose);

// Lowers the newest flag raised for `relid`.
void end_apply(Oid relid);

// Lowers flags when the (sub)transaction that raised them ends; called once by _PG_init.
void register_apply_callbacks();

// The most a version may be ahead of this node's clock, in milliseconds (GUC
// idsync.max_clock_skew).
extern int max_clock_skew_ms;

// Whether transactions that changed registered tables notify idsync_changes at commit (GUC
// idsync.notify_changes, on by default; see change_notify.hpp).
extern bool notify_changes;

} // namespace idsync
