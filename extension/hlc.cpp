#include "hlc.hpp"

#include "boundary.hpp"

namespace idsync {

namespace {

constexpr int64 kUnixEpochMs = (int64)(POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * 86400000;

} // namespace

int64 hlc_now()
{
    TimestampTz now = GetCurrentTimestamp();
    int64 unix_ms = now / 1000 + kUnixEpochMs;
    return unix_ms << 16;
}

TimestampTz hlc_time(int64 version)
{
    return ((version >> 16) - kUnixEpochMs) * 1000;
}

} // namespace idsync

IDSYNC_FUNCTION(idsync_hlc_now)
{
    PG_RETURN_INT64(idsync::hlc_now());
}

IDSYNC_FUNCTION(idsync_hlc_time)
{
    PG_RETURN_TIMESTAMPTZ(idsync::hlc_time(PG_GETARG_INT64(0)));
}
