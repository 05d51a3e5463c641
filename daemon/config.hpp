// idsyncd's configuration: one INI file, read with inih, validated with file and line.
#pragma once

#include <string>
#include <vector>

struct PeerConfig {
    std::string name; // [peer NAME]: letters, digits, '_', '-', '.'; used in logs and metrics
    std::string dsn;  // libpq connection string; never logged
    int line = 0;     // where the section starts, for messages
};

// host:port for the metrics endpoint; enabled = false for "off".
struct ListenAddress {
    bool enabled = true;
    std::string host = "127.0.0.1";
    int port = 9187;
};

struct Config {
    std::string path;
    std::string local_dsn;
    std::vector<PeerConfig> peers;
    // Swift's db_replicator defaults.
    double interval = 30;         // seconds between the starts of two passes to a peer
    int per_diff = 1000;          // rows per merge_items batch
    int diff_bytes = 8 << 20;     // and its items' bytes at most (past one row)
    int max_diffs = 100;          // batches per table and pass before diff_capped
    double bulk_ratio = 0.5;      // bulk when remote max < ratio * local max (and > per_diff apart)
    int concurrency = 8;          // peers replicated to at the same time
    double node_timeout = 10;     // seconds any one remote call may take
    double conn_timeout = 0.5;    // seconds to establish a connection
    double backoff_base = 1;      // first retry delay after a failed pass, doubled per failure
    double backoff_max = 300;     // longest retry delay
    double progress_interval = 5; // seconds between progress lines of a bulk copy
    ListenAddress metrics_listen;
};

struct ConfigError {
    std::string file;
    int line = 0; // 0: about the file as a whole
    std::string message;
    std::string str() const; // "file:line: message" (or "file: message")
};

// Parses and validates the text of a configuration file; `name` is used in errors. Collects
// every error it finds; returns true when there are none.
bool parse_config(const std::string &text, const std::string &name, Config &config,
                  std::vector<ConfigError> &errors);
// Reads the file at `path`, then parse_config.
bool load_config(const std::string &path, Config &config, std::vector<ConfigError> &errors);
// load_config, with every error printed to stderr as "program: file:line: message".
bool load_config_or_report(const std::string &path, Config &config, const char *program);

// Whether a connection string holds a password.
bool dsn_has_password(const std::string &dsn);
// Why a config file with this mode cannot be used (as libpq refuses such a .pgpass): a file
// that holds a password must not be open to group or others. Empty when it may be used.
std::string check_file_mode(unsigned mode, bool holds_password);
// A short human summary of a valid configuration for --check-config (no DSN, no password).
std::string describe_config(const Config &config);
// Parses "host:port", "[v6]:port" or "off"; returns an error message or "".
std::string parse_listen(const std::string &text, ListenAddress &out);
