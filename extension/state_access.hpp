// Access to idsync's own tables from C, and who the caller is.
//
// Only the owner of idsync's tables (the extension's owner) writes them. The functions that
// change replication state are C functions that are not SECURITY DEFINER: they see the real
// caller (GetUserId()), check what that role may do, and only then run a fixed statement as
// the owner inside an OwnerScope. Every statement idsync runs through SPI runs with
// search_path pinned to pg_catalog, pg_temp.
#pragma once

#include "pg.hpp"

namespace idsync {

// A relation's schema-qualified, quoted name for messages ("with OID n" when it is gone), as
// regclass prints it under the pinned search_path (this session's temporary tables unqualified).
const char *relid_name(Oid relid);

// This node's id, as idsync.node_id() gives it (which refuses a copied database).
pg_uuid_t this_node();

// The role that owns idsync's tables.
Oid state_owner();

// While open, the current user is state_owner() (a local change, as in PostgreSQL's own RI
// triggers) and search_path is pinned. An error that escapes restores both at (sub)transaction
// abort; leave_owner_scope restores them on the normal path.
struct OwnerScope {
    Oid saved_user;
    int saved_context;
    int guc_level;
};
OwnerScope enter_owner_scope();
void leave_owner_scope(const OwnerScope &scope);
// Only the identity, for executing a plan prepared earlier with search_path pinned (a replan
// keeps the path the plan was made with).
OwnerScope enter_owner_identity();

// Pins search_path to "pg_catalog, pg_temp" for SQL that idsync runs as the current user;
// unpin_search_path(level) restores the caller's.
int pin_search_path();
void unpin_search_path(int level);

// Runs one fixed statement as the owner (inside its own SPI connection) and returns the number
// of rows it processed. `nulls` as SPI takes them (' ' or 'n'), or nullptr.
uint64 exec_as_owner(const char *sql, int nargs, Oid *types, Datum *values, const char *nulls);

// What the calling role is to idsync (idsync.roles, README "Security model").
struct CallerRoles {
    bool admin;     // the extension's owner (or a role with its privileges), or granted admin
    bool daemon;    // granted daemon: the local role of idsyncd
    bool peer;      // granted peer: the role a remote idsyncd logs in as
    pg_uuid_t node; // the node a peer role speaks for
};
CallerRoles caller_roles();

// ERROR 42501 unless the caller owns `relid`.
void require_owner(Oid relid);

// How `relid` is registered: kNotRegistered, kInsertOnly or kLww.
constexpr int kNotRegistered = 0, kInsertOnly = 1, kLww = 2;
int registration_mode(Oid relid);

// ERROR 55000 unless `relid` is registered; returns its mode.
int require_registered(Oid relid);

// What every replication function checks first (as idsync._registration): 55000 unless `relid`
// is registered, 42501 unless the caller may read all of its rows (SELECT, and no row-level
// security in the way: a replica of the rows a policy shows would be a silent partial copy).
void require_replicable(Oid relid);

// Whether `node` was retired on this node (idsync.retire_node).
bool node_retired(const pg_uuid_t *node);

// ERROR 55000 when `source` is a retired node; ERROR 42501 unless the caller may merge rows into
// `relid`, in the name of `source` when given: administrators may; a peer role may when it speaks
// for `source` and holds SELECT and INSERT (and UPDATE and DELETE for lww) on the table.
void require_merge_rights(Oid relid, const pg_uuid_t *source, bool lww);

// Raises the sync point of `remote` for `relid` to at least `point` (as idsync._raise_sync):
// incoming points for administrators and peers that may merge into the table, outgoing points
// for administrators and the daemon's local role (state_writes.cpp).
void raise_sync(Oid relid, Datum remote, int64 point, bool incoming);

// The sync point of `remote` for `relid` (incoming: how far its rows were merged here; else how
// far ours were pushed there), -1 when there is none. Read as the caller (sync_points.cpp).
int64 read_sync_point(Oid relid, Datum remote, bool incoming);

// Parks rows a merge into `relid` could not apply in idsync.rejects, from `rejects`, a jsonb
// array of {point, item, sqlstate, message, detail}. Whoever may merge into the table may park
// rows of it: nothing parked can be applied later with more rights than the merge that parked
// it had. Returns how many were parked.
uint64 park_rejects(Oid relid, Datum source, bool source_null, Datum rejects);

// What reclaim checks before it purges anything of `relid`: 55000 unless it is registered, 42501
// unless the caller is an administrator who owns it.
void require_reclaim_rights(Oid relid);

// ERROR 42501 with `what` unless `ok`.
void require(bool ok, const char *what);

} // namespace idsync
