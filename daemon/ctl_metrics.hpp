// idsyncctl's view of the running daemon: its /metrics (Prometheus text) fetched over the
// loopback listener of the configuration (metrics_listen), and the samples idsyncctl shows.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <utility>

#include "config.hpp"

// The body of GET /metrics, or nullopt when the daemon does not answer within `timeout`
// seconds (not running, or metrics_listen off).
std::optional<std::string> fetch_metrics(const ListenAddress &address, double timeout);

// The latest pass of one (peer, table) pair, from idsyncd_last_pass_timestamp_seconds.
struct LastPass {
    std::string mode;
    std::string outcome;
    double time = 0; // Unix seconds
};
using LastPasses = std::map<std::pair<std::string, std::string>, LastPass>;

// The latest passes in a /metrics body, by (peer, table).
LastPasses parse_last_passes(const std::string &metrics);
