// One pass of one table to one peer: Swift's db_replicator _repl_to_node, adapted to idsync's
// SQL functions. The steps, in order: preflight (sync_info on both sides, the peer's incoming
// point for us, our outgoing point for the peer), choose the mode, then no_change, hashmatch,
// bulk (COPY into a staging table on the peer, merge_staged) or diff (items_since batches into
// merge_items, then merge_syncs on both sides).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "config.hpp"
#include "mode.hpp"
#include "pg_connection.hpp"
#include "task.hpp"

// A registered table as the local catalog lists it (idsync.replicated_tables()).
struct TableInfo {
    std::string name;    // schema-qualified and quoted, the same on every node
    std::string columns; // the replicated columns, quoted, comma-separated
    int depth = 0;       // 0, or 1 + the depth of the deepest registered parent
    std::string syncs;   // our incoming points when the pass started, for merge_syncs
};

struct PassContext {
    PgConnection &local;
    PgConnection &remote;
    const Config &config;
    std::string peer;     // the peer's name, for logs
    const bool &stopping; // set on SIGTERM: stop between batches, roll back a bulk copy
    // One stable point for every table of the pass: rows are sent up to it, so a row's parents
    // (written before it, with smaller points) reach the peer in the same pass, parents first.
    int64_t cut;
    // Whether the incoming points captured at the start may go to the peer (transitive sync):
    // only when every row merged here before they were read lies at or below the cut, so the
    // pass sends those rows too. Otherwise the peer would skip rows that nobody sent it.
    bool pass_on_syncs;
    // The largest change point this node had issued when the pass started. A peer's incoming
    // point for us beyond every point we ever issued was raised by someone else (a peer passing
    // on points may lie): it is corrected, not obeyed.
    int64_t last_issued;
};

struct TableOutcome {
    Mode mode = Mode::no_change;
    bool success = false;
    bool capped = false;          // diff_capped: rows left for the next pass
    bool connection_lost = false; // the pass to this peer cannot go on
    bool local_lost = false;      // ... because the local database's connection failed
    bool stopped = false;         // interrupted by shutdown
    uint64_t rows_sent = 0;
    uint64_t rejects = 0;
    uint64_t corrected_points = 0; // the peer's point for us was beyond anything we issued
    uint64_t echoes_avoided = 0;   // rows the peer wrote itself, not sent back to it
    int64_t lag = -1; // local max point minus the point the peer has reached; -1 unknown
    // What the preflight saw parked on the peer (ages in seconds of the oldest rows).
    bool parked_known = false;
    std::optional<double> oldest_reject_age;
    std::optional<double> oldest_waiting_age;
    std::string error;
    // Not sent: the table's shape differs on the peer (schema_shape.hpp); what differs.
    std::string drift;
};

// The start of a pass: captures every table's incoming points, then reads the cut.
struct PassStart {
    int64_t cut = -1;
    bool pass_on_syncs = false;
    int64_t last_issued = 0;
};
Task<PassStart> start_pass(PgConnection &local, std::vector<TableInfo> &tables);
// The conflict records kept on the local node, per table (idsync.conflicts).
Task<std::map<std::string, int64_t>> conflict_counts(PgConnection &local);
// The local registered tables, parents first.
Task<std::vector<TableInfo>> list_tables(PgConnection &local);
// Never throws: failures are in the outcome. Connections left inside a transaction or a COPY
// are closed, so the servers roll back.
Task<TableOutcome> replicate_table(PassContext &context, const TableInfo &table);
