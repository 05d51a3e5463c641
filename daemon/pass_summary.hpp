// What a pass to one peer (or, with --once, to all of them) did, and its log line in Swift's
// style: "replicated 4 tables to 2 peers in 0.31 s: 4 successes, 0 failures, ...".
#pragma once

#include <cstdint>
#include <string>

#include "pass.hpp"

// Adds one table's outcome to counters named after Swift's outcomes: a PassSummary, or the
// PairStats of the metrics. A diff_capped pass is neither a success nor a failure, and a failed
// pass counts no mode.
template <typename Counts> void count_outcome(Counts &counts, const TableOutcome &outcome)
{
    // A table skipped for schema drift did nothing: neither a success nor a failure (which would
    // back the peer off), and no mode.
    counts.rows_sent += outcome.rows_sent;
    counts.rejects += outcome.rejects;
    counts.corrected_points += outcome.corrected_points;
    counts.echoes_avoided += outcome.echoes_avoided;
    if (!outcome.drift.empty()) {
        counts.schema_drift++;
        return;
    }
    if (outcome.success)
        counts.successes++;
    else if (!outcome.capped)
        counts.failures++;
    if (outcome.error.empty() || outcome.capped) {
        switch (outcome.mode) {
        case Mode::no_change:
            counts.no_change++;
            break;
        case Mode::hashmatch:
            counts.hashmatch++;
            break;
        case Mode::bulk:
            counts.bulk++;
            break;
        case Mode::diff:
            counts.diff++;
            break;
        }
    }
    if (outcome.capped)
        counts.diff_capped++;
}

struct PassSummary {
    int tables = 0;
    int successes = 0;
    int failures = 0;
    int no_change = 0;
    int hashmatch = 0;
    int bulk = 0;
    int diff = 0;
    int diff_capped = 0;
    int schema_drift = 0;
    uint64_t rows_sent = 0;
    uint64_t rejects = 0;
    uint64_t corrected_points = 0;
    uint64_t echoes_avoided = 0;
    double seconds = 0;
    bool unreachable = false; // the peer or the local database could not be reached
    bool local_down = false;  // ... and it was the local database
    bool broken = false;      // the pass could not start: an answer it could not read

    void add(const TableOutcome &outcome);
    void add(const PassSummary &other);
    // Every table succeeded (a capped diff did not: rows are left for the next pass).
    bool complete() const { return !unreachable && !broken && successes == tables; }
    // Complete but for tables skipped for schema drift (which log once, not per pass).
    bool quiet() const { return !unreachable && !broken && successes + schema_drift == tables; }
    // `to` is "b" for one peer or "3 peers".
    std::string line(const std::string &to) const;
};
