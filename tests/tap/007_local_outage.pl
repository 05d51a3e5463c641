# When idsyncd's own database is down, the fault is local: no peer is backed off, and the first
# pass after the database returns runs at once (before, each failed pass doubled the peer's
# delay, up to backoff_max, and the log blamed the peer). Outcomes from /metrics: the peer's
# backoff stays 0, no connect failure is counted against it, it stays up.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(sleep);
use IdsyncDaemon;

my %node = map { $_ => new_node($_) } qw(a b);
my $port = next_port();
my $config = write_config('a', $node{a}, [['b', dsn($node{b})]], interval => 0.5,
    backoff_base => 0.5, backoff_max => 60, metrics_listen => "127.0.0.1:$port");
my $pid = start_daemon('a', $config);
load_rows($node{a}, 'first', 100);
ok(wait_until('a first pass', sub { converged($node{a}, $node{b}) }), 'a replicates to b');

sub metric {
    my ($line) = @_;
    my $text = metrics_of($port);
    return $text =~ /^\Q$line\E (\S+)$/m ? $1 : 'missing';
}

$node{a}->stop('fast');
ok(wait_until('the local database seen down', sub { metric('idsyncd_local_up') eq '0' }),
    'the daemon sees its database down');
sleep(6);    # long enough for a doubling backoff to pass 4 s
is(metric('idsyncd_peer_backoff_seconds{peer="b"}'), '0', 'the peer is not backed off');
is(metric('idsyncd_peer_connect_failures_total{peer="b"}'), '0', 'no failure counted against the peer');
is(metric('idsyncd_peer_up{peer="b"}'), '1', 'the peer is still up');

$node{a}->start;
load_rows($node{a}, 'after', 100);
ok(wait_until('rows written after the outage', sub { converged($node{a}, $node{b}) }),
    'rows written after the outage reach the peer');
is(metric('idsyncd_local_up'), '1', 'the local database is up again');
is(stop_daemon($pid), 0, 'SIGTERM: exit 0');

done_testing();
