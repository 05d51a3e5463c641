// The shared library's identity and its settings.
#include "applying.hpp"
#include "change_notify.hpp"
#include "pg.hpp"
#include "registration.hpp"

extern "C" {
PG_MODULE_MAGIC;

void _PG_init(void);
}

namespace idsync {

bool retrying = false;

namespace {
// Kept so that the install scripts of 0.2.0 to 0.4.0 (which name it in SET clauses) load; it
// has no effect since 0.5.0 (applying.hpp).
bool legacy_applying = false;
} // namespace

} // namespace idsync

void _PG_init(void)
{
    DefineCustomBoolVariable(
        "idsync.applying", "No effect; kept for the install scripts of idsync 0.2.0 to 0.4.0.",
        "idsync raises its own per-table flag while it merges; no setting can.",
        &idsync::legacy_applying, false, PGC_USERSET, GUC_NOT_IN_SAMPLE, nullptr, nullptr, nullptr);
    DefineCustomBoolVariable(
        "idsync.retrying",
        "Marks a merge made while idsync retries rows that waited for a referenced row.",
        "Such a merge does not start another round of retries; the round in progress goes on.",
        &idsync::retrying, false, PGC_USERSET, GUC_NOT_IN_SAMPLE, nullptr, nullptr, nullptr);
    DefineCustomIntVariable(
        "idsync.max_clock_skew", "The most a row version may be ahead of this node's clock.",
        "A version beyond it, or below zero, is refused: merged rows are parked in "
        "idsync.rejects with SQLSTATE 22003.",
        &idsync::max_clock_skew_ms, 10 * 60 * 1000, 0, 24 * 60 * 60 * 1000, PGC_SUSET, GUC_UNIT_MS,
        nullptr, nullptr, nullptr);
    DefineCustomBoolVariable(
        "idsync.notify_changes",
        "Notify idsync_changes when a transaction changed a registered table.",
        "idsyncd listens and replicates the changed tables at once. A session notifies each "
        "table at commit, at most once per 50 ms, as this setting is at commit; prepared "
        "transactions never notify. When off, changes travel with the next pass of their table.",
        &idsync::notify_changes, true, PGC_USERSET, 0, nullptr, nullptr, nullptr);
    MarkGUCPrefixReserved("idsync");
    idsync::register_apply_callbacks();
    idsync::register_change_notify();
    idsync::register_registration_cache();
}
