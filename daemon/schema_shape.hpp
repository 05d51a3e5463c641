// Schema drift: whether a registered table has the same shape here and on a peer, as far as
// sending this node's rows there goes. A table's shape is what the preflight reads on each side
// (sql::table_shape): its mode, its natural key, and its replicated columns with their types and
// whether each must be given (NOT NULL without a default). Rows sent to a peer whose table lacks
// one of their columns, types it differently, or requires a column they do not carry would be
// parked there one by one; such a table is skipped for that peer until the shapes agree. A
// column only the peer has, and that it does not require, is fine: rows arrive without it.
#pragma once

#include <string>

// "" when rows of the table (shape `local`, JSON) can go to a peer whose table has shape
// `remote`, else the differences in one line ("column note (text) is missing on the peer; ...").
// A shape that is empty or does not parse (a peer too old to report it) compares as equal.
std::string schema_drift(const std::string &local, const std::string &remote);

// "" when every key of a batch of items (`keys`, a JSON array of strings) is a replicated column
// of the peer's table (shape `remote`) or the tombstone marker of the local shape, else the keys
// it lacks, as schema_drift words them. Unknown shapes accept everything.
std::string unknown_columns(const std::string &local, const std::string &remote,
                            const std::string &keys);
