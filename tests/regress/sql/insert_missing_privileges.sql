-- Privileges and row-level security are those of INSERT and SELECT.
SET client_min_messages = warning;
CREATE SCHEMA insert_missing_privileges;
SET search_path = insert_missing_privileges, public;

CREATE TABLE pkg (id bigserial PRIMARY KEY, name text UNIQUE, owner text DEFAULT current_user);
CREATE ROLE idsync_reader;
CREATE ROLE idsync_writer;
CREATE ROLE idsync_columns;
GRANT USAGE ON SCHEMA idsync, insert_missing_privileges TO idsync_reader, idsync_writer, idsync_columns;
GRANT SELECT ON pkg TO idsync_reader;
GRANT SELECT, INSERT ON pkg TO idsync_writer;
GRANT USAGE ON SEQUENCE pkg_id_seq TO idsync_writer, idsync_columns;
GRANT SELECT (id, name), INSERT (name) ON pkg TO idsync_columns;

SET ROLE idsync_reader;
SELECT try($$SELECT * FROM idsync.insert_missing('pkg', '{name}', ARRAY['a'])$$);
RESET ROLE;
SET ROLE idsync_writer;
SELECT * FROM idsync.insert_missing('pkg', '{name}', ARRAY['a', 'b']);
RESET ROLE;
-- Column privileges suffice when they cover the id and the given columns.
SET ROLE idsync_columns;
SELECT * FROM idsync.insert_missing('pkg', '{name}', ARRAY['b', 'c']);
SELECT try($$SELECT * FROM idsync.insert_missing('pkg', '{name,owner}', ARRAY['d'], ARRAY['x'])$$);
RESET ROLE;

-- Row-level security: a user sees and inserts only its own rows.
ALTER TABLE pkg ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_rows ON pkg USING (owner = current_user) WITH CHECK (owner = current_user);
SET ROLE idsync_writer;
SELECT * FROM idsync.insert_missing('pkg', '{name}', ARRAY['w1', 'w2', 'w1']);
SELECT * FROM idsync.insert_missing('pkg', '{name}', ARRAY['w1']);
-- Rows of other owners exist but are hidden: an error, not their ids.
SELECT try($$SELECT * FROM idsync.insert_missing('pkg', '{name}', ARRAY['c', 'w3'])$$);
-- WITH CHECK applies to inserted rows.
SELECT try($$SELECT * FROM idsync.insert_missing('pkg', '{name,owner}', ARRAY['z'], ARRAY['someone_else'])$$);
RESET ROLE;
SELECT name, owner = 'idsync_writer' AS by_writer FROM pkg ORDER BY name;

DROP TABLE pkg;
DROP OWNED BY idsync_reader, idsync_writer, idsync_columns;
DROP ROLE idsync_reader, idsync_writer, idsync_columns;
