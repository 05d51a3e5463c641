# Conflict records of an lww table between two clusters, an idsyncd beside each replicating to
# the other: idsync.record_conflicts('item', keep) on both nodes, then the same keys written on
# both with explicit versions, so that the winner of each key is known. A version is recorded on
# the node where it arrives after the winning one (an incoming version newer than the stored one
# is an update, not recorded); the pushes of each round go in a chosen order (idsyncd --once
# per node) so that every conflict is recorded on the writer of its winner: b's rows that lost
# to a's rows and to a's delete on a, a's rows and a's delete that lost to b's rows on b. Then:
# every key ends with its winner on both nodes; each node's records are exactly the versions that
# lost there (key, lost version as it came, versions, origins, kind); idsyncctl conflicts lists
# them (--json and text); /metrics counts them (idsyncd_conflict_records); only the newest
# `keep` stay; record_conflicts(t, NULL) forgets them and stops recording.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use JSON::PP;
use IdsyncDaemon;

my @names = qw(a b);
my %node = map { $_ => new_node($_) } @names;
my %id = map { $_ => $node{$_}->safe_psql('postgres', 'SELECT idsync.node_id()') } @names;
my (%port, %config, %pid);
for my $name (@names) {
    my ($other) = grep { $_ ne $name } @names;
    $port{$name} = next_port();
    $config{$name} = write_config($name, $node{$name}, [[$other, dsn($node{$other})]],
        backoff_max => 1, metrics_listen => "127.0.0.1:$port{$name}");
}

sub query {
    my ($name, $sql) = @_;
    return $node{$name}->safe_psql('postgres', $sql);
}

sub start_both { $pid{$_} = start_daemon($_, $config{$_}) for @names }

sub stop_both {
    my ($why) = @_;
    is(stop_daemon($pid{$_}), 0, "$why: daemon $_ stops") for @names;
}

# One pass of `name`'s idsyncd: its changes pushed to the other node.
sub push_from {
    my ($name) = @_;
    my ($status) = run_once("${name}_once", $config{$name});
    return $status;
}

sub records {
    my ($name) = @_;
    return query($name, q{SELECT count(*) FROM idsync.conflicts WHERE relid = 'item'::regclass});
}

# The conflict records of item on a node, one line each, by key: what lost to what, the keys and
# values of the lost version as it came, its version and node, the winning version and its node.
sub conflict_lines {
    my ($name) = @_;
    my $text = query($name, q{
        SELECT c.key ->> 'name' || ' | ' || c.kind
            || ' | lost ' || (SELECT string_agg(k || '=' || (c.lost ->> k), ',' ORDER BY k)
                              FROM jsonb_object_keys(c.lost) k)
            || ' | lost_version ' || coalesce(c.lost_version::text, '-')
            || ' | lost_origin ' || coalesce(c.lost_origin::text, '-')
            || ' | won_version ' || c.won_version
            || ' | won_origin ' || coalesce(c.won_origin::text, '-')
            || ' | key ' || c.key::text
        FROM idsync.conflicts c WHERE c.relid = 'item'::regclass
        ORDER BY c.key ->> 'name', c.conflict_id});
    return [split /\n/, $text];
}

sub row_line {
    my ($key, $kind, $lost, $lost_version, $lost_origin, $won_version) = @_;
    my $lost_text = join(',', map { "$_=$lost->{$_}" } sort keys %$lost);
    return "$key | $kind | lost $lost_text | lost_version $lost_version | lost_origin $lost_origin"
        . " | won_version $won_version | won_origin - | key {\"name\": \"$key\"}";
}

# Live rows of item as name=value, and deleted names.
sub item_state {
    my ($name) = @_;
    return query($name, q{
        SELECT coalesce(string_agg(name || '=' || value, ',' ORDER BY name), '') || ' | deleted '
            || (SELECT coalesce(string_agg(t.key ->> 'name', ',' ORDER BY t.key ->> 'name'), '')
                FROM idsync.tombstones t WHERE t.relid = 'item'::regclass)
        FROM item});
}

sub metric {
    my ($name) = @_;
    return metrics_of($port{$name}) =~ /^idsyncd_conflict_records\{table="public\.item"\} (\S+)$/m
        ? $1 : 'missing';
}

sub ctl {
    my ($file, @args) = @_;
    my $out = `idsyncctl -c '$file' @args 2>&1`;
    return ($? >> 8, $out);
}

# --- recording on, the first rows everywhere
query($_, q{SELECT idsync.record_conflicts('item', 1000)}) for @names;
is(query('a', q{SELECT conflicts_kept FROM idsync.tables WHERE relid = 'item'::regclass}), '1000',
   'record_conflicts: item keeps 1000 records');
start_both();
query('a', q{INSERT INTO item (name, value) SELECT 'k' || g, g FROM generate_series(1, 10) g});
ok(wait_until('k1..k10 on both nodes', sub { converged(values %node) }), 'k1..k10 reach b');
ok(wait_until('a pass after the first rows', sub { metric('a') eq '0' && metric('b') eq '0' }),
   'metrics: no conflict records yet');
stop_both('before the conflicts');

# --- round 1: a wins k1..k5 (k1..k4 by a newer row, k5 by a delete newer than b's row). b's
# versions reach a first (they lose there and are recorded), then a's reach b (updates there).
my $base1 = query('a', 'SELECT idsync.hlc_now()');
my %version = (a_row => $base1 - 1000, b_row => $base1 - 2000);
query('a', qq{
    UPDATE item SET value = 100 + substr(name, 2)::int, idsync_version = $version{a_row}
        WHERE name IN ('k1', 'k2', 'k3', 'k4');
    DELETE FROM item WHERE name = 'k5';
});
query('b', qq{UPDATE item SET value = 200 + substr(name, 2)::int, idsync_version = $version{b_row}
    WHERE name IN ('k1', 'k2', 'k3', 'k4', 'k5')});
my $k5_deleted = query('a', q{SELECT version FROM idsync.tombstones
    WHERE relid = 'item'::regclass AND key ->> 'name' = 'k5'});
ok($k5_deleted > $version{b_row}, "a's delete of k5 is newer than b's row");
is(push_from('b'), 0, "round 1: b's versions pushed to a");
is(push_from('a'), 0, "round 1: a's versions pushed to b");

# --- round 2: b wins k6..k10 (k6..k9 by a newer row; k10 by a row ahead of the clock, newer
# than a's delete of it). a's versions reach b first, then b's reach a.
my $base2 = query('a', 'SELECT idsync.hlc_now()');
$version{a_row2} = $base2 - 2000;
$version{b_row2} = $base2 - 1000;
$version{b_ahead} = query('b', q{SELECT idsync.hlc_now() + (60000::bigint << 16)});
query('a', qq{
    UPDATE item SET value = 100 + substr(name, 2)::int, idsync_version = $version{a_row2}
        WHERE name IN ('k6', 'k7', 'k8', 'k9');
    DELETE FROM item WHERE name = 'k10';
});
my $k10_deleted = query('a', q{SELECT version FROM idsync.tombstones
    WHERE relid = 'item'::regclass AND key ->> 'name' = 'k10'});
query('b', qq{
    UPDATE item SET value = 200 + substr(name, 2)::int, idsync_version = $version{b_row2}
        WHERE name IN ('k6', 'k7', 'k8', 'k9');
    UPDATE item SET value = 210, idsync_version = $version{b_ahead} WHERE name = 'k10';
});
ok($version{b_ahead} > $k10_deleted, "b's row of k10 is newer than a's delete");
is(push_from('a'), 0, "round 2: a's versions pushed to b");
is(push_from('b'), 0, "round 2: b's versions pushed to a");

start_both();
ok(wait_until('convergence after the conflicts', sub { converged(values %node) }),
   'a and b converge (same rows, tombstones and content hashes)');

# 1. Every key ends with its winner on both nodes.
my $winners = 'k1=101,k10=210,k2=102,k3=103,k4=104,k6=206,k7=207,k8=208,k9=209 | deleted k5';
is(item_state($_), $winners, "$_: every key holds the version that won") for @names;

# 2. Each node recorded exactly the versions that lost there.
my @expected_a = sort((map {
        row_line("k$_", 'row lost to row', { name => "k$_", value => 200 + $_,
            idsync_version => $version{b_row} }, $version{b_row}, $id{b}, $version{a_row})
    } 1 .. 4),
    row_line('k5', 'row lost to delete', { name => 'k5', value => 205,
        idsync_version => $version{b_row} }, $version{b_row}, $id{b}, $k5_deleted));
is_deeply([sort @{ conflict_lines('a') }], \@expected_a,
    "a: b's rows that lost to a's rows (k1..k4) and to a's delete (k5), nothing else");
my @expected_b = sort((map {
        row_line("k$_", 'row lost to row', { name => "k$_", value => 100 + $_,
            idsync_version => $version{a_row2} }, $version{a_row2}, $id{a}, $version{b_row2})
    } 6 .. 9),
    row_line('k10', 'delete lost to row', { name => 'k10', idsync_version => $k10_deleted,
        idsync_deleted => 'true' }, $k10_deleted, $id{a}, $version{b_ahead}));
is_deeply([sort @{ conflict_lines('b') }], \@expected_b,
    "b: a's rows that lost to b's rows (k6..k9) and a's delete that lost to b's row (k10)");

# 3. idsyncctl conflicts lists a's records, newest first. (idsyncctl pins its search_path to
# pg_catalog: tables are named with their schema, as for rejects.)
my ($code, $out) = ctl($config{a}, 'conflicts', '--json');
is($code, 0, 'idsyncctl conflicts --json: exit 0') or diag($out);
my $listed = eval { decode_json($out) } // [];
is(scalar @$listed, 5, 'idsyncctl conflicts --json: the five records of a');
is_deeply([sort map { $_->{key}{name} } @$listed], [sort map { "k$_" } 1 .. 5],
    'idsyncctl conflicts --json: keys k1..k5');
is_deeply([map { $_->{conflict_id} } @$listed],
    [sort { $b <=> $a } map { $_->{conflict_id} } @$listed], 'idsyncctl conflicts --json: newest first');
my ($k1) = grep { $_->{key}{name} eq 'k1' } @$listed;
is_deeply({ map { $_ => $k1->{$_} } qw(table kind lost_origin won_origin) },
    { table => 'public.item', kind => 'row lost to row', lost_origin => $id{b}, won_origin => undef },
    'idsyncctl conflicts --json: table, kind and origins of k1');
is_deeply([$k1->{lost}{value}, "$k1->{lost_version}", "$k1->{won_version}"],
    [201, "$version{b_row}", "$version{a_row}"], 'idsyncctl conflicts --json: the versions of k1');
my ($k5) = grep { $_->{key}{name} eq 'k5' } @$listed;
is($k5->{kind}, 'row lost to delete', 'idsyncctl conflicts --json: k5 lost to a delete');
($code, $out) = ctl($config{a}, 'conflicts', 'public.item');
is($code, 0, 'idsyncctl conflicts public.item (text): exit 0') or diag($out);
note($out);
like($out, qr/^5 conflict records$/m, 'idsyncctl conflicts public.item (text): 5 records');
($code, $out) = ctl($config{a}, 'conflicts', 'public.fact', '--json');
is_deeply([$code, eval { decode_json($out) }], [0, []], 'idsyncctl conflicts public.fact: none');

# 4. /metrics counts the records kept on each node.
ok(wait_until('the metrics to count the records', sub { metric('a') eq '5' && metric('b') eq '5' }),
   'metrics: idsyncd_conflict_records{table="public.item"} 5 on a and on b');
is(metric('a'), '5', 'metrics of a: 5 records');

# 5. Retention: only the newest 3 stay on a once a merge records more.
query('a', q{SELECT idsync.record_conflicts('item', 3)});
my $newest_before = query('a', q{SELECT max(conflict_id) FROM idsync.conflicts});
stop_both('before the retention round');
$version{a_ahead} = query('a', q{SELECT idsync.hlc_now() + (120000::bigint << 16)});
query('a', qq{UPDATE item SET value = 300 + substr(name, 2)::int, idsync_version = $version{a_ahead}
    WHERE name IN ('k1', 'k2')});
query('b', q{UPDATE item SET value = 400 + substr(name, 2)::int WHERE name IN ('k1', 'k2')});
is(push_from('b'), 0, "retention round: b's rows pushed to a");
is(push_from('a'), 0, "retention round: a's rows pushed to b");
is(query('a', q{
    SELECT string_agg(key ->> 'name' || '=' || (lost ->> 'value'), ',' ORDER BY key ->> 'name')
    FROM idsync.conflicts WHERE relid = 'item'::regclass AND conflict_id > } . $newest_before),
    'k1=401,k2=402', "a recorded b's two rows that lost");
is(query('a', q{SELECT count(*) || ' ' || count(*) FILTER (WHERE conflict_id >= } . $newest_before
    . q{) FROM idsync.conflicts WHERE relid = 'item'::regclass}), '3 3',
    'a keeps exactly 3 records: the two new ones and the newest before them');

# 6. record_conflicts(t, NULL) forgets b's records and stops recording there.
query('b', q{SELECT idsync.record_conflicts('item', NULL)});
is(records('b'), '0', "record_conflicts('item', NULL): b's records are gone");
is(query('b', q{SELECT conflicts_kept IS NULL FROM idsync.tables WHERE relid = 'item'::regclass}),
   't', 'b no longer records conflicts for item');
# A version of a that loses on b now leaves nothing there.
$version{b_ahead2} = query('b', q{SELECT idsync.hlc_now() + (120000::bigint << 16)});
query('a', q{UPDATE item SET value = 503 WHERE name = 'k3'});
query('b', qq{UPDATE item SET value = 603, idsync_version = $version{b_ahead2} WHERE name = 'k3'});
is(push_from('a'), 0, "stop round: a's row pushed to b");
is(push_from('b'), 0, "stop round: b's row pushed to a");
is(query('b', q{SELECT value FROM item WHERE name = 'k3'}), '603', "b's row of k3 won on b");
is(records('b'), '0', "a's losing row of k3 is not recorded on b");

start_both();
ok(wait_until('convergence after the last rounds', sub { converged(values %node) }),
   'a and b converge after the last rounds');
is(item_state('a'), 'k1=301,k10=210,k2=302,k3=603,k4=104,k6=206,k7=207,k8=208,k9=209 | deleted k5',
   'a: the winners of the last rounds');
is(records('a'), '3', 'a still keeps 3 records');
ok(wait_until('the metrics to count 3 and 0', sub { metric('a') eq '3' && metric('b') eq '0' }),
   'metrics: 3 records on a, 0 on b');

# 7. SIGTERM.
stop_both('at the end');
done_testing();
