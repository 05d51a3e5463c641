// The decision at the start of a table pass (Swift's _in_sync and _choose_replication_mode),
// pure so that it can be unit tested.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

// What idsync.sync_info(table) returned on one side.
struct SyncInfo {
    std::string node_id;
    int64_t max_point = -1; // -1: no rows
    int64_t row_count = 0;
    std::string content_hash;
    int64_t rejects = 0;
};

struct Preflight {
    SyncInfo local;
    SyncInfo remote;
    int64_t remote_point = -1;   // the peer's incoming sync point for us: get_sync on the peer
    int64_t local_outgoing = -1; // our outgoing sync point for the peer: get_sync(..., false)
    // The age in seconds of the oldest row parked on the peer (refused; waiting for a referenced
    // row), when there is one.
    std::optional<double> remote_oldest_reject;
    std::optional<double> remote_oldest_waiting;
    // When an operator asked for a resync of the table to this peer (idsyncctl resync), the
    // time of the request as the local database prints it; empty when none.
    std::string resync_requested_at;
    // The table's shape here and on the peer (schema_shape.hpp); empty when unknown.
    std::string local_shape;
    std::string remote_shape;
};

enum class Mode { no_change, hashmatch, bulk, diff };

struct ModeSettings {
    int per_diff = 1000;
    double bulk_ratio = 0.5;
};

// no_change: the peer has every point up to our max. hashmatch: same content (record the peer's
// point as our outgoing point). bulk: the point the peer has reached is below bulk_ratio of our
// max point and more than per_diff behind it (Swift's rsync_then_merge rule, in our point
// space). diff: send the changes after diff_start().
Mode choose_mode(const Preflight &preflight, const ModeSettings &settings);
int64_t diff_start(const Preflight &preflight);
const char *mode_name(Mode mode);
