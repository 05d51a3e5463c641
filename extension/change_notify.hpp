// Waking idsyncd when a transaction changed registered tables (LISTEN idsync_changes).
//
// A NOTIFY makes the committing transaction take one cluster-wide lock that it holds until its
// commit is flushed (PostgreSQL's PreCommit_Notify), so concurrent notifying transactions commit
// one at a time. Notifying in every writing transaction made 8 concurrent writers of a
// registered table 2.6 times slower. So a session notifies each table at most once per
// kNotifyGapMs, at commit; a transaction that skips relies on the session's previous
// notification, and idsyncd keeps passing a notified table until every transaction that could
// have skipped is covered (see Peer::changed in daemon/replicator.cpp).
#pragma once

#include "pg.hpp"

namespace idsync {

// The shortest time between two notifications of one table by one session. idsyncd's
// kSkipWindow must be longer.
constexpr long kNotifyGapMs = 50;

// Notes that the current transaction changed `relid`: idsync_changes is notified at commit,
// unless this session notified the table less than kNotifyGapMs before.
void note_changed(Oid relid);

// Registers the transaction callback; called once by _PG_init.
void register_change_notify();

} // namespace idsync
