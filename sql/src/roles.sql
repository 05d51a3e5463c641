-- Roles: what each kind of role may run (README "Security model"). Last, since it grants on
-- every function above.

-- The functions each kind of role calls. Internal helpers (names starting with an underscore)
-- go with them, since the API calls them as the caller; what they change, they check. The
-- helpers of registration and of content hashes only to administrators; granting only to the
-- extension's owner.
CREATE FUNCTION _kind_functions(kind text) RETURNS SETOF regprocedure
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT p.oid::regprocedure FROM pg_proc p
    WHERE p.pronamespace = 'idsync'::regnamespace
      AND p.proname NOT IN ('_grant_kind', '_kind_functions')
      AND (CASE WHEN p.proname LIKE '\_%'
                THEN kind = 'admin' OR p.proname <> ALL (ARRAY[
                         '_replicate_table', '_unreplicate_table', '_register', '_forget',
                         '_attach_triggers', '_add_key_trigger', '_refresh_content_triggers',
                         '_recompute_content_state', '_build_plan', '_purge_syncs', '_purge_tombstones',
                         '_registration_changed'])
                ELSE p.proname = ANY (CASE kind
          WHEN 'daemon' THEN ARRAY['replicated_tables', 'sync_info', 'get_sync', 'get_syncs',
                                   'items_since', 'tombstones_since', 'bulk_query',
                                   'compare_buckets', 'compare_rows', 'merge_syncs', 'stable_point',
                                   'compact', 'row_hash', 'node_id', 'request_resync']
          WHEN 'peer' THEN ARRAY['sync_info', 'get_sync', 'get_syncs', 'merge_items',
                                 'compare_buckets', 'compare_rows',
                                 'merge_staged', 'merge_syncs', 'create_staging', 'retry_waiting',
                                 'begin_bulk', 'end_bulk',
                                 'correct_sync', 'stable_point', 'compact', 'row_hash', 'node_id']
          WHEN 'admin' THEN ARRAY['replicate', 'unreplicate', 'reclaim', 'compact', 'retry_rejects',
                                  'record_conflicts',
                                  'discard_rejects',
                                  'retry_waiting', 'replicated_tables', 'sync_info', 'get_sync',
                                  'get_syncs', 'items_since', 'tombstones_since', 'bulk_query',
                                  'compare_buckets', 'compare_rows', 'merge_items',
                                  'merge_staged', 'merge_syncs', 'create_staging', 'correct_sync',
                                  'begin_bulk', 'end_bulk', 'request_resync', 'retire_node',
                                  'stable_point', 'next_point', 'row_hash', 'table_hash',
                                  'change_trigger', 'content_trigger', 'tombstone_trigger',
                                  'node_id']
          END) END)
$$;

-- Grants a role what its kind needs and records the kind (and the node a peer speaks for).
CREATE FUNCTION _grant_kind(role regrole, kind text, node uuid) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    fn regprocedure;
BEGIN
    IF role IS NULL THEN
        RAISE EXCEPTION 'role must not be NULL' USING ERRCODE = '22004';
    END IF;
    EXECUTE format('GRANT USAGE ON SCHEMA idsync TO %s', role);
    EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA idsync TO %s', role);
    FOR fn IN SELECT idsync._kind_functions(kind) LOOP
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %s', fn, role);
    END LOOP;
    INSERT INTO idsync.roles AS r (role_name, kind, node_id)
    VALUES ((SELECT rolname FROM pg_roles WHERE oid = role), _grant_kind.kind, node)
    ON CONFLICT ON CONSTRAINT roles_pkey DO UPDATE SET node_id = excluded.node_id, granted_at = now();
END $$;

CREATE FUNCTION grant_admin(role regrole) RETURNS void
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
    SELECT idsync._grant_kind(role, 'admin', NULL)
$$;
COMMENT ON FUNCTION grant_admin(regrole) IS
'let a role register the tables it owns, reclaim, retry rejects and run passes by hand';

CREATE FUNCTION grant_daemon(role regrole) RETURNS void
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
    SELECT idsync._grant_kind(role, 'daemon', NULL)
$$;
COMMENT ON FUNCTION grant_daemon(regrole) IS
'let a role be idsyncd''s local role: read registered tables'' changes and record outgoing points';

CREATE FUNCTION grant_peer(role regrole, node uuid) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF node IS NULL THEN
        RAISE EXCEPTION 'node must not be NULL: a peer role speaks for one node'
            USING ERRCODE = '22004';
    END IF;
    IF node = idsync.node_id() THEN
        RAISE EXCEPTION 'node % is this node', node USING ERRCODE = '22023',
            HINT = 'Name the node whose idsyncd logs in as this role (SELECT idsync.node_id() there).';
    END IF;
    PERFORM idsync._grant_kind(role, 'peer', node);
END $$;
COMMENT ON FUNCTION grant_peer(regrole, uuid) IS
'let a role be the login of the remote idsyncd of node `node`: merge in that node''s name only';

CREATE FUNCTION revoke_role(role regrole) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    fn regprocedure;
BEGIN
    IF role IS NULL THEN
        RAISE EXCEPTION 'role must not be NULL' USING ERRCODE = '22004';
    END IF;
    FOR fn IN SELECT p.oid::regprocedure FROM pg_proc p WHERE p.pronamespace = 'idsync'::regnamespace LOOP
        EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM %s', fn, role);
    END LOOP;
    EXECUTE format('REVOKE SELECT ON ALL TABLES IN SCHEMA idsync FROM %s', role);
    EXECUTE format('REVOKE USAGE ON SCHEMA idsync FROM %s', role);
    DELETE FROM idsync.roles r WHERE r.role_name = (SELECT rolname FROM pg_roles WHERE oid = role);
END $$;
COMMENT ON FUNCTION revoke_role(regrole) IS 'take back what grant_admin, grant_daemon or grant_peer gave';

-- EXECUTE for PUBLIC on the application API only.
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA idsync FROM PUBLIC;
GRANT EXECUTE ON FUNCTION insert_missing(regclass, text[], "any"),
                          insert_missing_sets(regclass, text[], bigint[], "any"),
                          insert_missing_staged(regclass, regclass, text[]),
                          hlc_now(), hlc_time(bigint), node_id()
TO PUBLIC;
