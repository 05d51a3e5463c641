// What `idsyncctl resync TABLE PEER` does: records in the local database that the next pass of
// TABLE to PEER copies the whole table in bulk (idsync.request_resync), for idsyncd to carry
// out. Safe while loaders run: the copy merges, taking only the rows the peer lacks.
#pragma once

#include <string>

#include "config.hpp"

// The line to print; throws PgError when a node cannot be reached or refuses, and
// std::invalid_argument when the configuration names no peer `peer`.
std::string request_resync(const Config &config, const std::string &table, const std::string &peer);
