# For the benchmarks of many tables (source after cluster.sh).
# small_tables_cluster NAME PORT TABLES: starts cluster NAME on PORT with idsync and TABLES
# registered tables t1 .. tTABLES of 10 rows each, the same rows on every cluster.
small_tables_cluster() {
    cluster_start "$1" "$2"
    env $(cluster_env "$1") psql -X -q -v ON_ERROR_STOP=1 >/dev/null <<SQL
CREATE EXTENSION idsync;
SELECT format('CREATE TABLE t%s (id bigserial PRIMARY KEY, name text NOT NULL UNIQUE, value int);
               INSERT INTO t%s (name, value) SELECT ''row-'' || g, g FROM generate_series(1, 10) g;
               SELECT idsync.replicate(''t%s'', ''{name}'');', g, g, g)
FROM generate_series(1, $3) g \gexec
SQL
}
