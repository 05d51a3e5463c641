# The install script of the current version and the upgrade scripts agree: a database made with
# CREATE EXTENSION idsync (the whole current script) and one made with each released version,
# used as that version allows (registered tables and rows, references, rejects, sync points),
# then ALTER EXTENSION idsync UPDATE, end with the same function definitions, tables, columns,
# indexes, triggers, grants and rows of idsync's own tables.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('versions');
$node->init;
$node->append_conf('postgresql.conf', "fsync = off\nlog_min_messages = warning");
$node->start;
my $current = $node->safe_psql('postgres',
    q{SELECT default_version FROM pg_available_extensions WHERE name = 'idsync'});

# What every version since 0.2.0 can do: an insert_only and an lww table (explicit versions, so
# that hashes do not depend on the clock), rows, a merge from node X with a refused row and
# tombstones (of a row here, and of one never here), sync points both ways. Before 0.5.0 the
# tombstones were rows of s.kv; the update moves them to idsync.tombstones and keeps the tombstone
# column as a local column, which the comparison leaves out.
my $plain = q{
    CREATE SCHEMA s;
    CREATE TABLE s.pkg (id bigserial PRIMARY KEY, name text NOT NULL, version text NOT NULL,
                        size int, UNIQUE (name, version));
    CREATE TABLE s.kv (id bigserial PRIMARY KEY, k text NOT NULL UNIQUE, v text);
    SELECT idsync.replicate('s.pkg', '{name,version}');
    SELECT idsync.replicate('s.kv', '{k}', 'lww');
    INSERT INTO s.pkg (name, version, size) VALUES ('gcc', '12', 10), ('make', '4.3', 2);
    INSERT INTO s.kv (k, v, idsync_version) VALUES ('a', 'one', 1000), ('b', 'two', 2000);
    SELECT idsync.merge_items('s.pkg',
        '[{"point": 7, "item": {"name": "bash", "version": "5.2", "size": 3}},
          {"point": 8, "item": {"name": "bad", "version": "1", "size": "x"}}]',
        '00000000-0000-0000-0000-00000000000a');
    SELECT idsync.merge_items('s.kv',
        '[{"point": 9, "item": {"k": "c", "v": "three", "idsync_version": 3000, "idsync_deleted": false}}]',
        '00000000-0000-0000-0000-00000000000a');
    SELECT idsync.merge_items('s.kv',
        '[{"point": 10, "item": {"k": "b", "idsync_version": 2500, "idsync_deleted": true}},
          {"point": 11, "item": {"k": "d", "idsync_version": 4000, "idsync_deleted": true}}]',
        '00000000-0000-0000-0000-00000000000a');
    SELECT idsync.merge_syncs('s.pkg', '[{"remote_id": "00000000-0000-0000-0000-00000000000b", "sync_point": 5}]');
    SELECT idsync.merge_syncs('s.pkg', '[{"remote_id": "00000000-0000-0000-0000-00000000000a", "sync_point": 4}]', false);
};
# What 0.4.0 added: references by local id, and a row waiting for its parent. (Rows of a table
# with references cannot be written between the library's update and ALTER EXTENSION UPDATE:
# their 0.4.0 triggers kept SQL in their arguments. So a 0.4.0 database registers them before
# the update and writes them after.)
my $references_registered = q{
    CREATE TABLE s.derivations (id bigserial PRIMARY KEY, file_name text NOT NULL UNIQUE);
    CREATE TABLE s.outputs (id bigserial PRIMARY KEY,
        derivation_id bigint NOT NULL REFERENCES s.derivations, name text NOT NULL,
        UNIQUE (derivation_id, name));
    SELECT idsync.replicate('s.derivations', '{file_name}');
    SELECT idsync.replicate('s.outputs', '{derivation_id,name}');
};
my $references_rows = q{
    INSERT INTO s.derivations (file_name) VALUES ('a.drv'), ('b.drv');
    INSERT INTO s.outputs (derivation_id, name) SELECT id, 'out' FROM s.derivations;
    SELECT idsync.merge_items('s.outputs',
        '[{"point": 11, "item": {"name": "dev", "derivation_id": {"file_name": "a.drv"}}},
          {"point": 12, "item": {"name": "out", "derivation_id": {"file_name": "later.drv"}}}]',
        '00000000-0000-0000-0000-00000000000a');
};

# Everything that must be equal, one line per object or row.
my $dump = q{
    WITH ext AS (SELECT oid FROM pg_extension WHERE extname = 'idsync')
    SELECT line FROM (
        SELECT 'member ' || pg_describe_object(d.classid, d.objid, d.objsubid) AS line
        FROM pg_depend d, ext WHERE d.refclassid = 'pg_extension'::regclass
          AND d.refobjid = ext.oid AND d.deptype = 'e'
        UNION ALL
        SELECT 'function ' || pg_get_functiondef(p.oid) || ' acl ' || coalesce(p.proacl::text, '-')
               || ' comment ' || coalesce(obj_description(p.oid, 'pg_proc'), '-')
        FROM pg_proc p WHERE p.pronamespace = 'idsync'::regnamespace AND p.prokind <> 'a'
        UNION ALL
        SELECT format('relation %s %s acl %s', c.relname, c.relkind, coalesce(c.relacl::text, '-'))
        FROM pg_class c WHERE c.relnamespace = 'idsync'::regnamespace
        UNION ALL
        SELECT format('column %s.%s %s notnull %s default %s', a.attrelid::regclass, a.attname,
                      format_type(a.atttypid, a.atttypmod), a.attnotnull,
                      coalesce(pg_get_expr(ad.adbin, ad.adrelid), '-'))
        FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
        LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
        WHERE (c.relnamespace = 'idsync'::regnamespace OR c.relnamespace = 's'::regnamespace)
          AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped
          AND NOT (c.relname = 'kv' AND a.attname = 'idsync_deleted')
        UNION ALL
        SELECT format('constraint %s %s %s', conrelid::regclass, conname, pg_get_constraintdef(oid))
        FROM pg_constraint WHERE connamespace IN ('idsync'::regnamespace, 's'::regnamespace)
        UNION ALL
        SELECT 'index ' || pg_get_indexdef(i.indexrelid) FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
        WHERE c.relnamespace IN ('idsync'::regnamespace, 's'::regnamespace)
        UNION ALL
        SELECT 'trigger ' || pg_get_triggerdef(t.oid) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
        WHERE c.relnamespace IN ('idsync'::regnamespace, 's'::regnamespace) AND NOT t.tgisinternal
        UNION ALL
        SELECT format('event trigger %s %s %s %s %s', evtname, evtevent, evttags, evtfoid::regproc, evtenabled)
        FROM pg_event_trigger
        UNION ALL
        SELECT 'config ' || (SELECT string_agg(x::regclass::text, ',' ORDER BY x::regclass::text)
                             FROM unnest(e.extconfig) x)
        FROM pg_extension e WHERE e.extname = 'idsync'
        UNION ALL
        SELECT format('registration %s %s %s %s %s %s %s %s %s', t.relid, t.key_columns, t.mode,
                      t.version_column, t.tombstone_column, t.point_column,
                      array_remove(t.local_columns, 'idsync_deleted'),
                      t.reference_columns, t.reference_queries)
        FROM idsync.tables t
        UNION ALL
        SELECT format('content %s %s %s', t.relid, t.row_count + coalesce(sum(d.row_count), 0),
                      (t.hash1 # coalesce(bit_xor(d.hash1), 0)) || '/' || (t.hash2 # coalesce(bit_xor(d.hash2), 0)))
        FROM idsync.tables t LEFT JOIN idsync.table_deltas d ON d.relid = t.relid GROUP BY t.relid
        UNION ALL
        SELECT format('incoming %s %s %s', relid, remote_id, sync_point) FROM idsync.incoming_sync
        UNION ALL
        SELECT format('outgoing %s %s %s', relid, remote_id, sync_point) FROM idsync.outgoing_sync
        UNION ALL
        SELECT format('reject %s %s %s %s %s %s %s', relid, source, point, item, sqlstate, message, detail)
        FROM idsync.rejects
        UNION ALL
        SELECT format('roles %s %s %s', role_name, kind, node_id) FROM idsync.roles
        UNION ALL
        SELECT format('node rows %s', count(*)) FROM idsync.node
        UNION ALL
        SELECT format('pkg %s %s %s', name, version, size) FROM s.pkg
        UNION ALL
        SELECT format('kv %s %s %s', k, v, idsync_version) FROM s.kv
        UNION ALL
        -- (Not the origin: rows merged before 0.5.0 did not keep theirs.)
        SELECT format('tombstone %s %s %s %s', relid::regclass, key, key_hash, version)
        FROM idsync.tombstones
        UNION ALL
        SELECT format('output %s %s', d.file_name, o.name) FROM s.outputs o JOIN s.derivations d ON d.id = o.derivation_id
    ) x ORDER BY line
};

sub database {
    my ($name, $version, $before, $after) = @_;
    $node->safe_psql('postgres', "CREATE DATABASE $name");
    $node->safe_psql($name, "ALTER DATABASE $name SET search_path = public");
    $node->safe_psql($name, $version ? "CREATE EXTENSION idsync VERSION '$version'" : 'CREATE EXTENSION idsync');
    $node->safe_psql($name, $before) if $before;
    $node->safe_psql($name, 'ALTER EXTENSION idsync UPDATE') if $version;
    $node->safe_psql($name, $after) if $after;
    is($node->safe_psql($name, q{SELECT extversion FROM pg_extension WHERE extname = 'idsync'}),
        $current, "$name: at $current");
    return [split /\n/, $node->safe_psql($name, $dump)];
}

sub same {
    my ($what, $got, $want) = @_;
    my %want = map { $_ => 1 } @$want;
    my %got = map { $_ => 1 } @$got;
    my @extra = grep { !$want{$_} } @$got;
    my @missing = grep { !$got{$_} } @$want;
    ok(!@extra && !@missing, $what) or diag(join("\n", (map { "only upgraded: $_" } @extra),
                                                     (map { "only fresh:    $_" } @missing)));
}

my $references = $references_registered . $references_rows;
my $fresh = database('fresh', undef, $plain . $references);
ok(@$fresh > 150, 'the fresh database has a catalog to compare (' . scalar(@$fresh) . ' lines)');
same('from 0.1.0: the same as a fresh install', database('from_0_1', '0.1.0', undef, $plain . $references), $fresh);
same('from 0.2.0: the same as a fresh install', database('from_0_2', '0.2.0', $plain, $references), $fresh);
same('from 0.3.0: the same as a fresh install', database('from_0_3', '0.3.0', $plain, $references), $fresh);
same('from 0.4.0: the same as a fresh install', database('from_0_4', '0.4.0', $plain . $references_registered, $references_rows), $fresh);

done_testing();
