#include "spi_calls.hpp"

#include "kept_plans.hpp"
#include "state_access.hpp"

namespace idsync {

void run_pinned(const char *sql, int nargs, Oid *types, Datum *values, const char *nulls,
                bool read_only, long limit)
{
    // Prepared once per backend (kept_plans.hpp), run with search_path pinned as well.
    int pinned = pin_search_path();
    int ret = SPI_execute_plan(kept_plan(sql, nargs, types), values, nulls, read_only, limit);
    unpin_search_path(pinned);
    if (ret < 0)
        elog(ERROR, "idsync: \"%s\" failed: %s", sql, SPI_result_code_string(ret));
}

void return_spi_rows(FunctionCallInfo fcinfo)
{
    InitMaterializedSRF(fcinfo, 0);
    auto *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
    int ncolumns = rsinfo->setDesc->natts;
    Datum *values = static_cast<Datum *>(palloc(sizeof(Datum) * ncolumns));
    bool *nulls = static_cast<bool *>(palloc(sizeof(bool) * ncolumns));
    for (uint64 r = 0; r < SPI_processed; r++) {
        for (int c = 0; c < ncolumns; c++)
            values[c] =
                SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, c + 1, &nulls[c]);
        tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
    }
}

} // namespace idsync
