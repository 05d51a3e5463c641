// The hybrid logical clock of lww versions: milliseconds since the Unix epoch shifted left 16
// bits, the low 16 bits ordering changes within a millisecond. One implementation, for the
// change trigger and for SQL (idsync.hlc_now(), idsync.hlc_time()).
#pragma once

#include "pg.hpp"

namespace idsync {

// The clock now (the wall clock, not the transaction's start).
int64 hlc_now();

// The moment a version was taken.
TimestampTz hlc_time(int64 version);

} // namespace idsync
