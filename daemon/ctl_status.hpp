// What `idsyncctl status` reports: per peer and registered table, whether the two nodes hold the
// same rows, how far behind the peer is, and what is parked on either side. Read with the
// connections of idsyncd's configuration file: the daemon's local role here, the peer roles
// there (README "Security model"); nothing is written but the content deltas sync_info folds.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "config.hpp"
#include "ctl_metrics.hpp"

// Rows parked on a node for one table (idsync.rejects): refused, and waiting for a referenced
// row (SQLSTATE 23503); the age of the oldest in seconds.
struct Parked {
    int64_t rejected = 0;
    int64_t waiting = 0;
    std::optional<double> oldest_seconds;
};

struct LocalTable {
    std::string name; // schema-qualified, quoted as needed
    std::string mode;
    int64_t rows = 0;
    std::string content_hash;
    int64_t max_point = -1; // the largest stable change point
    Parked parked;
    // For the lag queries: the point column, and the lww version column ("" for insert_only).
    std::string point_column;
    std::string version_column;
};

struct PeerTable {
    std::string name;
    std::string error;    // what failed for this table on the peer ("" when nothing)
    bool in_sync = false; // same row count and content hash as here
    int64_t rows = -1;
    int64_t merged_point = -1; // how far the peer merged this node's changes
    int64_t lag_points = 0;
    int64_t lag_rows = 0;              // this node's rows the peer has not merged
    bool lag_rows_capped = false;      // lag_rows stopped counting at kLagRowsCap
    std::optional<double> lag_seconds; // the age of the oldest of them, when it can be known
    Parked parked;                     // on the peer
    std::optional<LastPass> last_pass; // from the running idsyncd's /metrics
};

struct PeerStatus {
    std::string name;
    bool reachable = false;
    std::string error;
    std::string node_id;
    std::vector<PeerTable> tables;
};

struct StatusReport {
    bool local_reachable = false;
    std::string local_error;
    std::string node_id;
    bool commit_timestamps = false; // track_commit_timestamp is on here
    bool daemon_answered = false;   // idsyncd's metrics listener answered
    double now = 0;                 // Unix seconds, when the report was read
    std::vector<LocalTable> tables;
    std::vector<PeerStatus> peers;
    // Everything reachable, every table in sync with every peer.
    bool all_in_sync() const;
};

constexpr int64_t kLagRowsCap = 1000000;

StatusReport collect_status(const Config &config);

// One line per peer and table, with a header.
std::string status_text(const StatusReport &report);
std::string status_json(const StatusReport &report);
