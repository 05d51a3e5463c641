// What `idsyncctl rejects` reports: the rows parked on this node (idsync.rejects), why (SQLSTATE
// and message), from which node, and since when; a row waiting for a referenced row has
// SQLSTATE 23503.
#pragma once

#include <string>

#include "config.hpp"

// The parked rows of `table` (every registered table when empty), oldest first, as text or
// JSON; throws PgError when the local database cannot be read.
std::string rejects_report(const Config &config, const std::string &table, bool json);
