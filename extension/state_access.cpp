#include "state_access.hpp"

#include "boundary.hpp"
#include "kept_plans.hpp"
#include "registration.hpp"

namespace idsync {

namespace {

Oid state_table(const char *name)
{
    Oid relid = get_relname_relid(name, get_namespace_oid("idsync", false));
    if (!OidIsValid(relid))
        ereport(ERROR, (errcode(ERRCODE_UNDEFINED_OBJECT), errmsg("idsync.%s does not exist", name),
                        errhint("Update the extension: ALTER EXTENSION idsync UPDATE.")));
    return relid;
}

} // namespace

const char *relid_name(Oid relid)
{
    char *name = get_rel_name(relid);
    if (name == nullptr)
        return psprintf("with OID %u", relid);
    // A session's temporary table by its name alone, as regclass shows it with the pinned path.
    if (isTempNamespace(get_rel_namespace(relid)))
        return quote_identifier(name);
    return quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)), name);
}

pg_uuid_t this_node()
{
    if (SPI_connect() != SPI_OK_CONNECT)
        elog(ERROR, "idsync could not connect to SPI");
    int pinned = pin_search_path();
    int ret = SPI_execute("SELECT idsync.node_id()", false, 1);
    unpin_search_path(pinned);
    bool isnull = true;
    if (ret == SPI_OK_SELECT && SPI_processed == 1)
        (void)SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
    if (isnull)
        elog(ERROR, "idsync: reading this node's id failed");
    pg_uuid_t node =
        *DatumGetUUIDP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
    SPI_finish();
    return node;
}

Oid state_owner()
{
    HeapTuple cls = SearchSysCache1(RELOID, ObjectIdGetDatum(state_table("tables")));
    if (!HeapTupleIsValid(cls))
        elog(ERROR, "cache lookup failed for idsync.tables");
    Oid owner = reinterpret_cast<Form_pg_class>(GETSTRUCT(cls))->relowner;
    ReleaseSysCache(cls);
    return owner;
}

int pin_search_path()
{
    int level = NewGUCNestLevel();
    (void)set_config_option("search_path", "pg_catalog, pg_temp", PGC_USERSET, PGC_S_SESSION,
                            GUC_ACTION_SAVE, true, 0, false);
    return level;
}

void unpin_search_path(int level)
{
    AtEOXact_GUC(true, level);
}

OwnerScope enter_owner_identity()
{
    OwnerScope scope;
    Oid owner = state_owner();
    GetUserIdAndSecContext(&scope.saved_user, &scope.saved_context);
    SetUserIdAndSecContext(owner, scope.saved_context | SECURITY_LOCAL_USERID_CHANGE |
                                      SECURITY_RESTRICTED_OPERATION);
    scope.guc_level = 0;
    return scope;
}

OwnerScope enter_owner_scope()
{
    OwnerScope scope = enter_owner_identity();
    scope.guc_level = pin_search_path();
    return scope;
}

void leave_owner_scope(const OwnerScope &scope)
{
    if (scope.guc_level > 0)
        unpin_search_path(scope.guc_level);
    SetUserIdAndSecContext(scope.saved_user, scope.saved_context);
}

uint64 exec_as_owner(const char *sql, int nargs, Oid *types, Datum *values, const char *nulls)
{
    OwnerScope scope = enter_owner_scope();
    if (SPI_connect() != SPI_OK_CONNECT)
        elog(ERROR, "idsync could not connect to SPI");
    // Prepared once per backend (these statements run at every merge and pass).
    int ret = SPI_execute_plan(kept_plan(sql, nargs, types), values, nulls, false, 0);
    if (ret < 0)
        elog(ERROR, "idsync: internal statement failed: %s", SPI_result_code_string(ret));
    uint64 processed = SPI_processed;
    SPI_finish();
    leave_owner_scope(scope);
    return processed;
}

CallerRoles caller_roles()
{
    CallerRoles roles = {};
    Oid caller = GetUserId();
    roles.admin = has_privs_of_role(caller, state_owner());
    Datum name = CStringGetTextDatum(GetUserNameFromId(caller, false));
    Oid type = TEXTOID;

    OwnerScope scope = enter_owner_scope();
    if (SPI_connect() != SPI_OK_CONNECT)
        elog(ERROR, "idsync could not connect to SPI");
    if (SPI_execute_plan(kept_plan("SELECT r.kind, r.node_id FROM idsync.roles r "
                                   "WHERE r.role_name OPERATOR(pg_catalog.=) $1::pg_catalog.name",
                                   1, &type),
                         &name, nullptr, true, 0) != SPI_OK_SELECT)
        elog(ERROR, "idsync: reading idsync.roles failed");
    for (uint64 r = 0; r < SPI_processed; r++) {
        HeapTuple row = SPI_tuptable->vals[r];
        TupleDesc desc = SPI_tuptable->tupdesc;
        char *kind = SPI_getvalue(row, desc, 1);
        if (strcmp(kind, "admin") == 0)
            roles.admin = true;
        else if (strcmp(kind, "daemon") == 0)
            roles.daemon = true;
        else if (strcmp(kind, "peer") == 0) {
            bool isnull;
            Datum node = SPI_getbinval(row, desc, 2, &isnull);
            if (!isnull) {
                roles.peer = true;
                roles.node = *DatumGetUUIDP(node);
            }
        }
    }
    SPI_finish();
    leave_owner_scope(scope);
    return roles;
}

bool node_retired(const pg_uuid_t *node)
{
    Oid type = UUIDOID;
    Datum value = UUIDPGetDatum(const_cast<pg_uuid_t *>(node));
    return exec_as_owner("SELECT FROM idsync.retired_nodes n "
                         "WHERE n.node_id OPERATOR(pg_catalog.=) $1",
                         1, &type, &value, nullptr) > 0;
}

void require_reclaim_rights(Oid relid)
{
    require_registered(relid);
    require(caller_roles().admin, "only idsync administrators reclaim");
    require_owner(relid);
}

void require(bool ok, const char *what)
{
    if (!ok)
        ereport(ERROR,
                (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE), errmsg("permission denied: %s", what),
                 errhint("See \"Security model\" in idsync's README for what each kind of "
                         "role may do.")));
}

void require_owner(Oid relid)
{
    if (!pg_class_ownercheck(relid, GetUserId()))
        ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
                        errmsg("must be owner of table %s", get_rel_name(relid))));
}

int registration_mode(Oid relid)
{
    const Registration *reg = load_registration(relid, CurrentMemoryContext);
    return reg == nullptr ? kNotRegistered : reg->lww ? kLww : kInsertOnly;
}

int require_registered(Oid relid)
{
    int mode = registration_mode(relid);
    if (mode == kNotRegistered)
        ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                        errmsg("table %s is not registered for replication", relid_name(relid)),
                        errhint("Register it with idsync.replicate().")));
    return mode;
}

void require_replicable(Oid relid)
{
    require_registered(relid);
    if (pg_class_aclcheck(relid, GetUserId(), ACL_SELECT) != ACLCHECK_OK)
        ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
                        errmsg("permission denied for table %s", relid_name(relid)),
                        errdetail("Replicating a table reads all of its rows.")));
    if (check_enable_rls(relid, InvalidOid, true) == RLS_ENABLED)
        ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
                        errmsg("row-level security hides rows of table %s from role %s",
                               relid_name(relid), GetUserNameFromId(GetUserId(), false)),
                        errdetail("Replication reads and merges every row of a table."),
                        errhint("Replicate as the table's owner or as a role with BYPASSRLS.")));
}

// May the caller merge rows into `relid` (in the name of `source`, when given)? Administrators
// may; a peer role may when it speaks for `source` and holds the privileges a merge uses.
void require_merge_rights(Oid relid, const pg_uuid_t *source, bool lww)
{
    if (source != nullptr && node_retired(source))
        ereport(ERROR,
                (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                 errmsg("node %s is retired on this node",
                        DatumGetCString(DirectFunctionCall1(
                            uuid_out, UUIDPGetDatum(const_cast<pg_uuid_t *>(source))))),
                 errdetail("idsync.retire_node() took it out of the set: nothing it sends is "
                           "merged here."),
                 errhint("Stop its idsyncd and take its role away (idsync.revoke_role).")));
    CallerRoles roles = caller_roles();
    if (roles.admin)
        return;
    require(roles.peer, "only idsync peer roles and administrators merge rows");
    if (source != nullptr && memcmp(source->data, roles.node.data, UUID_LEN) != 0)
        ereport(ERROR,
                (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
                 errmsg("permission denied: role \"%s\" speaks for node %s, not for node %s",
                        GetUserNameFromId(GetUserId(), false),
                        DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(&roles.node))),
                        DatumGetCString(DirectFunctionCall1(
                            uuid_out, UUIDPGetDatum(const_cast<pg_uuid_t *>(source)))))));
    AclMode needed = ACL_INSERT | ACL_SELECT | (lww ? ACL_UPDATE | ACL_DELETE : 0);
    if (pg_class_aclmask(relid, GetUserId(), needed, ACLMASK_ALL) != needed)
        ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
                        errmsg("permission denied for table %s", relid_name(relid)),
                        errdetail("A merge needs SELECT and INSERT%s on the table.",
                                  lww ? ", UPDATE and DELETE" : "")));
}

} // namespace idsync
