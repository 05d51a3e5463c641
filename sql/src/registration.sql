-- Registration: what replicate() checks and does to a table, the foreign keys that matter to
-- replication, the triggers of registered tables, and the event triggers that follow DROP and
-- ALTER TABLE.

-- Registration: only the owner of a table, an administrator, registers it

-- Every replication function reads a registration through here, and here the caller must be
-- able to read every row of the table: SELECT on it, and no row-level security in the way
-- (a replica of the rows a policy lets one role see would be a silent partial copy).
CREATE FUNCTION _registration(target regclass) RETURNS tables
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    reg idsync.tables;
BEGIN
    IF target IS NULL THEN
        RAISE EXCEPTION 'target must not be NULL' USING ERRCODE = '22004';
    END IF;
    SELECT * INTO reg FROM idsync.tables WHERE relid = target;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'table % is not registered for replication', target
            USING ERRCODE = '55000', HINT = 'Register it with idsync.replicate().';
    END IF;
    IF NOT has_table_privilege(target, 'SELECT') THEN
        RAISE EXCEPTION 'permission denied for table %', target
            USING ERRCODE = '42501', DETAIL = 'Replicating a table reads all of its rows.';
    END IF;
    IF row_security_active(target) THEN
        RAISE EXCEPTION 'row-level security hides rows of table % from role %', target, current_user
            USING ERRCODE = '42501',
                  DETAIL = 'Replication reads and merges every row of a table.',
                  HINT = 'Replicate as the table''s owner or as a role with BYPASSRLS.';
    END IF;
    RETURN reg;
END $$;

-- The replicated columns of a registration: every live column but the local ones.
CREATE FUNCTION _replicated_columns(reg tables) RETURNS name[]
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce(array_agg(attname ORDER BY attnum), '{}')
    FROM pg_attribute
    WHERE attrelid = reg.relid AND attnum > 0 AND NOT attisdropped
      AND attname <> ALL (reg.local_columns)
$$;

-- References. A registered table whose foreign key points at the node-local id of another
-- registered table replicates the reference as the natural key of the referenced row (nested
-- when that key holds references itself); README.md, "Normalized data", has the model.

-- The foreign keys of a registered table that matter to replication, by constraint name:
--   translated: the key references one local column of the parent (its surrogate id); the
--               value travels as the parent row's natural key;
--   otherwise:  the key references replicated columns, whose values are equal on every node,
--               and travels as it is.
-- Foreign keys on local columns of the table are not replicated and not listed. Refused with a
-- clear error: a parent that is not registered, a reference to a local column together with
-- other columns, a reference to columns that hold node-local ids, and a mix of local and
-- replicated columns. `target_locals` stands in for the registration while it is being made.
CREATE FUNCTION _references(target regclass, target_locals name[] DEFAULT NULL)
RETURNS TABLE (constraint_name name, columns name[], parent regclass, parent_columns name[],
               translated boolean)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    own_locals name[] := coalesce(target_locals,
        (SELECT t.local_columns FROM idsync.tables t WHERE t.relid = target));
    parent_locals name[];
    fk record;
BEGIN
    FOR fk IN
        SELECT c.conname, c.confrelid::regclass AS parent_table, c.condeferrable,
               ARRAY(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY k(attnum, i)
                     JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum
                     ORDER BY k.i) AS child_columns,
               ARRAY(SELECT a.attname FROM unnest(c.confkey) WITH ORDINALITY k(attnum, i)
                     JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.attnum
                     ORDER BY k.i) AS referenced
        FROM pg_constraint c
        WHERE c.conrelid = target AND c.contype = 'f'
        ORDER BY c.conname
    LOOP
        CONTINUE WHEN fk.child_columns <@ own_locals;
        IF fk.child_columns && own_locals THEN
            RAISE EXCEPTION 'foreign key % of table % mixes local and replicated columns',
                quote_ident(fk.conname), target
                USING ERRCODE = '0A000',
                      HINT = 'Make all its columns local, or none of them.';
        END IF;
        IF fk.parent_table = target THEN
            parent_locals := own_locals;
        ELSE
            SELECT t.local_columns INTO parent_locals FROM idsync.tables t WHERE t.relid = fk.parent_table;
            IF NOT FOUND THEN
                RAISE EXCEPTION 'foreign key % of table % references table %, which is not registered for replication',
                    quote_ident(fk.conname), target, fk.parent_table
                    USING ERRCODE = '55000',
                          DETAIL = 'Its rows would reference rows that never reach the other nodes.',
                          HINT = format('Register %s first: parents before children.', fk.parent_table);
            END IF;
        END IF;
        IF fk.referenced && parent_locals THEN
            IF cardinality(fk.referenced) > 1 THEN
                RAISE EXCEPTION 'foreign key % of table % references local column % of % together with other columns',
                    quote_ident(fk.conname), target,
                    (SELECT string_agg(quote_ident(r), ', ') FROM unnest(fk.referenced) r
                     WHERE r = ANY (parent_locals)), fk.parent_table
                    USING ERRCODE = '0A000',
                          DETAIL = 'A local column holds values of this node only; idsync translates a reference to a single local id column.';
            END IF;
            -- The content hash of a row takes the natural key of the row it references when the
            -- statement ends; a deferred check would let that row come later.
            IF fk.condeferrable THEN
                RAISE EXCEPTION 'foreign key % of table % is deferrable', quote_ident(fk.conname), target
                    USING ERRCODE = '0A000',
                          DETAIL = 'A reference to a local id must find its row when the statement that writes it ends.',
                          HINT = 'Make the foreign key NOT DEFERRABLE.';
            END IF;
            RETURN QUERY SELECT fk.conname, fk.child_columns, fk.parent_table, fk.referenced, true;
        ELSE
            -- Replicated columns of the parent that are themselves translated references hold
            -- local ids, so a reference to them would need translating twice.
            IF EXISTS (
                SELECT 1 FROM pg_constraint c2
                JOIN idsync.tables t2 ON t2.relid = c2.confrelid
                JOIN pg_attribute ca ON ca.attrelid = c2.conrelid AND ca.attnum = c2.conkey[1]
                JOIN pg_attribute pa ON pa.attrelid = c2.confrelid AND pa.attnum = c2.confkey[1]
                WHERE c2.conrelid = fk.parent_table AND c2.contype = 'f'
                  AND cardinality(c2.conkey) = 1 AND ca.attname = ANY (fk.referenced)
                  AND pa.attname = ANY (t2.local_columns)) THEN
                RAISE EXCEPTION 'foreign key % of table % references columns (%) of %, which hold node-local ids',
                    quote_ident(fk.conname), target, array_to_string(fk.referenced, ', '), fk.parent_table
                    USING ERRCODE = '0A000',
                          HINT = format('Reference %s by its id instead.', fk.parent_table);
            END IF;
            RETURN QUERY SELECT fk.conname, fk.child_columns, fk.parent_table, fk.referenced, false;
        END IF;
    END LOOP;
END $$;

-- The translated references of a table: column -> (parent, parent's id column).
CREATE FUNCTION _translated(target regclass)
RETURNS TABLE (column_name name, parent regclass, parent_column name)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT r.columns[1], r.parent, r.parent_columns[1]
    FROM idsync._references(target) r WHERE r.translated
$$;

-- What identifies a registered table's rows, by insert_missing's rules
-- (extension/row_identity.cpp): the unique index on exactly the key columns, and the id column.
CREATE FUNCTION _key_index(target regclass, key_columns name[]) RETURNS regclass
AS 'MODULE_PATHNAME', 'idsync_key_index' LANGUAGE C STABLE SET search_path = pg_catalog, pg_temp;
CREATE FUNCTION _id_column(target regclass) RETURNS name
AS 'MODULE_PATHNAME', 'idsync_id_column' LANGUAGE C STABLE SET search_path = pg_catalog, pg_temp;

-- The registered tables whose natural form involves `target`: it and the tables that
-- reference it, transitively.
CREATE FUNCTION _dependents(target regclass) RETURNS SETOF regclass
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    WITH RECURSIVE d(relid) AS (
        SELECT target::oid
        UNION
        SELECT c.conrelid FROM d
        JOIN pg_constraint c ON c.confrelid = d.relid AND c.contype = 'f'
        JOIN idsync.tables t ON t.relid = c.conrelid
    )
    SELECT d.relid::regclass FROM d JOIN idsync.tables t ON t.relid = d.relid
$$;

-- Refuses DELETE of insert_only tables and TRUNCATE of every registered table: neither would
-- replicate. The argument is the mode, for the message only.
CREATE FUNCTION _refuse_trigger() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RAISE EXCEPTION 'cannot % table %: it is replicated as %',
        CASE TG_OP WHEN 'DELETE' THEN 'delete from' ELSE 'truncate' END,
        TG_RELID::regclass, TG_ARGV[0]
        USING ERRCODE = '55000',
              DETAIL = CASE TG_OP WHEN 'TRUNCATE' THEN 'A TRUNCATE would not replicate.'
                       ELSE 'Rows of insert_only tables are immutable facts shared by every node.' END,
              HINT = CASE TG_OP WHEN 'TRUNCATE' THEN 'Delete the rows instead (lww tables), or unregister the table.'
                     ELSE 'Register the table in mode ''lww'' to replicate updates and deletes.' END;
END $$;

-- lww: a natural key identifies the row on every node (and, in natural form, the rows that
-- reference it), so it cannot change in place.
CREATE FUNCTION _refuse_key_change() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RAISE EXCEPTION 'cannot change the natural key of a row of %', TG_RELID::regclass
        USING ERRCODE = '55000',
              DETAIL = 'The key identifies the row on every node: the others would keep the row under its old key.',
              HINT = 'Delete the row and insert it again with the new key.';
END $$;

-- The triggers of a registered table. None takes SQL from its arguments: they read the
-- registration (the refusing trigger takes the mode for its message only).
CREATE FUNCTION _attach_triggers(target regclass) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    reg idsync.tables := idsync._registration(target);
BEGIN
    EXECUTE format('CREATE TRIGGER idsync_change BEFORE INSERT OR UPDATE ON %1$s FOR EACH ROW '
                   'EXECUTE FUNCTION idsync.change_trigger(); '
                   'CREATE TRIGGER idsync_content_insert AFTER INSERT ON %1$s '
                   'REFERENCING NEW TABLE AS idsync_new FOR EACH STATEMENT '
                   'EXECUTE FUNCTION idsync.content_trigger(); '
                   'CREATE TRIGGER idsync_content_update AFTER UPDATE ON %1$s '
                   'REFERENCING OLD TABLE AS idsync_old NEW TABLE AS idsync_new FOR EACH STATEMENT '
                   'EXECUTE FUNCTION idsync.content_trigger(); '
                   'CREATE TRIGGER idsync_content_delete AFTER DELETE ON %1$s '
                   'REFERENCING OLD TABLE AS idsync_old FOR EACH STATEMENT '
                   'EXECUTE FUNCTION idsync.content_trigger(); '
                   'CREATE TRIGGER idsync_truncate BEFORE TRUNCATE ON %1$s FOR EACH STATEMENT '
                   'EXECUTE FUNCTION idsync._refuse_trigger(%2$L)', target, reg.mode);
    IF reg.mode = 'insert_only' THEN
        EXECUTE format('CREATE TRIGGER idsync_delete BEFORE DELETE ON %s FOR EACH STATEMENT '
                       'EXECUTE FUNCTION idsync._refuse_trigger(%L)', target, reg.mode);
    ELSE
        EXECUTE format('CREATE TRIGGER idsync_delete BEFORE DELETE ON %s FOR EACH ROW '
                       'EXECUTE FUNCTION idsync.tombstone_trigger()', target);
    END IF;
END $$;

-- The trigger of lww tables that refuses changes of the natural key.
CREATE FUNCTION _add_key_trigger(target regclass) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    reg idsync.tables := idsync._registration(target);
BEGIN
    IF reg.mode <> 'lww' THEN
        RETURN; -- insert_only tables refuse every update
    END IF;
    EXECUTE format('CREATE TRIGGER idsync_key BEFORE UPDATE OF %s ON %s FOR EACH ROW WHEN (%s) '
                   'EXECUTE FUNCTION idsync._refuse_key_change()',
                   (SELECT string_agg(quote_ident(k), ', ') FROM unnest(reg.key_columns) k), target,
                   (SELECT string_agg(format('OLD.%1$I IS DISTINCT FROM NEW.%1$I', k), ' OR ')
                    FROM unnest(reg.key_columns) k));
END $$;

CREATE FUNCTION _replicate_table(target regclass, key_columns text[], mode text DEFAULT 'insert_only',
                          version_column name DEFAULT NULL, tombstone_column name DEFAULT NULL,
                          local_columns text[] DEFAULT '{}')
RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    rel pg_class;
    keys name[];
    missing text;
    key_index regclass;
    id_column name;
    locals name[];
    point_column CONSTANT name := 'idsync_point';
BEGIN
    IF target IS NULL OR key_columns IS NULL OR mode IS NULL OR local_columns IS NULL THEN
        RAISE EXCEPTION 'target, key_columns, mode and local_columns must not be NULL'
            USING ERRCODE = '22004';
    END IF;
    IF mode NOT IN ('insert_only', 'lww') THEN
        RAISE EXCEPTION 'unknown replication mode "%"', mode
            USING ERRCODE = '22023', HINT = 'The modes are insert_only and lww.';
    END IF;
    IF mode = 'insert_only' AND (version_column IS NOT NULL OR tombstone_column IS NOT NULL) THEN
        RAISE EXCEPTION 'version_column and tombstone_column belong to mode lww'
            USING ERRCODE = '22023';
    END IF;
    IF mode = 'lww' THEN
        version_column := coalesce(version_column, 'idsync_version');
        tombstone_column := coalesce(tombstone_column, 'idsync_deleted');
    END IF;

    -- Kind and ownership from the catalog, before anything locks the table.
    SELECT * INTO rel FROM pg_class WHERE oid = target;
    IF rel.relkind <> 'r' OR rel.relpersistence = 't' THEN
        RAISE EXCEPTION '"%" is not a permanent ordinary table', target
            USING ERRCODE = '42809',
                  DETAIL = 'idsync replicates ordinary tables; partitioned tables, views and temporary tables are not supported.';
    END IF;
    IF rel.relnamespace = 'idsync'::regnamespace THEN
        RAISE EXCEPTION 'idsync''s own tables cannot be replicated' USING ERRCODE = '42809';
    END IF;
    IF rel.relnamespace IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace,
                            'pg_toast'::regnamespace) THEN
        RAISE EXCEPTION 'system table % cannot be replicated', target USING ERRCODE = '42809';
    END IF;
    IF NOT pg_has_role(current_user, rel.relowner, 'USAGE') THEN
        RAISE EXCEPTION 'must be owner of table %', target USING ERRCODE = '42501';
    END IF;
    IF EXISTS (SELECT 1 FROM idsync.tables t WHERE t.relid = target) THEN
        RAISE EXCEPTION 'table % is already registered', target USING ERRCODE = '42710';
    END IF;

    -- The natural key: existing columns, no repeats, exactly the columns of a unique index.
    IF cardinality(key_columns) = 0 OR array_position(key_columns, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'key_columns must name at least one column, and no NULL'
            USING ERRCODE = '22023';
    END IF;
    SELECT string_agg(quote_ident(k), ', ') INTO missing
    FROM unnest(key_columns) k
    WHERE NOT EXISTS (SELECT 1 FROM pg_attribute
                      WHERE attrelid = target AND attname = k AND attnum > 0 AND NOT attisdropped);
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION 'key column % of table % does not exist', missing, target
            USING ERRCODE = '42703';
    END IF;
    IF (SELECT count(DISTINCT k) FROM unnest(key_columns) k) <> cardinality(key_columns) THEN
        RAISE EXCEPTION 'key_columns names a column twice' USING ERRCODE = '42701';
    END IF;
    keys := key_columns::name[];
    key_index := idsync._key_index(target, keys);
    IF key_index IS NULL THEN
        RAISE EXCEPTION 'table % has no unique index on exactly (%)', target,
            array_to_string(key_columns, ', ')
            USING ERRCODE = '42P10',
                  HINT = 'The natural key identifies a row on every node: create a unique btree index (no predicate, no expression, not deferrable) on these columns.';
    END IF;
    -- A NULL in the key would let every node keep its own copy of the row.
    SELECT string_agg(quote_ident(a.attname), ', ') INTO missing
    FROM pg_attribute a
    WHERE a.attrelid = target AND a.attname = ANY (keys) AND NOT a.attnotnull
      AND NOT (SELECT indnullsnotdistinct FROM pg_index WHERE indexrelid = key_index);
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION 'key column % of table % allows NULL', missing, target
            USING ERRCODE = '42P16',
                  HINT = 'Declare the key columns NOT NULL, or make the key index UNIQUE NULLS NOT DISTINCT.';
    END IF;

    -- Local columns: the surrogate id (the id insert_missing returns: the single-column integer
    -- primary key, else a NOT NULL integer column "id"; not when part of the key), generated
    -- columns, and the caller's own.
    id_column := idsync._id_column(target);
    IF id_column = ANY (keys) THEN
        id_column := NULL;
    END IF;
    IF id_column IS DISTINCT FROM 'id' AND NOT 'id' = ANY (keys || local_columns::name[])
       AND EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = target AND attname = 'id'
                   AND atttypid IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype)) THEN
        RAISE WARNING 'column id of table % is replicated as data', target
            USING DETAIL = 'It is not the id insert_missing returns: that is the single-column integer primary key, else a NOT NULL integer column "id".',
                  HINT = 'If it holds this node''s ids, declare it NOT NULL or name it in local_columns.';
    END IF;
    SELECT string_agg(quote_ident(c), ', ') INTO missing
    FROM unnest(local_columns) c
    WHERE NOT EXISTS (SELECT 1 FROM pg_attribute
                      WHERE attrelid = target AND attname = c AND attnum > 0 AND NOT attisdropped);
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION 'local column % of table % does not exist', missing, target
            USING ERRCODE = '42703';
    END IF;
    IF local_columns && key_columns THEN
        RAISE EXCEPTION 'a key column cannot be local' USING ERRCODE = '22023';
    END IF;
    IF EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = target
               AND attname IN (point_column, 'idsync_origin')) THEN
        RAISE EXCEPTION 'table % already has a column named % or idsync_origin', target, point_column
            USING ERRCODE = '42701';
    END IF;
    locals := ARRAY[point_column]
              || CASE WHEN id_column IS NULL THEN '{}'::name[] ELSE ARRAY[id_column] END || local_columns::name[]
              || ARRAY(SELECT attname FROM pg_attribute
                       WHERE attrelid = target AND attnum > 0 AND attgenerated <> '');

    -- lww: the version column, added when missing. Deletes really delete: the tombstone column
    -- only names the marker of tombstones in items (a column of that name stays local).
    IF mode = 'lww' THEN
        IF version_column = ANY (keys) OR tombstone_column = ANY (keys)
           OR version_column = ANY (locals) OR version_column = tombstone_column THEN
            RAISE EXCEPTION 'the version and tombstone columns must be distinct, replicated, non-key columns'
                USING ERRCODE = '22023';
        END IF;
        IF EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = target AND attname = version_column
                   AND attnum > 0 AND NOT attisdropped) THEN
            IF (SELECT atttypid FROM pg_attribute WHERE attrelid = target
                AND attname = version_column) <> 'int8'::regtype THEN
                RAISE EXCEPTION 'version column % must be bigint', quote_ident(version_column)
                    USING ERRCODE = '42804';
            END IF;
        ELSE
            EXECUTE format('ALTER TABLE %s ADD COLUMN %I bigint NOT NULL DEFAULT idsync.hlc_now()',
                           target, version_column);
        END IF;
        IF EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = target AND attname = tombstone_column
                   AND attnum > 0 AND NOT attisdropped) AND tombstone_column <> ALL (locals) THEN
            locals := locals || tombstone_column;
        END IF;
    END IF;

    -- Existing rows get their points in the rewrite that adds the column.
    EXECUTE format('ALTER TABLE %s ADD COLUMN %I bigint DEFAULT idsync.next_point()',
                   target, point_column);
    EXECUTE format('ALTER TABLE %s ALTER COLUMN %I DROP DEFAULT', target, point_column);
    EXECUTE format('CREATE INDEX ON %s (%I)', target, point_column);
    -- The node that wrote each row version (NULL: this one), so that no row goes back to the
    -- node it came from.
    EXECUTE format('ALTER TABLE %s ADD COLUMN idsync_origin uuid', target);
    locals := locals || 'idsync_origin'::name;

    PERFORM idsync._register(target, keys, mode, version_column, tombstone_column, point_column,
                             locals);
    PERFORM idsync._attach_triggers(target);
    PERFORM idsync._recompute_content_state(target);
END $$;
COMMENT ON FUNCTION _replicate_table(regclass, text[], text, name, name, text[]) IS
'the registration itself, without the checks of foreign keys (see replicate)';

CREATE FUNCTION replicate(target regclass, key_columns text[], mode text DEFAULT 'insert_only',
                          version_column name DEFAULT NULL, tombstone_column name DEFAULT NULL,
                          local_columns text[] DEFAULT '{}')
RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    reg idsync.tables;
    self_key text;
BEGIN
    PERFORM idsync._replicate_table(target, key_columns, mode, version_column, tombstone_column,
                                    local_columns);
    reg := idsync._registration(target);
    -- Every foreign key is checked here; an error undoes the whole registration.
    PERFORM idsync._references(target);
    SELECT string_agg(quote_ident(t.column_name), ', ') INTO self_key
    FROM idsync._translated(target) t
    WHERE t.parent = target AND t.column_name = ANY (reg.key_columns);
    IF self_key IS NOT NULL THEN
        RAISE EXCEPTION 'key column % of table % references the table itself', self_key, target
            USING ERRCODE = '0A000',
                  DETAIL = 'A natural key that contains a reference to a row of its own table would nest without end.',
                  HINT = 'Keep the reference out of the key.';
    END IF;
    PERFORM idsync._refresh_content_triggers(target);
    PERFORM idsync._add_key_trigger(target);
END $$;
COMMENT ON FUNCTION replicate(regclass, text[], text, name, name, text[]) IS
'register a table for replication, identified across nodes by the natural key key_columns';

-- Drops what registration added to the table and forgets its replication state.
CREATE FUNCTION _unreplicate_table(target regclass) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    reg idsync.tables := idsync._registration(target);
    trigger_name text;
BEGIN
    FOREACH trigger_name IN ARRAY ARRAY['idsync_change', 'idsync_content_insert',
        'idsync_content_update', 'idsync_content_delete', 'idsync_delete', 'idsync_truncate'] LOOP
        EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', trigger_name, target);
    END LOOP;
    EXECUTE format('ALTER TABLE %s DROP COLUMN IF EXISTS %I, DROP COLUMN IF EXISTS idsync_origin',
                   target, reg.point_column);
    PERFORM idsync._forget(target);
END $$;
COMMENT ON FUNCTION _unreplicate_table(regclass) IS
'stop replicating a table: drops its triggers, change points and replication state';

CREATE FUNCTION unreplicate(target regclass) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    reg idsync.tables := idsync._registration(target);
    children text;
BEGIN
    SELECT string_agg(DISTINCT c.conrelid::regclass::text, ', ') INTO children
    FROM pg_constraint c JOIN idsync.tables t ON t.relid = c.conrelid
    WHERE c.confrelid = target AND c.contype = 'f' AND c.conrelid <> target;
    IF children IS NOT NULL THEN
        RAISE EXCEPTION 'cannot unregister table %: registered tables reference it', target
            USING ERRCODE = '2BP01', DETAIL = 'Referencing tables: ' || children || '.',
                  HINT = 'Unregister them first.';
    END IF;
    IF EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = target AND tgname = 'idsync_key') THEN
        EXECUTE format('DROP TRIGGER idsync_key ON %s', target);
    END IF;
    PERFORM idsync._unreplicate_table(target);
END $$;
COMMENT ON FUNCTION unreplicate(regclass) IS
'stop replicating a table: drops its triggers, change points and replication state';

-- Cleans up the registrations of dropped tables. SECURITY DEFINER: whoever drops a table, the
-- registrations of relations that no longer exist are forgotten (and nothing else).
CREATE FUNCTION _on_drop() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM idsync._forget(d.objid)
    FROM pg_event_trigger_dropped_objects() d
    WHERE d.classid = 'pg_class'::regclass AND d.objsubid = 0
      AND d.objid IN (SELECT relid FROM idsync.tables);
END $$;
CREATE EVENT TRIGGER idsync_on_drop ON sql_drop
WHEN TAG IN ('DROP TABLE', 'DROP SCHEMA', 'DROP OWNED')
EXECUTE FUNCTION _on_drop();

-- ALTER TABLE on a registered table: a new foreign key is checked like one at registration (an
-- error undoes the ALTER), and the content triggers follow the table's references.
CREATE FUNCTION _on_alter() RETURNS event_trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SECURITY DEFINER AS $$
DECLARE
    changed regclass;
BEGIN
    FOR changed IN
        SELECT DISTINCT d.objid::regclass FROM pg_event_trigger_ddl_commands() d
        JOIN idsync.tables t ON t.relid = d.objid
        WHERE d.classid = 'pg_class'::regclass
    LOOP
        PERFORM idsync._references(changed);
        PERFORM idsync._refresh_content_triggers(d) FROM idsync._dependents(changed) d;
    END LOOP;
END $$;
CREATE EVENT TRIGGER idsync_on_alter ON ddl_command_end
WHEN TAG IN ('ALTER TABLE')
EXECUTE FUNCTION _on_alter();

-- The registered tables in the order a sender walks them: each table after every registered
-- table it references by foreign key (self-references aside), then by name. idsyncd reads this
-- at the start of every pass, so registering a table needs no restart.
CREATE FUNCTION replicated_tables()
RETURNS TABLE (target regclass, table_name text, mode text, columns name[], depth integer)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    WITH RECURSIVE edges AS (
        SELECT DISTINCT c.conrelid AS child, c.confrelid AS parent
        FROM pg_constraint c
        JOIN idsync.tables a ON a.relid = c.conrelid
        JOIN idsync.tables b ON b.relid = c.confrelid
        WHERE c.contype = 'f' AND c.conrelid <> c.confrelid
    ), depths (relid, depth, path) AS (
        SELECT t.relid::oid, 0, ARRAY[t.relid::oid] FROM idsync.tables t
        UNION ALL
        SELECT e.child, d.depth + 1, d.path || e.child
        FROM depths d JOIN edges e ON e.parent = d.relid
        WHERE e.child <> ALL (d.path)
    )
    SELECT t.relid, format('%I.%I', n.nspname, c.relname), t.mode,
           idsync._replicated_columns(t), deepest.depth
    FROM idsync.tables t
    JOIN (SELECT relid, max(depth) AS depth FROM depths GROUP BY relid) deepest
      ON deepest.relid = t.relid
    JOIN pg_class c ON c.oid = t.relid
    JOIN pg_namespace n ON n.oid = c.relnamespace
    ORDER BY deepest.depth, 2
$$;
COMMENT ON FUNCTION replicated_tables() IS
'the registered tables, parents before children: (target, schema-qualified name, mode, replicated columns, depth)';
