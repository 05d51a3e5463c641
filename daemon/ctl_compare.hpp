// `idsyncctl compare TABLE PEER` and `repair TABLE PEER`: which natural keys of a table differ
// between this node and a peer, found by comparing hashes over buckets of the key hashes, level
// by level (Merkle-style: 256 buckets, then 16 sub-buckets of each bucket that differs, down to
// 65,536), and only then the rows of the buckets that still differ. What is read grows with the
// number of differences (and the levels), not with the table; each level is one query per node,
// which hashes the table's rows there afresh (the kept content hash would not see rows changed
// behind idsync's back, with its triggers off). `repair` sends exactly those rows both ways through
// merge_items, by the table's own rules (lww: the newer version wins; insert_only: a missing row is
// added, rows that differ stay as they are), then compares again.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "config.hpp"

struct Difference {
    std::string key;   // the natural key, JSON
    std::string state; // missing_here, missing_there, different
    std::string here;  // the item here (JSON), empty when missing here
    std::string there; // the item on the peer
    std::string here_origin, there_origin;
};

struct CompareReport {
    std::string table; // as the local node names it
    std::string peer;
    std::string local_node, peer_node;
    std::vector<Difference> differences;
    int64_t rows_read = 0;
    int round_trips = 0;
    double seconds = 0;
    std::vector<int> levels; // the bucket bits of each level compared
    // A node whose kept content hash is not what its rows hash to (rows changed behind idsync's
    // back, with its triggers off): known when the buckets were read.
    bool stale_here = false, stale_there = false;
    // Buckets that differed at the last level read; when some did but no row differs, the rows
    // changed between the queries (each reads its own snapshot): not a clean "no differences".
    int differing_buckets = 0;
    bool unsettled() const { return differing_buckets > 0 && differences.empty(); }
    bool clean() const { return differences.empty() && !unsettled(); }
};

// Compares `table` with the peer named `peer` (std::invalid_argument when the file names none);
// throws PgError when a node cannot be read.
CompareReport compare_table(const Config &config, const std::string &table,
                            const std::string &peer);
std::string compare_text(const CompareReport &report);
std::string compare_json(const CompareReport &report);

// Compares, sends the rows that differ both ways, recomputes a kept content hash that is stale,
// and compares again; the second report is returned, the text of what was done in *done.
// `peer_dsn`, when given, replaces the file's connection to the peer (an administrator's there,
// which recomputing a stale hash on the peer takes).
CompareReport repair_table(const Config &config, const std::string &table, const std::string &peer,
                           const std::string &peer_dsn, std::string *done);
