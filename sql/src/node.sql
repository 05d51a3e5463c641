-- Node identity.

CREATE FUNCTION node_id() RETURNS uuid
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    me idsync.node;
BEGIN
    SELECT * INTO STRICT me FROM idsync.node;
    IF me.database_oid <> (SELECT oid FROM pg_database WHERE datname = current_database()) THEN
        RAISE EXCEPTION 'this database is a copy of idsync node %', me.node_id
            USING ERRCODE = '55000',
                  HINT = 'Give it an identity of its own: SELECT idsync.reset_node_id();';
    END IF;
    RETURN me.node_id;
END $$;
COMMENT ON FUNCTION node_id() IS 'the uuid that identifies this database as an idsync node';

CREATE FUNCTION reset_node_id() RETURNS uuid
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
    UPDATE idsync.node
    SET node_id = gen_random_uuid(), created_at = now(),
        database_oid = (SELECT oid FROM pg_database WHERE datname = current_database())
    RETURNING node_id
$$;
COMMENT ON FUNCTION reset_node_id() IS
'give a copied database (pg_basebackup, template, restore) a node identity of its own';
