# Three clusters, an idsyncd beside each, replicating to the two others: convergence after
# concurrent writes everywhere; kill -9 of a daemon in the middle of a bulk copy, then restart;
# a peer stopped for a while (the others keep replicating) that catches up; SIGHUP adding a
# peer; the metrics endpoint; SIGTERM.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(sleep time);
use HTTP::Tiny;
use IdsyncDaemon;

my $seed = $ENV{IDSYNC_SEED} // int(time());
srand($seed);
note("random seed $seed (set IDSYNC_SEED to replay)");

my %node = map { $_ => new_node($_) } qw(a b c);
my @names = qw(a b c);
my $metrics_port = next_port();
my %config;
for my $name (@names) {
    my @peers = map { [$_, dsn($node{$_})] } grep { $_ ne $name } @names;
    $config{$name} = write_config($name, $node{$name}, \@peers, backoff_max => 1,
        $name eq 'a' ? (metrics_listen => "127.0.0.1:$metrics_port") : ());
}
my %pid = map { $_ => start_daemon($_, $config{$_}) } @names;

# --- concurrent writes on every node, overlapping names
for my $round (1 .. 8) {
    for my $name (@names) {
        my @sql;
        for (1 .. 10) {
            my $key = 'k' . int(rand(40));
            my $op = rand();
            if ($op < 0.5) {
                push @sql, "INSERT INTO item (name, value) VALUES ('$key', " . int(rand(1000))
                    . ") ON CONFLICT (name) DO UPDATE SET value = excluded.value";
            } elsif ($op < 0.7) {
                push @sql, "UPDATE item SET value = value + 1 WHERE name = '$key'";
            } elsif ($op < 0.8) {
                push @sql, "DELETE FROM item WHERE name = '$key'";
            } else {
                push @sql, "INSERT INTO fact (name, n) VALUES ('$key', " . int(rand(5))
                    . ") ON CONFLICT DO NOTHING";
            }
        }
        $node{$name}->safe_psql('postgres', join(";\n", @sql));
    }
    sleep(rand(0.3));
}
ok(wait_until('convergence after concurrent writes', sub { converged(values %node) }),
    'all three converge after concurrent writes on every node');

# --- kill -9 in the middle of a bulk copy, then restart
kill_daemon($pid{a});
load_rows($node{a}, 'bulk', 200000);
my $log_a = log_of('a');
my $before = -s $log_a;
$pid{a} = start_daemon('a', $config{a});
ok(wait_until('a bulk copy to start', sub {
    my $text = slurp_file($log_a);
    substr($text, $before) =~ /to [bc]: bulk/;
}, 60), 'the daemon starts a bulk copy');
sleep(0.2);
kill_daemon($pid{a});
# A bulk copy merges in one transaction on the peer: killed, it leaves all or nothing.
my @at_kill = map {
    $node{$_}->safe_psql('postgres', q{SELECT count(*) FROM item WHERE name LIKE 'bulk%'})
} qw(b c);
note("bulk rows on b and c right after the kill: @at_kill");
ok(!grep({ $_ != 0 && $_ != 200000 } @at_kill), 'a killed copy left nothing half-merged');
# SIGTERM during the copy the restarted daemon begins: it rolls back and exits promptly.
$before = -s $log_a;
$pid{a} = start_daemon('a', $config{a});
ok(wait_until('the restarted daemon to start a bulk copy', sub {
    substr(slurp_file($log_a), $before) =~ /to [bc]: bulk/;
}, 60), 'the restarted daemon starts the copy again');
my $term_started = time();
is(stop_daemon($pid{a}), 0, 'SIGTERM during a bulk copy: exit status 0');
note(sprintf('stopped %.1f s after SIGTERM', time() - $term_started));
like(substr(slurp_file($log_a), $before), qr/SIGTERM: stopping.*\n(.*\n)*.*stopped$/m,
    'it logs the stop');
$pid{a} = start_daemon('a', $config{a});
ok(wait_until('convergence after kill -9', sub { converged(values %node) }, 120),
    'converged after kill -9 and restart');
for my $name (@names) {
    is($node{$name}->safe_psql('postgres',
        q{SELECT count(*) - count(DISTINCT name) FROM item}), '0', "$name: no duplicate item");
    is($node{$name}->safe_psql('postgres',
        q{SELECT count(*) FROM item WHERE name LIKE 'bulk%'}), '200000', "$name: nothing lost");
}

# --- a peer stopped for a while
$node{c}->stop;
$node{a}->safe_psql('postgres', q{INSERT INTO item (name, value) VALUES ('while_c_down', 1)});
ok(wait_until('b to get the row while c is down', sub {
    $node{b}->safe_psql('postgres', q{SELECT count(*) FROM item WHERE name = 'while_c_down'}) eq '1'
}), 'the others keep replicating while a peer is down');
ok(wait_until('a to log c unreachable', sub {
    slurp_file($log_a) =~ /peer c: cannot connect/ }), 'the down peer is logged');
$node{c}->start;
ok(wait_until('c to catch up', sub { converged(values %node) }), 'the peer catches up');

# --- SIGHUP adds a peer
my $d = new_node('d');
my @peers_a = ((map { [$_, dsn($node{$_})] } qw(b c)), ['d', dsn($d)]);
write_config('a', $node{a}, \@peers_a, backoff_max => 1,
    metrics_listen => "127.0.0.1:$metrics_port");
kill 'HUP', $pid{a};
ok(wait_until('d to get every row from a', sub { converged($node{a}, $d) }),
    'a peer added by SIGHUP is replicated to');
like(slurp_file($log_a), qr/SIGHUP: configuration reloaded: 3 peers; added d/, 'the reload is logged');

# --- metrics and health
my $metrics = metrics_of($metrics_port);
like($metrics, qr/^idsyncd_successes_total\{peer="b",table="public.item"\} [1-9]/m,
    '/metrics counts successes per peer and table');
like($metrics, qr/^idsyncd_bulk_total\{peer="[bc]",table="public.item"\} [1-9]/m,
    '... and bulk passes');
like($metrics, qr/^idsyncd_lag_points\{peer="b",table="public.item"\} \d+/m, '... and the lag');
like($metrics, qr/^# TYPE idsyncd_pass_duration_seconds gauge/m, '... in Prometheus format');
my $health = HTTP::Tiny->new(timeout => 5)->get("http://127.0.0.1:$metrics_port/healthz");
is($health->{status}, 200, '/healthz answers 200');

# --- SIGTERM
for my $name (@names) {
    is(stop_daemon($pid{$name}), 0, "SIGTERM: daemon $name exits with 0");
}
like(slurp_file($log_a), qr/stopped$/m, 'the daemon logs its stop');

done_testing();
