// The shared library's identity and its settings.
#include "applying.hpp"
#include "pg.hpp"

extern "C" {
PG_MODULE_MAGIC;

void _PG_init(void);
}

namespace idsync {

bool applying = false;
bool retrying = false;

} // namespace idsync

void _PG_init(void)
{
    DefineCustomBoolVariable(
        "idsync.applying",
        "Marks writes that idsync itself makes while merging remote rows or reclaiming.",
        "While on, registered tables keep the versions they are given and accept deletes. "
        "idsync's own functions set it for their duration; applications leave it off.",
        &idsync::applying, false, PGC_USERSET, GUC_NOT_IN_SAMPLE, nullptr, nullptr, nullptr);
    DefineCustomBoolVariable(
        "idsync.retrying",
        "Marks a merge made while idsync retries rows that waited for a referenced row.",
        "Such a merge does not start another round of retries; the round in progress goes on.",
        &idsync::retrying, false, PGC_USERSET, GUC_NOT_IN_SAMPLE, nullptr, nullptr, nullptr);
    MarkGUCPrefixReserved("idsync");
}
