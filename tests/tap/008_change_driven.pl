# Change-driven passes: with a 30 s interval, rows written on a reach b at once, because a
# transaction that changed a registered table notifies idsync_changes at commit and idsyncd
# (LISTEN) starts a pass of the changed tables to each peer; the full check stays at the
# interval. A session notifies a table at most once per 50 ms (a NOTIFY serializes commits
# cluster-wide); the transactions that skip theirs still reach b at once, because idsyncd keeps
# passing a notified table until they are covered. A notification for a table that is not
# registered starts nothing harmful. Prepared transactions (two-phase commit) notify nothing.
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
$node{a}->safe_psql('postgres', q{NOTIFY idsync_changes, 'public.no_such_table'; NOTIFY idsync_changes});
load_rows($node{a}, 'later', 10);
ok(wait_until('more rows on b', sub { converged($node{a}, $node{b}) }, 10),
    'a notification for an unregistered table harms nothing');

# Bursts of one-row transactions from four sessions at once: most skip their notification.
my $notified = metric('idsyncd_notifications_total');
my @sessions = map {
    my $session = $_;
    my $sql = join '', map { "INSERT INTO item (name, value) VALUES ('burst$session-$_', $_);\n" } 1 .. 300;
    IPC::Run::start([ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node{a}->connstr('postgres') ],
        '<', \$sql, '>', '/dev/null', '2>', '/dev/null');
} 1 .. 4;
$_->finish for @sessions;
is($node{a}->safe_psql('postgres', q{SELECT count(*) FROM item WHERE name LIKE 'burst%'}), '1200',
    '1,200 one-row transactions committed');
ok(wait_until('the bursts on b', sub { converged($node{a}, $node{b}) }, 10),
    'every row of the bursts reaches b well within the interval');
my $received = metric('idsyncd_notifications_total') - $notified;
ok($received > 0 && $received < 1200, "fewer notifications than transactions ($received for 1,200)");

# A transaction in flight holds the cut back, so a notified table cannot settle: the follow-up
# passes slow down (up to one a second) instead of running every 20 ms until it commits.
my $passes = metric('idsyncd_change_passes_total{peer="b"}');
my $held = IPC::Run::start([ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node{a}->connstr('postgres'),
    '-c', q{BEGIN; INSERT INTO item (name, value) VALUES ('held', 1); SELECT pg_sleep(4); COMMIT;} ],
    '>', '/dev/null', '2>', '/dev/null');
sleep(0.5);
$node{a}->safe_psql('postgres', q{INSERT INTO item (name, value) VALUES ('during', 1)});
$held->finish;
my $during = metric('idsyncd_change_passes_total{peer="b"}') - $passes;
ok($during < 60, "follow-up passes slow down while a transaction holds the cut back ($during passes in 4 s)");
ok(wait_until('the held row on b', sub { converged($node{a}, $node{b}) }, 10),
    'the rows written during and by the long transaction reach b');

# The listening connection is cut: what was notified meanwhile is lost, so once it listens
# again every table gets a pass.
my $listener = $node{a}->safe_psql('postgres',
    q{SELECT pid FROM pg_stat_activity WHERE query = 'LISTEN idsync_changes'});
ok($listener =~ /^\d+$/, 'the daemon listens on one connection');
$node{a}->safe_psql('postgres', qq{SELECT pg_terminate_backend($listener);
    INSERT INTO item (name, value) VALUES ('unheard', 1);});
ok(wait_until('the unheard row on b', sub { converged($node{a}, $node{b}) }, 10),
    'a row whose notification was lost reaches b once the daemon listens again');

# A prepared transaction notifies nothing, so it prepares (PostgreSQL refuses to prepare one
# that notified); its row travels with the next pass of its table.
$node{a}->safe_psql('postgres', q{BEGIN; INSERT INTO fact (name, n) VALUES ('2pc', 1);
    PREPARE TRANSACTION 'notified';});
$node{a}->safe_psql('postgres', q{COMMIT PREPARED 'notified'});
load_rows($node{a}, 'after2pc', 5);
ok(wait_until('the prepared row on b', sub { converged($node{a}, $node{b}) }, 10),
    'a prepared transaction prepares, and its row travels with the next pass');
$node{a}->safe_psql('postgres', q{SET idsync.notify_changes = off;
    INSERT INTO fact (name, n) VALUES ('quiet', 1);});
load_rows($node{a}, 'afterquiet', 5);
ok(wait_until('the quiet row on b', sub { converged($node{a}, $node{b}) }, 10),
    'with idsync.notify_changes off, a row travels with the next pass of its table');
is(stop_daemon($pid), 0, 'SIGTERM: exit 0');

done_testing();
