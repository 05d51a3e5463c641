# idsyncd between two clusters, one pass at a time (--once): the command line, bulk mode for an
# empty peer, Swift's diff-capped scenario end to end, and peers that cannot be reached (a bad
# DSN, a wrong password): a clear log line and a failure count, never a crash.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IdsyncDaemon;

# --- the command line
like(`idsyncd --version`, qr/^idsyncd \d+\.\d+\.\d+$/m, '--version');
like(`idsyncd --help`, qr/--check-config FILE/, '--help');
system('idsyncd >/dev/null 2>&1');
is($? >> 8, 2, 'no configuration: exit status 2');
my $bad = PostgreSQL::Test::Utils::tempdir() . '/bad.ini';
open my $fh, '>', $bad or die;
print $fh "[idsyncd]\nlocal = dbname=x\ninterval = soon\n[peer b]\n";
close $fh;
my $out = `idsyncd --check-config $bad 2>&1`;
is($? >> 8, 2, '--check-config of a bad file: exit status 2');
like($out, qr/bad\.ini:3: .*interval/, 'the error names file, line and setting');
like($out, qr/\[peer b\] needs dsn/, 'every error is reported');

my $a = new_node('a');
my $b = new_node('b');

# --- bulk: an empty peer gets every row by COPY
load_rows($a, 'old', 5000);
my $config = write_config('a_to_b', $a, [['b', dsn($b)]]);
my $good = `idsyncd --check-config $config`;
is($? >> 8, 0, '--check-config of a good file: exit status 0');
unlike($good, qr/password/, '... and it shows no password');
my ($status, $log) = run_once('bulk', $config);
is($status, 0, 'bulk pass: exit status 0');
like($log, qr/public\.item to b: bulk/, 'an empty peer gets bulk mode');
like($log, qr/replicated 2 tables to 1 peer in [\d.]+ s: 2 successes, 0 failures.* bulk 2/,
    "Swift's summary line");
ok(converged($a, $b), 'the peer holds the same rows and hashes');
is($b->safe_psql('postgres', 'SELECT count(*) FROM item'), '5000', '5000 items arrived');
($status, $log) = run_once('again', $config);
like($log, qr/no_change 2/, 'the next pass has nothing to do');

# --- Swift's diff-capped scenario: per_diff 10, max_diffs 3, 50 new rows
$a->safe_psql('postgres',
    q{INSERT INTO item (name, value) SELECT 'new' || g, g FROM generate_series(1, 50) g});
my $capped = write_config('capped', $a, [['b', dsn($b)]],
    per_diff => 10, max_diffs => 3, bulk_ratio => 0);
($status, $log) = run_once('capped', $capped);
is($status, 1, 'a capped pass is not a complete one: exit status 1');
like($log, qr/diff 1, diff_capped 1/, 'diff, then diff_capped');
is($b->safe_psql('postgres', q{SELECT count(*) FROM item WHERE name LIKE 'new%'}), '30',
    'three batches of ten arrived');
my $thirtieth = $a->safe_psql('postgres',
    q{SELECT idsync_point FROM item WHERE name LIKE 'new%' ORDER BY idsync_point OFFSET 29 LIMIT 1});
my $a_id = $a->safe_psql('postgres', 'SELECT idsync.node_id()');
is($b->safe_psql('postgres', "SELECT idsync.get_sync('item', '$a_id')"), $thirtieth,
    "the peer's incoming point is the 30th row's");
($status, $log) = run_once('capped2', $capped);
is($status, 0, 'the second pass completes');
ok(converged($a, $b), 'converged on the second pass');

# --- batches cut by bytes: 20 rows of about 2,000 bytes, diff_bytes 5000: two rows a batch
# (a third would pass 5000), max_diffs 3: six rows, then the rest
$a->safe_psql('postgres', q{INSERT INTO item (name, value)
    SELECT 'big' || lpad(g::text, 2, '0') || repeat('x', 2000), g FROM generate_series(1, 20) g});
my $by_bytes = write_config('by_bytes', $a, [['b', dsn($b)]],
    per_diff => 1000, diff_bytes => 5000, max_diffs => 3, bulk_ratio => 0);
($status, $log) = run_once('by_bytes', $by_bytes);
is($status, 1, 'batches cut by diff_bytes: the pass is capped (exit status 1)');
is($b->safe_psql('postgres', q{SELECT count(*) FROM item WHERE name LIKE 'big%'}), '6',
    'three batches of two rows arrived');
for (1 .. 3) {
    ($status, $log) = run_once('by_bytes_more', $by_bytes);
}
is($status, 0, 'the following passes complete');
ok(converged($a, $b), 'and the peer holds every row');

# --- unreachable peers: a bad DSN, a wrong password
$b->safe_psql('postgres', q{CREATE ROLE pw LOGIN PASSWORD 'right-secret'});
my $hba = $b->data_dir . '/pg_hba.conf';
my $rules = slurp_file($hba);
open $fh, '>', $hba or die;
print $fh "local all pw scram-sha-256\n$rules";
close $fh;
$b->reload;
$a->safe_psql('postgres', q{INSERT INTO item (name, value) VALUES ('after', 1)});
my $peers = [
    ['nowhere', 'host=127.0.0.1 port=1 dbname=postgres'],
    ['wrongpw', dsn($b) . ' user=pw password=wrong-secret'],
    ['b', dsn($b)],
];
my $mixed = write_config('mixed', $a, $peers);
($status, $log) = run_once('mixed', $mixed);
is($status, 1, 'unreachable peers: exit status 1');
like($log, qr/peer nowhere: cannot connect: .*refused/, 'a bad address is named');
like($log, qr/peer wrongpw: cannot connect: .*password authentication failed/,
    'a wrong password is named');
unlike($log, qr/wrong-secret|right-secret/, 'no password in the log');
ok(converged($a, $b), 'the reachable peer was not held up');

my $port = next_port();
my $daemon_config = write_config('mixed_daemon', $a, $peers,
    metrics_listen => "127.0.0.1:$port", backoff_max => 1);
my $pid = start_daemon('mixed_daemon', $daemon_config);
my $metrics = '';
ok(wait_until('failure counts in /metrics', sub {
    $metrics = metrics_of($port);
    $metrics =~ /idsyncd_failures_total\{peer="nowhere",table="public.item"\} [2-9]/
        && $metrics =~ /idsyncd_peer_connect_failures_total\{peer="wrongpw"\} [1-9]/
        && $metrics =~ /idsyncd_successes_total\{peer="b",table="public.item"\} [1-9]/;
}), 'failures are counted per peer and table, and retried');
like($metrics, qr/idsyncd_peer_up\{peer="b"\} 1/, 'the good peer is up');
ok(kill(0, $pid), 'the daemon is still running');
is(stop_daemon($pid), 0, 'SIGTERM: exit status 0');
like(slurp_file(log_of('mixed_daemon')), qr/unreachable \d+ times? in a row; next attempt in/,
    'unreachable peers back off');

# --- a stuck call is cancelled after node_timeout, and the next pass goes through
my $locker = fork();
if ($locker == 0) {
    exec('psql', '-X', '-q', '-h', $b->host, '-p', $b->port, '-d', 'postgres', '-c',
        'BEGIN; LOCK TABLE item; SELECT pg_sleep(4); COMMIT') or die "exec psql: $!";
}
ok(wait_until('the lock on b', sub {
    $b->safe_psql('postgres', q{SELECT count(*) FROM pg_locks
        WHERE relation = 'item'::regclass AND mode = 'AccessExclusiveLock' AND granted}) eq '1'
}), 'a session on the peer holds a lock the pass needs');
my $stuck = write_config('stuck', $a, [['b', dsn($b)]], node_timeout => 1);
($status, $log) = run_once('stuck', $stuck);
is($status, 1, 'a stuck pass fails: exit status 1');
like($log, qr/peer b: no answer within 1 s; cancelling the statement/, 'the statement is cancelled');
like($log, qr/public\.item to b failed: peer b: no answer within 1 s, cancelled/,
    'the failure says why');
waitpid($locker, 0);
$a->safe_psql('postgres', q{INSERT INTO item (name, value) VALUES ('after_lock', 1)});
($status, $log) = run_once('unstuck', $stuck);
is($status, 0, 'once the lock is gone the pass completes');
ok(converged($a, $b), 'and the peer has everything');

done_testing();
