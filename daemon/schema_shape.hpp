// Schema drift: whether a registered table has the same shape here and on a peer, as far as
// sending this node's rows there goes. A table's shape is what the preflight reads on each side
// (sql::table_shape): its mode, its natural key, and its replicated columns with their types and
// whether each must be given (NOT NULL without a default). Rows sent to a peer whose table lacks
// one of their columns, types it differently, or requires a column they do not carry would be
// parked there one by one; such a table is skipped for that peer until the shapes agree. A
// column only the peer has, and that it does not require, is fine: rows arrive without it.
#pragma once

#include <string>

// The SQL (a scalar subquery over $1, the table) of a registered table's shape as JSON, from the
// catalogs and the registration, which every version of idsync has: mode, key, tombstone marker,
// and the replicated columns with their types (schema-qualified, whatever the session's
// search_path) and whether each must be given.
#define IDSYNC_TABLE_SHAPE                                                                         \
    "(SELECT pg_catalog.jsonb_build_object('mode', t.mode, 'key', t.key_columns, 'marker', "       \
    "t.tombstone_column, 'columns', "                                                              \
    "COALESCE((SELECT pg_catalog.jsonb_object_agg(a.attname, pg_catalog.jsonb_build_object("       \
    "'type', tn.nspname OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) ty.typname "           \
    "OPERATOR(pg_catalog.||) CASE WHEN a.atttypmod OPERATOR(pg_catalog.>=) 0 THEN "                \
    "pg_catalog.format(' (typmod %s)', a.atttypmod) ELSE '' END, 'required', a.attnotnull AND "    \
    "NOT a.atthasdef AND a.attidentity OPERATOR(pg_catalog.=) '')) FROM pg_catalog.pg_attribute "  \
    "a JOIN pg_catalog.pg_type ty ON ty.oid OPERATOR(pg_catalog.=) a.atttypid JOIN "               \
    "pg_catalog.pg_namespace tn ON tn.oid OPERATOR(pg_catalog.=) ty.typnamespace "                 \
    "WHERE a.attrelid OPERATOR(pg_catalog.=) t.relid AND a.attnum OPERATOR(pg_catalog.>) 0 AND "   \
    "NOT a.attisdropped AND a.attgenerated OPERATOR(pg_catalog.=) '' AND a.attname "               \
    "OPERATOR(pg_catalog.<>) ALL (t.local_columns)), '{}'))::text FROM idsync.tables t WHERE "     \
    "t.relid OPERATOR(pg_catalog.=) $1::regclass)"

// "" when rows of the table (shape `local`, JSON) can go to a peer whose table has shape
// `remote`, else the differences in one line ("column note (text) is missing on the peer; ...").
// A shape that is empty or does not parse (a peer too old to report it) compares as equal.
std::string schema_drift(const std::string &local, const std::string &remote);

// "" when every key of a batch of items (`keys`, a JSON array of strings) is a replicated column
// of the peer's table (shape `remote`) or the tombstone marker of the local shape, else the keys
// it lacks, as schema_drift words them. Unknown shapes accept everything.
std::string unknown_columns(const std::string &local, const std::string &remote,
                            const std::string &keys);
