#include "change_notify.hpp"

#include <time.h>

#include "applying.hpp"
#include "state_access.hpp"

namespace idsync {

namespace {

struct LastNotified {
    Oid relid;     // the key
    int64 at;      // this session's last committed notification of the table (monotonic µs)
    int64 pending; // the notification of the transaction committing now
};

HTAB *last_notified = nullptr; // in TopMemoryContext: an entry per table notified here
List *changed = NIL;           // relids changed in this transaction (TopTransactionContext)
List *notified = NIL;          // relids this transaction notified at pre-commit

// A monotonic clock: a wall clock set back would make a session skip notifications for longer
// than idsyncd's window covers.
int64 monotonic_us()
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return static_cast<int64>(now.tv_sec) * 1000000 + now.tv_nsec / 1000;
}

// Pre-commit, before PostgreSQL queues the transaction's notifications: notify each changed
// table that this session has not notified within the gap. A table dropped meanwhile has no
// name left and needs no pass.
void notify_changed()
{
    if (changed == NIL || !notify_changes)
        return;
    int64 now = monotonic_us();
    ListCell *cell;
    foreach (cell, changed) {
        Oid relid = lfirst_oid(cell);
        bool found;
        auto *entry =
            static_cast<LastNotified *>(hash_search(last_notified, &relid, HASH_ENTER, &found));
        if (found && now - entry->at < kNotifyGapMs * 1000)
            continue;
        if (!found)
            entry->at = 0;
        if (get_rel_name(relid) == nullptr)
            continue;
        entry->pending = now;
        MemoryContext old = MemoryContextSwitchTo(TopTransactionContext);
        notified = lappend_oid(notified, relid);
        MemoryContextSwitchTo(old);
        Async_Notify("idsync_changes", relid_name(relid));
    }
}

// Committed: the notifications went out. Nothing here may fail (the entries exist).
void remember_notified()
{
    ListCell *cell;
    foreach (cell, notified) {
        Oid relid = lfirst_oid(cell);
        auto *entry =
            static_cast<LastNotified *>(hash_search(last_notified, &relid, HASH_FIND, nullptr));
        if (entry != nullptr)
            entry->at = entry->pending;
    }
}

void on_xact(XactEvent event, void *)
{
    switch (event) {
    case XACT_EVENT_PRE_COMMIT:
        notify_changed();
        break;
    case XACT_EVENT_COMMIT:
        remember_notified();
        changed = NIL;
        notified = NIL;
        break;
    // A prepared transaction notifies nothing (PostgreSQL refuses to prepare one that did): its
    // rows travel with the next pass of their table.
    case XACT_EVENT_PREPARE:
    case XACT_EVENT_ABORT:
    case XACT_EVENT_PARALLEL_COMMIT:
    case XACT_EVENT_PARALLEL_ABORT:
        changed = NIL;
        notified = NIL;
        break;
    default:
        break;
    }
}

} // namespace

void note_changed(Oid relid)
{
    if (list_member_oid(changed, relid))
        return;
    MemoryContext old = MemoryContextSwitchTo(TopTransactionContext);
    changed = lappend_oid(changed, relid);
    MemoryContextSwitchTo(old);
}

void register_change_notify()
{
    HASHCTL ctl;
    ctl.keysize = sizeof(Oid);
    ctl.entrysize = sizeof(LastNotified);
    ctl.hcxt = TopMemoryContext;
    last_notified =
        hash_create("idsync notified tables", 16, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
    RegisterXactCallback(on_xact, nullptr);
}

} // namespace idsync
