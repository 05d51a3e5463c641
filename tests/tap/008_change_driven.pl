# Change-driven passes: with a 30 s interval, rows written on a reach b at once, because the
# content trigger notifies idsync_changes at commit and idsyncd (LISTEN) starts a pass of the
# changed tables to each peer; the full check stays at the interval. A notification for a
# table that is not registered starts nothing harmful. Sessions that prepare transactions
# (two-phase commit) turn idsync.notify_changes off, since PostgreSQL refuses to prepare a
# transaction that notified.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IdsyncDaemon;

my %node = map { $_ => new_node($_) } qw(a b);
$node{a}->append_conf('postgresql.conf', 'max_prepared_transactions = 2');
$node{a}->restart;
my $port = next_port();
my $config = write_config('a', $node{a}, [['b', dsn($node{b})]], interval => 30,
    metrics_listen => "127.0.0.1:$port");
my $pid = start_daemon('a', $config);

sub metric {
    my ($line) = @_;
    return metrics_of($port) =~ /^\Q$line\E (\S+)$/m ? $1 : 'missing';
}

ok(wait_until('the daemon listening', sub { metric('idsyncd_local_up') ne 'missing' }), 'daemon up');
load_rows($node{a}, 'k', 50);
ok(wait_until('rows on b', sub { converged($node{a}, $node{b}) }, 10),
    'rows written on a reach b well within the 30 s interval');
$node{a}->safe_psql('postgres', q{UPDATE item SET value = -1 WHERE name = 'k7'; DELETE FROM item WHERE name = 'k8'});
ok(wait_until('an update and a delete on b', sub { converged($node{a}, $node{b}) }, 10),
    'an update and a delete follow');
ok(metric('idsyncd_change_passes_total{peer="b"}') >= 2, 'passes started by changes are counted');
$node{a}->safe_psql('postgres', q{NOTIFY idsync_changes, 'public.no_such_table'});
load_rows($node{a}, 'later', 10);
ok(wait_until('more rows on b', sub { converged($node{a}, $node{b}) }, 10),
    'a notification for an unregistered table harms nothing');
my ($ret, $out, $err) = $node{a}->psql('postgres',
    q{BEGIN; INSERT INTO fact (name, n) VALUES ('2pc', 1); PREPARE TRANSACTION 'notified';},
    extra_params => ['-v', 'VERBOSITY=verbose']);
like($err, qr/ERROR:  0A000:/, 'a transaction that notified cannot be prepared (0A000)');
$node{a}->safe_psql('postgres', q{SET idsync.notify_changes = off; BEGIN;
    INSERT INTO fact (name, n) VALUES ('2pc', 1); PREPARE TRANSACTION 'quiet';});
$node{a}->safe_psql('postgres', q{COMMIT PREPARED 'quiet'});
load_rows($node{a}, 'after2pc', 5);
ok(wait_until('the prepared row on b', sub { converged($node{a}, $node{b}) }, 10),
    'with idsync.notify_changes off it prepares, and its row travels with the next pass');
is(stop_daemon($pid), 0, 'SIGTERM: exit 0');

done_testing();
