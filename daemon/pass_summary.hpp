// What a pass to one peer (or, with --once, to all of them) did, and its log line in Swift's
// style: "replicated 4 tables to 2 peers in 0.31 s: 4 successes, 0 failures, ...".
#pragma once

#include <cstdint>
#include <string>

#include "pass.hpp"

struct PassSummary {
    int tables = 0;
    int successes = 0;
    int failures = 0;
    int no_change = 0;
    int hashmatch = 0;
    int bulk = 0;
    int diff = 0;
    int diff_capped = 0;
    uint64_t rows_sent = 0;
    uint64_t rejects = 0;
    double seconds = 0;
    bool unreachable = false; // the peer or the local database could not be reached

    void add(const TableOutcome &outcome);
    void add(const PassSummary &other);
    // Every table succeeded (a capped diff did not: rows are left for the next pass).
    bool complete() const { return !unreachable && successes == tables; }
    // `to` is "b" for one peer or "3 peers".
    std::string line(const std::string &to) const;
};
