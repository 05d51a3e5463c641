// What `idsyncctl conflicts` reports: the versions of lww rows that lost a conflict in a merge on
// this node (idsync.conflicts, for the tables that record them: idsync.record_conflicts), with
// the version that won, newest first.
#pragma once

#include <string>

#include "config.hpp"

// The conflict records of `table` (every table when empty), newest first, as text or JSON;
// throws PgError when the local database cannot be read.
std::string conflicts_report(const Config &config, const std::string &table, bool json);
