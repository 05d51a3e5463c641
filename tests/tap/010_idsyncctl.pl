# idsyncctl, the operator's command line: status (in sync, lag in rows and seconds, parked rows,
# unreachable nodes, with exit statuses a monitoring check can use) and rejects, run with the
# roles idsyncd's configuration names (the daemon's local role, a peer role on the peer), and
# with an operator planted in the local role's search_path that never runs.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use JSON::PP;
use IdsyncDaemon;

my %node = map { $_ => new_node($_) } qw(a b);
my $id_a = $node{a}->safe_psql('postgres', 'SELECT idsync.node_id()');
$node{a}->safe_psql('postgres', q{
    CREATE ROLE ctl_daemon LOGIN;
    SELECT idsync.grant_daemon('ctl_daemon');
    GRANT SELECT ON item, fact TO ctl_daemon;
    -- Planted: a comparison the lag queries would call if they used the role's path.
    CREATE TABLE public.planted_log (what text);
    GRANT INSERT ON public.planted_log TO PUBLIC;
    CREATE FUNCTION public.evil(bigint, bigint) RETURNS boolean LANGUAGE plpgsql AS $$
    BEGIN INSERT INTO public.planted_log VALUES (current_query()); RETURN true; END $$;
    CREATE OPERATOR public.> (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = public.evil);
    ALTER ROLE ctl_daemon SET search_path = public, pg_catalog;
});
$node{b}->safe_psql('postgres', qq{
    CREATE ROLE ctl_peer LOGIN;
    SELECT idsync.grant_peer('ctl_peer', '$id_a');
    GRANT SELECT, INSERT, UPDATE, DELETE ON item, fact TO ctl_peer;
    GRANT USAGE ON SEQUENCE item_id_seq, fact_id_seq TO ctl_peer;
});
sub as_role { my ($node, $role) = @_; return dsn($node) . " user=$role" }

my $config = write_config('a', $node{a}, [['b', as_role($node{b}, 'ctl_peer')]]);
# The same file with the local role: idsyncd itself runs as the superuser here.
(my $ctl_config = $config) =~ s/a\.ini$/a_ctl.ini/;
my $text = slurp_file($config);
$text =~ s/^local = (.*)$/local = $1 user=ctl_daemon/m;
open my $fh, '>', $ctl_config or die;
print $fh $text;
close $fh;
chmod 0600, $ctl_config;

sub ctl {
    my ($file, @args) = @_;
    my $out = `idsyncctl -c '$file' @args 2>&1`;
    return ($? >> 8, $out);
}
sub status_json {
    my ($file) = @_;
    my ($code, $out) = ctl($file, 'status', '--json');
    my $json = eval { decode_json($out) } // {};
    return ($code, $json, $out);
}
sub peer_table {
    my ($json, $peer, $table) = @_;
    my ($p) = grep { $_->{name} eq $peer } @{ $json->{peers} // [] };
    return {} unless $p;
    my ($t) = grep { $_->{table} eq $table } @{ $p->{tables} };
    return $t // {};
}

# In sync after a pass.
load_rows($node{a}, 'x', 200);
my ($status) = run_once('a', $config);
is($status, 0, 'a pushes its rows to b');
my ($code, $json, $out) = status_json($ctl_config);
is($code, 0, 'status: exit 0 when every table is in sync') or diag($out);
ok($json->{in_sync}, 'status --json: in_sync');
is(peer_table($json, 'b', 'public.fact')->{lag_rows}, 0, 'fact: no lag');
is(peer_table($json, 'b', 'public.item')->{rows}, 200, 'item: 200 rows on b');
($code, $out) = ctl($ctl_config, 'status');
is($code, 0, 'status (text): exit 0');
note($out);
like($out, qr/^b\s+public\.fact\s+in sync\s+200\s+0 /m, 'status (text): one line per peer and table');

# Behind: rows b has not merged, counted with their age where it is known.
$node{a}->safe_psql('postgres', q{
    INSERT INTO fact (name, n) SELECT 'late', g FROM generate_series(1, 5) g;
    INSERT INTO item (name, value) SELECT 'late' || g, g FROM generate_series(1, 4) g;
    DELETE FROM item WHERE name = 'late4';
});
($code, $json, $out) = status_json($ctl_config);
is($code, 1, 'status: exit 1 when a table differs') or diag($out);
ok(!$json->{in_sync}, 'status --json: not in sync');
my $fact = peer_table($json, 'b', 'public.fact');
ok(!$fact->{in_sync}, 'fact differs');
is($fact->{lag_rows}, 5, 'fact: 5 rows b has not merged');
ok(!defined $fact->{lag_seconds}, 'fact (insert_only, no commit timestamps): lag age unknown');
my $item = peer_table($json, 'b', 'public.item');
is($item->{lag_rows}, 4, 'item: 3 rows and a delete (its tombstone) b has not merged');
ok(defined $item->{lag_seconds} && $item->{lag_seconds} >= 0 && $item->{lag_seconds} < 600,
   'item (lww): the age of the oldest, from its version');
($status) = run_once('a', $config);
($code, $json) = status_json($ctl_config);
is($code, 0, 'status: exit 0 again after the next pass');

# Parked rows: on b, seen from a's status; on a, listed by rejects.
$node{b}->safe_psql('postgres', qq{
    SELECT * FROM idsync.merge_items('fact', '[{"point": 1, "item": {"name": "bad", "n": 1, "nosuch": 1}}]', '$id_a');
});
$node{a}->safe_psql('postgres', q{
    SELECT * FROM idsync.merge_items('item',
        '[{"point": 1, "item": {"name": "bad", "value": "not a number", "idsync_version": 1, "idsync_deleted": false}}]',
        '00000000-0000-0000-0000-0000000000bb');
});
($code, $json) = status_json($ctl_config);
is(peer_table($json, 'b', 'public.fact')->{parked}{rejected}, 1, 'status: the row parked on b');
($code, $out) = ctl($ctl_config, 'rejects', '--json');
is($code, 0, 'rejects: exit 0');
my $rejects = eval { decode_json($out) } // [];
is(scalar @$rejects, 1, 'rejects: the one row parked on a');
is($rejects->[0]{sqlstate}, '22P02', 'rejects: its SQLSTATE');
is($rejects->[0]{source}, '00000000-0000-0000-0000-0000000000bb', 'rejects: the node it came from');
is($rejects->[0]{item}{name}, 'bad', 'rejects: the row itself');
($code, $out) = ctl($ctl_config, 'rejects', 'public.fact', '--json');
is_deeply(decode_json($out), [], 'rejects TABLE: that table only');
($code, $out) = ctl($ctl_config, 'rejects', 'public.nosuch');
is($code, 1, 'rejects of a table that does not exist: exit 1');
# Retry and discard need an administrator: the daemon's role is refused, --dsn connects as one.
($code, $out) = ctl($ctl_config, 'rejects', 'retry');
is($code, 1, "rejects retry as the daemon's role: refused (exit 1)");
my $admin = "--dsn '" . dsn($node{a}) . "'";
($code, $out) = ctl($ctl_config, $admin, 'rejects', 'retry');
is($code, 0, 'rejects retry as an administrator: exit 0') or diag($out);
like($out, qr/^public\.item: 1 retried, 0 merged, 1 still parked$/m, 'rejects retry: the row is refused again');
my $id = $node{a}->safe_psql('postgres', 'SELECT reject_id FROM idsync.rejects');
($code, $out) = ctl($ctl_config, $admin, 'rejects', 'discard', 'public.item', $id);
is($code, 0, 'rejects discard: exit 0') or diag($out);
is($node{a}->safe_psql('postgres', q{SELECT count(*) || ' ' || (SELECT count(*) FROM idsync.discarded_rejects
    WHERE item ->> 'name' = 'bad') FROM idsync.rejects}), '0 1', 'rejects discard: dropped, and recorded');
($code) = ctl($ctl_config, $admin, 'rejects', 'discard');
is($code, 2, 'rejects discard without a table: exit 2');
($code) = ctl($ctl_config, $admin, 'rejects', 'discard', 'public.item', 'x');
is($code, 2, 'rejects discard with an id that is not a number: exit 2');

# The same questions in idsyncd's metrics: when the latest pass succeeded, the lag in seconds,
# the age of the oldest row parked on the peer.
my $port = next_port();
my $metrics_config = write_config('a_metrics', $node{a}, [['b', as_role($node{b}, 'ctl_peer')]],
    metrics_listen => "127.0.0.1:$port");
my $pid = start_daemon('a_metrics', $metrics_config);
sub metric {
    my ($name) = @_;
    return metrics_of($port) =~ /^\Q$name\E\{peer="b",table="public.fact"\} (\S+)$/m ? $1 : undef;
}
ok(wait_until('a pass with metrics', sub { defined metric('idsyncd_last_success_timestamp_seconds') }),
   'metrics: the time of the latest successful pass');
ok(abs(metric('idsyncd_last_success_timestamp_seconds') - time()) < 120, 'metrics: it is recent');
is(metric('idsyncd_lag_seconds'), '0', 'metrics: no lag');
ok(metric('idsyncd_oldest_reject_seconds') > 0, 'metrics: the age of the row parked on b');
is(metric('idsyncd_oldest_waiting_seconds'), '0', 'metrics: nothing waiting on b');
# idsyncctl shows the latest pass it reads from those metrics.
my ($json_code, $with_daemon) = status_json($metrics_config);
my $last = peer_table($with_daemon, 'b', 'public.fact')->{last_pass} // {};
ok($with_daemon->{daemon_answered}, "status: idsyncd's metrics listener answered");
is($last->{outcome}, 'success', 'status: the outcome of the latest pass');
like($last->{mode} // '', qr/^(no_change|hashmatch|diff|bulk)$/, 'status: its mode');
ok(defined $last->{seconds_ago} && $last->{seconds_ago} < 60, 'status: how long ago');
is(stop_daemon($pid), 0, 'idsyncd stops');

# A table registered here that the peer lacks: that table's line says why; the others are read.
$node{a}->safe_psql('postgres', q{
    CREATE TABLE only_here (id bigserial PRIMARY KEY, name text NOT NULL UNIQUE);
    SELECT idsync.replicate('only_here', '{name}');
    GRANT SELECT ON only_here TO ctl_daemon;
});
($code, $json, $out) = status_json($ctl_config);
is($code, 1, 'status: exit 1 when the peer lacks a table');
like(peer_table($json, 'b', 'public.only_here')->{error} // '', qr/only_here/, 'status --json: the error of that table');
ok(peer_table($json, 'b', 'public.fact')->{in_sync}, 'status --json: the other tables are still read');
$node{a}->safe_psql('postgres', q{SELECT idsync.unreplicate('only_here'); DROP TABLE only_here});

# Unreachable nodes.
my $closed = next_port();
my $down = write_config('a_down', $node{a}, [['b', as_role($node{b}, 'ctl_peer')],
    ['gone', "host=127.0.0.1 port=$closed dbname=postgres"]]);
($code, $json, $out) = status_json($down);
is($code, 1, 'status: exit 1 when a peer is unreachable') or diag($out);
note(scalar ctl($down, 'status'));
my ($gone) = grep { $_->{name} eq 'gone' } @{ $json->{peers} };
ok($gone && !$gone->{reachable}, 'status --json: the peer is unreachable');
my $no_local = write_config('nolocal', $node{a}, []);
$text = slurp_file($no_local);
$text =~ s/^local = .*$/local = host=127.0.0.1 port=$closed dbname=postgres/m;
open $fh, '>', $no_local or die;
print $fh $text;
close $fh;
($code, $json) = status_json($no_local);
is($code, 1, 'status: exit 1 when the local database is unreachable');
ok(!$json->{local}{reachable}, 'status --json: local unreachable');

# Usage and configuration errors.
($code) = ctl($ctl_config);
is($code, 2, 'no command: exit 2');
($code) = ctl($ctl_config, 'frobnicate');
is($code, 2, 'unknown command: exit 2');
($code) = ctl('/nonexistent.ini', 'status');
is($code, 2, 'missing configuration file: exit 2');

is($node{a}->safe_psql('postgres', 'SELECT count(*) FROM public.planted_log'), '0',
   'the planted operator never ran');
done_testing();
