// Running idsync's own SQL through SPI as the caller: search_path pinned (state_access.hpp), an
// error unless the statement succeeds, and the rows of a query handed back as a set-returning
// function's result.
#pragma once

#include "pg.hpp"

namespace idsync {

// Runs `sql` in the current SPI connection with search_path pinned; ERROR unless it succeeds.
// The rows are in SPI_tuptable / SPI_processed. `nulls` as SPI takes them, or nullptr.
void run_pinned(const char *sql, int nargs, Oid *types, Datum *values, const char *nulls,
                bool read_only, long limit);

// The rows of the last query of the current SPI connection as the result of `fcinfo`, a
// set-returning function materializing its result (the query's columns are its columns).
void return_spi_rows(FunctionCallInfo fcinfo);

} // namespace idsync
