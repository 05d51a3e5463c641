# idsyncctl resync: rows lost on a peer behind idsync's back (deleted there with idsync's
# trigger disabled) are not found by the sync points, which say the peer has them; a resync
# makes idsyncd's next pass copy the table in bulk, and the peer gets them back while loaders
# write on both nodes. The request is cleared by that pass.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IdsyncDaemon;

my %node = map { $_ => new_node($_) } qw(a b);
my $config = write_config('a', $node{a}, [['b', dsn($node{b})]], interval => 0.5);
sub count_on {
    my ($n, $where) = @_;
    return $node{$n}->safe_psql('postgres', "SELECT count(*) FROM fact WHERE $where");
}
sub ctl {
    my (@args) = @_;
    my $out = `idsyncctl -c '$config' @args 2>&1`;
    return ($? >> 8, $out);
}

load_rows($node{a}, 'x', 300);
my $pid = start_daemon('a', $config);
ok(wait_until('b has a\'s rows', sub { count_on('b', "name LIKE 'x%'") == 300 }), 'b has the 300 rows');

# Rows b wrote itself, pushed to a once.
$node{b}->safe_psql('postgres', q{INSERT INTO fact (name, n) SELECT 'own', g FROM generate_series(1, 30) g});
my $config_b = write_config('b', $node{b}, [['a', dsn($node{a})]], interval => 0.5);
my ($pushed) = run_once('b', $config_b);
is($pushed, 0, "b pushes its own rows to a");
is(count_on('a', "name = 'own'"), 30, "a has b's own rows");

# Lost on b behind idsync's back: rows of a, and rows b wrote itself.
$node{b}->safe_psql('postgres', q{
    ALTER TABLE fact DISABLE TRIGGER idsync_delete;
    DELETE FROM fact WHERE n % 3 = 0;
    ALTER TABLE fact ENABLE TRIGGER idsync_delete;
});
is(count_on('b', "name LIKE 'x%'"), 200, 'b lost 100 rows');
is(count_on('b', "name = 'own'"), 20, 'and 10 of its own');
load_rows($node{a}, 'y', 10);
ok(wait_until('b has the new rows', sub { count_on('b', "name LIKE 'y%'") == 10 }), 'new rows still arrive');
is(count_on('b', "name LIKE 'x%'"), 200, 'the lost rows do not come back by themselves');
my ($code, $out) = ctl('status');
is($code, 1, 'status: fact differs');

# The resync, while both nodes load.
($code, $out) = ctl('resync', 'public.fact', 'b');
is($code, 0, 'resync: exit 0') or diag($out);
like($out, qr/resync of public\.fact to b/, 'resync: says what it asked for');
for my $i (1 .. 5) {
    load_rows($node{a}, "during$i-", 20);
    $node{b}->safe_psql('postgres', "INSERT INTO fact (name, n) SELECT 'b$i', g FROM generate_series(1, 20) g");
}
ok(wait_until('the lost rows back on b', sub { count_on('b', "name LIKE 'x%'") == 300 }),
   'the lost rows are back on b');
ok(wait_until("b's own lost rows back on b", sub { count_on('b', "name = 'own'") == 30 }),
   "the rows b wrote itself and lost are back too");
ok(wait_until('the rows written during the resync on b', sub { count_on('b', "name LIKE 'during%'") == 100 }),
   'the rows a wrote during the resync are on b');
is(count_on('b', "name LIKE 'b_'"), 100, "b's own rows are all there");
is($node{b}->safe_psql('postgres', 'SELECT count(*) - count(DISTINCT (name, n)) FROM fact'), '0',
   'no row twice');
ok(wait_until('the request cleared', sub {
    $node{a}->safe_psql('postgres', 'SELECT count(*) FROM idsync.resync_requests') == 0 }),
   'the pass that carried out the resync cleared the request');
is(stop_daemon($pid), 0, 'idsyncd stops');

($code) = ctl('resync', 'public.fact', 'nobody');
is($code, 2, 'resync to a peer the file does not name: exit 2');
($code) = ctl('resync', 'public.nosuch', 'b');
is($code, 1, 'resync of a table that does not exist: exit 1');
($code) = ctl('resync', 'public.fact');
is($code, 2, 'resync without a peer: exit 2');
done_testing();
