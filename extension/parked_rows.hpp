// The rows a merge sets aside, collected as it goes and written to idsync.rejects at once: rows
// this node refuses (a constraint, a value that does not convert, a column it does not have)
// and rows waiting for a referenced row that has not arrived (SQLSTATE 23503).
#pragma once

#include "pg.hpp"

namespace idsync {

struct ParkedRows {
    JsonbParseState *state; // the jsonb array being built
    int64 count;
};

// Adds one row: its point (when it has one), the item as it came, and why it is parked.
void park_row(ParkedRows &parked, const int64 *point, Jsonb *item, int sqlerrcode,
              const char *message, const char *detail);

// Writes the rows collected into idsync.rejects for `relid` and `source`; returns how many and
// starts a new collection.
int64 write_parked(ParkedRows &parked, Oid relid, Datum source, bool source_null);

} // namespace idsync
