// What `idsyncctl rejects` reports and does: the rows parked on this node (idsync.rejects), why
// (SQLSTATE and message), from which node, and since when (a row waiting for a referenced row
// has SQLSTATE 23503); `retry` merges them again (idsync.retry_rejects), `discard` drops them
// for good and keeps a record (idsync.discard_rejects). Both need an administrator's
// connection (--dsn).
#pragma once

#include <string>
#include <vector>

#include "config.hpp"

// The parked rows of `table` (every registered table when empty), oldest first, as text or
// JSON; throws PgError when the local database cannot be read.
std::string rejects_report(const Config &config, const std::string &table, bool json);

// Retries the parked rows of `table` (of every table with parked rows when empty); one line per
// table.
std::string retry_rejects(const Config &config, const std::string &table);

// Discards the parked rows of `table` whose ids are in `ids` (all of them when empty).
std::string discard_rejects(const Config &config, const std::string &table,
                            const std::vector<std::string> &ids);
