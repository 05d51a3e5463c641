# Two clusters whose idsyncd run as the roles README "Security model" describes: the daemon's
# local role (grant_daemon) and, on each peer, a role bound to the node it speaks for
# (grant_peer), neither a superuser. They replicate both ways; the peer role cannot write
# idsync's tables, merge in another node's name, switch protections off with a setting, plant
# a version beyond the clock or draw points; a sync point raised beyond what a node issued is
# detected by that node's daemon and corrected; a config file holding a password that others
# can read is refused.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IdsyncDaemon;

my %node = map { $_ => new_node($_) } qw(a b);
my %id = map { $_ => $node{$_}->safe_psql('postgres', 'SELECT idsync.node_id()') } qw(a b);
my $fake = '00000000-0000-0000-0000-00000000000c';

# The README's setup, on each node: the daemon's local role and the role of the other node.
for my $here (qw(a b)) {
    my $there = $here eq 'a' ? 'b' : 'a';
    $node{$here}->safe_psql('postgres', qq{
        CREATE ROLE idsync_local LOGIN;
        SELECT idsync.grant_daemon('idsync_local');
        GRANT SELECT ON item, fact TO idsync_local;
        CREATE ROLE peer_$there LOGIN;
        SELECT idsync.grant_peer('peer_$there', '$id{$there}');
        GRANT SELECT, INSERT, UPDATE, DELETE ON item, fact TO peer_$there;
        GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO peer_$there;
    });
}
is($node{a}->safe_psql('postgres', q{SELECT rolsuper::text FROM pg_roles WHERE rolname = 'idsync_local'}),
    'false', 'the daemon role is no superuser');

my %config;
my $metrics_port = next_port();
for my $here (qw(a b)) {
    my $there = $here eq 'a' ? 'b' : 'a';
    # write_config uses dsn($node); the roles go in by hand.
    my $path = write_config($here, $node{$here}, [[$there, dsn($node{$there}) . " user=peer_$here"]],
        $here eq 'a' ? (metrics_listen => "127.0.0.1:$metrics_port") : ());
    my $text = slurp_file($path);
    $text =~ s/^(local = .*)$/$1 user=idsync_local/m;
    open my $fh, '>', $path or die;
    print $fh $text;
    close $fh;
    $config{$here} = $path;
}

# --- both ways, as the roles of the README
load_rows($node{a}, 'a', 300);
load_rows($node{b}, 'b', 200);
$node{b}->safe_psql('postgres', q{UPDATE item SET value = -1 WHERE name = 'b7'; DELETE FROM item WHERE name = 'b8'});
my ($status_a) = run_once('a', $config{a});
my ($status_b) = run_once('b', $config{b});
is($status_a, 0, 'a pushes to b as peer_a');
is($status_b, 0, 'b pushes to a as peer_b');
ok(converged($node{a}, $node{b}), 'both nodes hold the same rows and hashes');
my $before = snapshot($node{b});

# --- what the peer role of a cannot do on b (psql -U peer_a: the role idsyncd of a logs in as)
sub as_peer {
    my ($sql) = @_;
    my ($ret, $out, $err) = $node{b}->psql('postgres', $sql,
        extra_params => ['-U', 'peer_a', '-v', 'VERBOSITY=verbose']);
    return ($err =~ /ERROR:  ([0-9A-Z]{5}):/) ? $1 : "ok: $out";
}
is(as_peer(q{INSERT INTO idsync.tables (relid, key_columns, mode, point_column, local_columns)
              VALUES ('pg_authid', '{rolname}', 'insert_only', 'oid', '{}')}), '42501',
    '3: no direct write of idsync.tables');
is(as_peer(q{UPDATE idsync.incoming_sync SET sync_point = 9223372036854775807}), '42501',
    '3: no direct write of sync points');
is(as_peer(q{INSERT INTO idsync.table_deltas VALUES ('fact'::regclass, 1, 2, 3)}), '42501',
    '3: no forged content hash');
is(as_peer(q{SELECT idsync.replicate('pg_authid', '{rolname}')}), '42501', '3: no registration');
is(as_peer(qq{SELECT * FROM idsync.merge_items('fact', '[{"point": 1, "item": {"name": "z", "n": 1}}]', '$fake')}),
    '42501', "3: no merge in another node's name");
is(as_peer(q{SET idsync.applying = on; UPDATE fact SET n = n + 1000}), '55000',
    '6: no setting makes an insert_only table updatable');
is(as_peer(q{TRUNCATE fact}), '42501', '6: no TRUNCATE');
is(as_peer(q{SELECT idsync.next_point()}), '42501', '8: no change point without a write');
like(as_peer(qq{SELECT received, rejected FROM idsync.merge_items('item',
        '[{"point": 1, "item": {"name": "forever", "value": 1, "idsync_version": 9223372036854775807, "idsync_deleted": false}}]',
        '$id{a}')}), qr/^ok: 1\|1$/, '7: a version beyond the clock is parked, not merged');
is($node{b}->safe_psql('postgres', q{SELECT sqlstate FROM idsync.rejects WHERE item ->> 'name' = 'forever'}),
    '22003', '7: ... with SQLSTATE 22003');
$node{b}->safe_psql('postgres', q{DELETE FROM idsync.rejects});
is(snapshot($node{b}), $before, 'the refused attempts changed nothing');

# --- a sync point beyond anything a issued: detected by a's daemon and corrected
$node{b}->safe_psql('postgres', qq{
    CREATE ROLE peer_c LOGIN;
    SELECT idsync.grant_peer('peer_c', '$fake');
    GRANT SELECT, INSERT ON fact TO peer_c;
});
my ($ret, $out, $err) = $node{b}->psql('postgres',
    qq{SELECT idsync.merge_syncs('fact', '[{"remote_id": "$id{a}", "sync_point": 9223372036854775807}]')},
    extra_params => ['-U', 'peer_c']);
is($out, '1', "a third node's peer passes on a point for a (transitive sync may)");
load_rows($node{a}, 'after', 50);
my $pid = start_daemon('a', $config{a});
ok(wait_until('the new rows of a on b', sub {
    $node{b}->safe_psql('postgres', q{SELECT count(*) FROM fact WHERE name LIKE 'after%'}) == 50 }),
    'the rows a wrote after the forged point reach b');
my $last = $node{a}->safe_psql('postgres', 'SELECT last_value FROM idsync.points');
ok($node{b}->safe_psql('postgres', qq{SELECT idsync.get_sync('fact', '$id{a}')}) <= $last,
    "b's point for a is back within what a issued");
like(metrics_of($metrics_port), qr/^idsyncd_sync_points_corrected_total\{peer="b",table="public\.fact"\} 1$/m,
    'the correction is counted in /metrics');
is(stop_daemon($pid), 0, 'SIGTERM: exit 0');

# --- a config file that holds a password and that others can read is refused
my $secret = write_config('secret', $node{a}, [['b', dsn($node{b}) . ' password=s3cret']]);
chmod 0644, $secret;
system("idsyncd --check-config '$secret' >/dev/null 2>&1");
is($? >> 8, 2, 'a password in a file others can read: exit 2');
chmod 0600, $secret;
system("idsyncd --check-config '$secret' >/dev/null 2>&1");
is($? >> 8, 0, '... and accepted at mode 600');

done_testing();
