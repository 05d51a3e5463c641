# idsyncd through PgBouncer in transaction pooling, as operators often put one before a node:
# the peer's statements land on any of the pooler's server connections, where a statement
# idsyncd prepared on another is unknown (26000 with PgBouncer 1.18) and another client's may
# have the same name. idsyncd sees the pooler (the process id it reports is not the server's)
# and prepares nothing behind it. A bulk copy, diff passes and a running daemon's change-driven
# passes all reach the peer through the pooler, and the two nodes end the same, without one
# prepared-statement error in the peer's server log.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(sleep);
use IdsyncDaemon;

my $pgbouncer = '/usr/sbin/pgbouncer';
plan skip_all => 'pgbouncer is not installed (scripts/install-deps installs it)' unless -x $pgbouncer;

my $a = new_node('a');
my $b = new_node('b');

# PgBouncer before b: transaction pooling over three server connections used in turn, so that
# consecutive statements of one client go to different server connections.
my $dir = PostgreSQL::Test::Utils::tempdir();
my $port = next_port();
my $user = $b->safe_psql('postgres', 'SELECT current_user');
open my $users, '>', "$dir/users.txt" or die;
print $users qq{"$user" ""\n};
close $users;
open my $ini, '>', "$dir/pgbouncer.ini" or die;
print $ini join("\n",
    '[databases]',
    sprintf('postgres = host=%s port=%d dbname=postgres', $b->host, $b->port),
    '[pgbouncer]',
    'listen_addr = 127.0.0.1',
    "listen_port = $port",
    'unix_socket_dir =',
    'auth_type = trust',
    "auth_file = $dir/users.txt",
    'pool_mode = transaction',
    'default_pool_size = 3',
    'min_pool_size = 3',
    'server_round_robin = 1',
    "logfile = $dir/pgbouncer.log",
    "pidfile = $dir/pgbouncer.pid",
    '');
close $ini;
system($pgbouncer, '-d', '-q', "$dir/pgbouncer.ini") == 0 or die "pgbouncer did not start";
END { kill 'TERM', slurp_file("$dir/pgbouncer.pid") + 0 if $dir && -f "$dir/pgbouncer.pid" }
my $through = "host=127.0.0.1 port=$port dbname=postgres user=$user";
ok(wait_until('the pooler to answer', sub {
    system("psql -X -q -d '$through' -c 'SELECT 1' >/dev/null 2>&1") == 0 }, 30),
    'PgBouncer answers');

# --- bulk, then diffs, each pass one idsyncd --once through the pooler
load_rows($a, 'old', 5000);
my $config = write_config('through_pooler', $a, [['b', $through]], bulk_ratio => 0.5,
    per_diff => 50);
my ($status, $log) = run_once('bulk', $config);
is($status, 0, 'a bulk copy through the pooler: exit status 0');
ok(converged($a, $b), 'the peer holds the same rows and hashes');

for my $round (1 .. 5) {
    $a->safe_psql('postgres', qq{
        INSERT INTO item (name, value) SELECT 'r$round-' || g, g FROM generate_series(1, 120) g;
        UPDATE item SET value = value + 1 WHERE name LIKE 'old1%';
        DELETE FROM item WHERE name = 'old$round';
        INSERT INTO fact (name, n) SELECT 'r$round', g FROM generate_series(1, 60) g;
    });
    ($status, $log) = run_once("diff$round", $config);
    is($status, 0, "diff pass $round through the pooler: exit status 0");
}
ok(converged($a, $b), 'the peer holds the same rows, tombstones and hashes after the diffs');

# --- a running daemon: change-driven passes through the pooler
my $pid = start_daemon('daemon', write_config('daemon', $a, [['b', $through]], interval => 30));
sleep(1);
for my $i (1 .. 20) {
    $a->safe_psql('postgres', "INSERT INTO item (name, value) VALUES ('live$i', $i)");
    sleep(0.05);
}
ok(wait_until('the live rows on b', sub { converged($a, $b) }, 60),
    'rows written while the daemon runs reach the peer through the pooler');
is(stop_daemon($pid), 0, 'SIGTERM: exit status 0');
is($b->safe_psql('postgres', q{SELECT count(*) FROM idsync.rejects}), '0', 'nothing parked on b');
unlike(slurp_file($b->logfile), qr/prepared statement "idsyncd_/,
    'no prepared statement of idsyncd was missing or doubled behind the pooler');

done_testing();
