// The statements idsync builds from a table's definition and runs for every batch (the INSERT of
// missing rows, the lww upsert, the lookups of parent rows, the reading of array values),
// prepared once per backend. Their text is still built per call, which is cheap; the parsing
// and planning are not repeated. Plans are kept by their text: PostgreSQL's plan cache plans a
// kept statement again when a table it reads changes, and a table whose columns change builds
// a different text, hence another entry.
#pragma once

#include "pg.hpp"

namespace idsync {

// The plan of `sql` (parsed with search_path pinned; run as the caller), kept for the backend.
// Needs an SPI connection. Never free it: a caller further up may be running it. Past a few
// thousand statements, new ones are prepared for the SPI connection only (freed with it).
SPIPlanPtr kept_plan(const char *sql, int nargs, Oid *argtypes);

} // namespace idsync
