#include "applying.hpp"

#include "boundary.hpp"
#include "state_access.hpp"

namespace idsync {

int max_clock_skew_ms = 10 * 60 * 1000;
bool notify_changes = true;

namespace {

struct ApplyFlag {
    Oid relid;
    ApplyPurpose purpose;
    int level; // transaction nest level that raised it
    bool has_source;
    pg_uuid_t source; // the node the applied rows come from, when given
};

// Merges nest (a merge wakes the rows waiting in the tables that reference its table), never
// deeply: the depth of natural keys bounds them.
constexpr int kMaxFlags = 64;
ApplyFlag flags[kMaxFlags];
int nflags = 0;

void on_xact(XactEvent event, void *)
{
    nflags = 0;
}

void on_subxact(SubXactEvent event, SubTransactionId, SubTransactionId, void *)
{
    if (event != SUBXACT_EVENT_ABORT_SUB)
        return;
    int level = GetCurrentTransactionNestLevel();
    while (nflags > 0 && flags[nflags - 1].level >= level)
        nflags--;
}

ApplyPurpose parse_purpose(text *purpose)
{
    char *name = text_to_cstring(purpose);
    if (strcmp(name, "merge") == 0)
        return ApplyPurpose::merge;
    if (strcmp(name, "reclaim") == 0)
        return ApplyPurpose::reclaim;
    ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                    errmsg("unknown apply purpose \"%s\"", name)));
    pg_unreachable();
}

} // namespace

bool applying(Oid relid, ApplyPurpose purpose)
{
    for (int i = 0; i < nflags; i++)
        if (flags[i].relid == relid && flags[i].purpose == purpose)
            return true;
    return false;
}

const pg_uuid_t *applying_source(Oid relid)
{
    for (int i = nflags - 1; i >= 0; i--)
        if (flags[i].relid == relid && flags[i].purpose == ApplyPurpose::merge)
            return flags[i].has_source ? &flags[i].source : nullptr;
    return nullptr;
}

void register_apply_callbacks()
{
    RegisterXactCallback(on_xact, nullptr);
    RegisterSubXactCallback(on_subxact, nullptr);
}

} // namespace idsync

using namespace idsync;

void idsync::begin_apply(Oid relid, const pg_uuid_t *source, ApplyPurpose purpose)
{
    bool lww = require_registered(relid) == kLww;
    if (purpose == ApplyPurpose::merge) {
        require_merge_rights(relid, source, lww);
    } else {
        require(caller_roles().admin, "only idsync administrators reclaim");
        require_owner(relid);
    }
    if (nflags == kMaxFlags)
        ereport(ERROR,
                (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED), errmsg("idsync merges nest too deeply")));
    ApplyFlag flag = {relid, purpose, GetCurrentTransactionNestLevel(), source != nullptr, {}};
    if (source != nullptr)
        flag.source = *source;
    flags[nflags++] = flag;
}

void idsync::end_apply(Oid relid)
{
    for (int i = nflags - 1; i >= 0; i--) {
        if (flags[i].relid != relid)
            continue;
        memmove(&flags[i], &flags[i + 1], sizeof(ApplyFlag) * (nflags - i - 1));
        nflags--;
        break;
    }
}

// idsync._begin_apply(target regclass, source uuid, purpose text): raises the flag for target.
IDSYNC_FUNCTION(idsync_begin_apply)
{
    if (PG_ARGISNULL(0) || PG_ARGISNULL(2))
        ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
                        errmsg("target and purpose must not be NULL")));
    begin_apply(PG_GETARG_OID(0), PG_ARGISNULL(1) ? nullptr : PG_GETARG_UUID_P(1),
                parse_purpose(PG_GETARG_TEXT_PP(2)));
    PG_RETURN_VOID();
}

// idsync._end_apply(target regclass): lowers the newest flag raised for target.
IDSYNC_FUNCTION(idsync_end_apply)
{
    end_apply(PG_ARGISNULL(0) ? InvalidOid : PG_GETARG_OID(0));
    PG_RETURN_VOID();
}
