# Normalized data between clusters: derivations, derivation_outputs, packages and
# package_derivations, loaded independently on each node (overlapping and disjoint rows, in
# different orders, so every node numbers them differently) and replicated by real idsyncd
# processes. After replication the natural-key view of every table (ids replaced by the natural
# keys they point at) and every content hash is the same on every node. Also: children that
# arrive before their parents (a capped diff of the parent table), a parent key with a NULL
# (NULLS NOT DISTINCT), a delete of a parent that rows reference (refused, as the foreign key
# says) and of one that no row references (its tombstone travels).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(sleep time);
use IdsyncDaemon;

my $schema = q{
    CREATE TABLE derivations (id bigserial PRIMARY KEY, file_name text NOT NULL UNIQUE);
    CREATE TABLE derivation_outputs (id bigserial PRIMARY KEY,
        derivation_id bigint NOT NULL REFERENCES derivations, name text NOT NULL,
        path text NOT NULL, UNIQUE (derivation_id, name));
    CREATE TABLE packages (id bigserial PRIMARY KEY, name text NOT NULL, version text,
        UNIQUE NULLS NOT DISTINCT (name, version));
    CREATE TABLE package_derivations (package_id bigint NOT NULL REFERENCES packages,
        derivation_id bigint NOT NULL REFERENCES derivations, system text NOT NULL,
        UNIQUE (package_id, derivation_id, system));
    SELECT idsync.replicate('derivations', '{file_name}');
    SELECT idsync.replicate('derivation_outputs', '{derivation_id,name}');
    SELECT idsync.replicate('packages', '{name,version}', 'lww');
    SELECT idsync.replicate('package_derivations', '{package_id,derivation_id,system}');
};

# Loads derivations d<lo>..d<hi> (in a random order), two outputs each, a package per
# derivation (every third one without a version) and its package_derivations, the way a loader
# does: insert_missing for the rows with a natural key, the returned ids for the references.
sub load {
    my ($node, $lo, $hi, $system) = @_;
    $node->safe_psql('postgres', qq{
        CREATE TEMP TABLE d AS
        SELECT m.id, m.file_name FROM (SELECT array_agg(format('d%s.drv', g) ORDER BY random()) AS names
                                       FROM generate_series($lo, $hi) g) x,
             LATERAL (SELECT i.id, x.names[i.ord] AS file_name
                      FROM idsync.insert_missing('derivations', '{file_name}', x.names) i) m;
        WITH o AS (SELECT d.id, n, '/store/' || d.file_name || '-' || n AS path
                   FROM d, unnest('{out,dev}'::text[]) n ORDER BY random())
        SELECT count(*) FROM (SELECT array_agg(id) AS ids, array_agg(n) AS ns, array_agg(path) AS paths FROM o) x,
             idsync.insert_missing('derivation_outputs', '{derivation_id,name,path}', x.ids, x.ns, x.paths);
        CREATE TEMP TABLE p AS
        SELECT m.id, m.n FROM (SELECT array_agg(g ORDER BY random()) AS ns FROM generate_series($lo, $hi) g) x,
             LATERAL (SELECT i.id, x.ns[i.ord] AS n FROM idsync.insert_missing('packages', '{name,version}',
                 ARRAY(SELECT 'pkg' || (n % 500) FROM unnest(x.ns) n),
                 ARRAY(SELECT CASE WHEN n % 3 = 0 THEN NULL ELSE '1.' || n END FROM unnest(x.ns) n)) i) m;
        INSERT INTO package_derivations
        SELECT p.id, d.id, '$system' FROM p JOIN d ON d.file_name = format('d%s.drv', p.n)
        ON CONFLICT DO NOTHING;
    });
}

# The natural-key view of every table, its content hash, and the rows still waiting.
sub natural_view {
    my ($node) = @_;
    return $node->safe_psql('postgres', q{
        SELECT concat_ws(E'\n',
          (SELECT 'derivations ' || count(*) || ' ' || md5(string_agg(file_name, ',' ORDER BY file_name)) FROM derivations),
          (SELECT 'derivation_outputs ' || count(*) || ' ' || md5(string_agg(d.file_name || ' ' || o.name || ' ' || o.path, ',' ORDER BY d.file_name, o.name))
           FROM derivation_outputs o JOIN derivations d ON d.id = o.derivation_id),
          (SELECT 'packages ' || count(*) || ' ' || md5(string_agg(name || ' ' || coalesce(version, '-'), ',' ORDER BY name, version))
           FROM packages),
          (SELECT 'deleted packages ' || coalesce(string_agg(t.key::text, ',' ORDER BY t.key::text), '')
           FROM idsync.tombstones t WHERE t.relid = 'packages'::regclass),
          (SELECT 'package_derivations ' || count(*) || ' ' || md5(string_agg(p.name || ' ' || coalesce(p.version, '-') || ' ' || d.file_name || ' ' || x.system, ','
                   ORDER BY p.name, p.version, d.file_name, x.system))
           FROM package_derivations x JOIN packages p ON p.id = x.package_id JOIN derivations d ON d.id = x.derivation_id),
          (SELECT 'hashes ' || string_agg(s.content_hash, ' ' ORDER BY t.name)
           FROM unnest('{derivations,derivation_outputs,packages,package_derivations}'::regclass[]) t(name),
                idsync.sync_info(t.name) s),
          (SELECT 'waiting ' || count(*) FROM idsync.rejects))
    });
}

sub same_everywhere {
    my (@nodes) = @_;
    my $first = natural_view($nodes[0]);
    return !grep { natural_view($_) ne $first } @nodes[1 .. $#nodes];
}

sub count_of {
    my ($node, $sql) = @_;
    return $node->safe_psql('postgres', $sql);
}

my %node = map { $_ => new_node($_) } qw(a b c);
$node{$_}->safe_psql('postgres', $schema) for qw(a b c);
# Different id ranges as well as different orders.
$node{b}->safe_psql('postgres', 'ALTER SEQUENCE derivations_id_seq RESTART 100000; '
    . 'ALTER SEQUENCE packages_id_seq RESTART 100000');

# --- two nodes, --once passes: bulk into an empty peer, then diffs both ways
load($node{a}, 1, 3000, 'x86_64-linux');
load($node{b}, 2001, 4000, 'aarch64-linux');
my $config_ab = write_config('ab', $node{a}, [['b', dsn($node{b})]], per_diff => 500);
my $config_ba = write_config('ba', $node{b}, [['a', dsn($node{a})]], per_diff => 500);
my ($status, $log) = run_once('ab', $config_ab);
is($status, 0, 'a -> b: pass complete');
like($log, qr/bulk 4,/, 'a -> b: every table in bulk mode (b is far behind)');
($status, $log) = run_once('ba', $config_ba);
is($status, 0, 'b -> a: pass complete');
($status, $log) = run_once('ab', $config_ab);
is($status, 0, 'a -> b: second pass complete');
ok(same_everywhere($node{a}, $node{b}), 'two nodes: natural-key views and content hashes identical');
my $view = natural_view($node{a});
like($view, qr/^derivations 4000 /m, 'every derivation of both loads, once');
like($view, qr/^derivation_outputs 8000 /m, 'two outputs per derivation, none lost, none doubled');
like($view, qr/^package_derivations 5000 /m,
    'package_derivations: 3000 + 2000 from the two loads (different systems)');
like($view, qr/^waiting 0$/m, 'no row left waiting');
isnt(count_of($node{a}, "SELECT id FROM derivations WHERE file_name = 'd2500.drv'"),
    count_of($node{b}, "SELECT id FROM derivations WHERE file_name = 'd2500.drv'"),
    'the same derivation has different ids on a and b');
is(count_of($node{b}, q{SELECT count(*) = count(DISTINCT name) FROM packages WHERE version IS NULL}), 't',
    'packages without a version (NULLS NOT DISTINCT key): one row per name on b');

# --- children before parents: the parent table is capped, its children are not held back
# (first b takes what a merged from b back, so that the late rows are all a has to send)
($status, $log) = run_once('ab', $config_ab);
is($status, 0, 'a -> b: third pass complete');
$node{a}->safe_psql('postgres', q{
    INSERT INTO derivations (file_name) SELECT format('late%s.drv', g) FROM generate_series(1, 50) g;
    INSERT INTO derivation_outputs (derivation_id, name, path)
    SELECT id, 'out', '/store/' || file_name FROM derivations WHERE file_name LIKE 'late%' ORDER BY id DESC;
});
my $capped = write_config('ab_capped', $node{a}, [['b', dsn($node{b})]], per_diff => 10, max_diffs => 2);
($status, $log) = run_once('ab_capped', $capped);
is($status, 1, 'capped pass: not complete (exit 1)');
my $waiting = count_of($node{b}, q{SELECT count(*) FROM idsync.rejects WHERE sqlstate = '23503'});
cmp_ok($waiting, '>', 0, "children whose parents were not sent yet wait on b ($waiting rows)");
for (1 .. 5) {
    ($status, $log) = run_once('ab_capped', $capped);
    last if $status == 0;
}
is($status, 0, 'later passes complete');
is(count_of($node{b}, q{SELECT count(*) FROM idsync.rejects}), '0', 'every waiting child merged when its parent came');
is(count_of($node{b}, q{SELECT count(*) FROM derivation_outputs o JOIN derivations d ON d.id = o.derivation_id
                        WHERE d.file_name LIKE 'late%'}), '50', 'all 50 late outputs on b, each with its parent');

# --- three nodes, a daemon each, concurrent loads while they run
my @names = qw(a b c);
my %config;
for my $name (@names) {
    my @peers = map { [$_, dsn($node{$_})] } grep { $_ ne $name } @names;
    $config{$name} = write_config("$name-3", $node{$name}, \@peers, per_diff => 500, backoff_max => 1);
}
my %pid = map { $_ => start_daemon("$_-3", $config{$_}) } @names;
load($node{c}, 3501, 6000, 'riscv64-linux');
load($node{a}, 5001, 7000, 'x86_64-linux');
load($node{b}, 100, 600, 'i686-linux');
# A parent that rows reference cannot be deleted (the foreign key refuses); one that no row
# references can, and its tombstone travels.
my ($refused) = $node{a}->psql('postgres',
    q{DELETE FROM packages WHERE name = 'pkg7' AND version IS NULL});
isnt($refused, 0, 'a: deleting a package that rows reference is refused');
$node{a}->safe_psql('postgres', q{INSERT INTO packages (name, version) VALUES ('lonely', '1');
                                  DELETE FROM packages WHERE name = 'lonely'});
ok(wait_until('three nodes converge', sub { same_everywhere(values %node) }, 180),
    'three nodes: natural-key views and content hashes identical');
$view = natural_view($node{c});
like($view, qr/^derivations 7050 /m, 'c: 7,050 derivations');
like($view, qr/^waiting 0$/m, 'c: no row left waiting');
like($view, qr/^deleted packages \{"name": "lonely", "version": "1"\}$/m,
     'c: the deleted package is a tombstone');
cmp_ok(count_of($node{c}, q{SELECT count(*) FROM packages p JOIN package_derivations x ON x.package_id = p.id
                        WHERE p.name = 'pkg7' AND p.version IS NULL}), '>', 0,
   'c: the package whose delete was refused still has its package_derivations');
for my $name (@names) {
    is(stop_daemon($pid{$name}), 0, "idsyncd $name: SIGTERM, exit 0");
    unlike(slurp_file(log_of("$name-3")), qr/ERROR/, "idsyncd $name: no error logged");
}

done_testing();
