// idsync.tombstone_trigger: the BEFORE DELETE row trigger of lww tables. A DELETE keeps the row
// as a tombstone (its tombstone column set, which gives it a new version through the change
// trigger), so that the delete replicates and an older copy of the row cannot come back. Only
// reclaim, under idsync's own flag, deletes rows for good.
#include "applying.hpp"
#include "boundary.hpp"
#include "registration.hpp"
#include "state_access.hpp"

IDSYNC_FUNCTION(idsync_tombstone_trigger)
{
    if (!CALLED_AS_TRIGGER(fcinfo))
        ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
                        errmsg("idsync.tombstone_trigger must be called as a trigger")));
    auto *td = reinterpret_cast<TriggerData *>(fcinfo->context);
    if (!TRIGGER_FIRED_BEFORE(td->tg_event) || !TRIGGER_FIRED_FOR_ROW(td->tg_event) ||
        !TRIGGER_FIRED_BY_DELETE(td->tg_event))
        ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
                        errmsg("idsync.tombstone_trigger must fire BEFORE DELETE FOR EACH ROW")));
    Relation rel = td->tg_relation;
    Oid relid = RelationGetRelid(rel);
    auto *reg = static_cast<const idsync::Registration *>(fcinfo->flinfo->fn_extra);
    if (reg == nullptr || reg->relid != relid) {
        reg = idsync::trigger_registration(td, fcinfo->flinfo->fn_mcxt, "idsync.tombstone_trigger");
        fcinfo->flinfo->fn_extra = const_cast<idsync::Registration *>(reg);
    }
    if (!reg->lww)
        ereport(ERROR,
                (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                 errmsg("idsync.tombstone_trigger fired on \"%s\", which is not an lww table",
                        RelationGetRelationName(rel))));
    if (idsync::applying(relid, idsync::ApplyPurpose::reclaim))
        return PointerGetDatum(td->tg_trigtuple);

    const char *tombstone = quote_identifier(reg->tombstone_column);
    char *sql = psprintf("UPDATE %s SET %s = true WHERE ctid OPERATOR(pg_catalog.=) $1 AND NOT %s",
                         idsync::relid_name(relid), tombstone, tombstone);
    Oid type = TIDOID;
    Datum ctid = PointerGetDatum(&td->tg_trigtuple->t_self);
    int pinned = idsync::pin_search_path();
    if (SPI_connect() != SPI_OK_CONNECT)
        elog(ERROR, "idsync could not connect to SPI");
    if (SPI_execute_with_args(sql, 1, &type, &ctid, nullptr, false, 0) != SPI_OK_UPDATE)
        elog(ERROR, "idsync: turning a row into a tombstone failed");
    SPI_finish();
    idsync::unpin_search_path(pinned);
    return PointerGetDatum(nullptr);
}
