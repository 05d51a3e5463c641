# No echo: a row goes back to no node that wrote it. Every row version keeps the node that
# wrote it (idsync_origin, a local column; items carry it, so it survives transitive hops);
# items_since for that node sends such a row as its point alone, which moves the receiver's
# sync point and nothing else. Outcomes: /metrics counts the rows not sent back, the peer's
# point moves past them, and nothing is lost.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IdsyncDaemon;

my %node = map { $_ => new_node($_) } qw(a b c);
my %id = map { $_ => $node{$_}->safe_psql('postgres', 'SELECT idsync.node_id()') } qw(a b c);
my $port = next_port();
my $config_a = write_config('a', $node{a}, [['b', dsn($node{b})]], interval => 30,
    metrics_listen => "127.0.0.1:$port");
my $config_b = write_config('b', $node{b}, [['a', dsn($node{a})], ['c', dsn($node{c})]]);
my $config_c = write_config('c', $node{c}, [['b', dsn($node{b})]]);

sub metric {
    my ($line) = @_;
    return metrics_of($port) =~ /^\Q$line\E (\S+)$/m ? $1 : 'missing';
}

my $pid = start_daemon('a', $config_a);
ok(wait_until('a listening', sub { metric('idsyncd_local_up') eq '1' }), 'daemon of a up');
$node{a}->safe_psql('postgres', q{INSERT INTO fact (name, n) VALUES ('from a', 1)});
ok(wait_until('a row of a on b', sub {
    $node{b}->safe_psql('postgres', q{SELECT count(*) FROM fact WHERE name = 'from a'}) == 1 }),
    "a's own row reaches b");
# While a's daemon is stopped, b writes 100 rows and pushes them to a (and c), then one more
# that it keeps. a's next pass to b (started by a second row of a's own) then finds different
# contents and diffs over b's 100 rows, now stored on a. (With a's daemon running, its pass right
# after b's push would find equal contents, record them, and never look at those rows again.)
is(stop_daemon($pid), 0, "a's daemon stops");
$node{b}->safe_psql('postgres', q{INSERT INTO fact (name, n) SELECT 'from b', g FROM generate_series(1, 100) g});
my ($status) = run_once('b', $config_b);
is($status, 0, 'b pushes its rows to a and c');
$node{b}->safe_psql('postgres', q{INSERT INTO fact (name, n) VALUES ('kept on b', 1)});
$pid = start_daemon('a', $config_a);
ok(wait_until('a listening again', sub { metric('idsyncd_local_up') eq '1' }), "a's daemon up again");
$node{a}->safe_psql('postgres', q{INSERT INTO fact (name, n) VALUES ('from a', 2)});
ok(wait_until('a pass of a to b over the rows of b', sub {
    metric('idsyncd_echoes_avoided_total{peer="b",table="public.fact"}') eq '100' }),
    "a does not send b's 100 rows back to b");
ok(wait_until("a's new row on b", sub {
    $node{b}->safe_psql('postgres', q{SELECT count(*) FROM fact WHERE name = 'from a'}) == 2 }),
    "a's new row reaches b");
is(metric('idsyncd_rows_sent_total{peer="b",table="public.fact"}'), '1', 'it is the only row a sent b');
is(metric('idsyncd_echoes_avoided_total{peer="b",table="public.fact"}'), '100', "b's rows were not sent back");
my $a_max = $node{a}->safe_psql('postgres', q{SELECT max(idsync_point) FROM fact});
ok(wait_until("b's point for a past b's rows", sub {
    $node{b}->safe_psql('postgres', qq{SELECT idsync.get_sync('fact', '$id{a}')}) == $a_max }),
    "b's sync point for a moved past the rows it was not sent");
is($node{a}->safe_psql('postgres', q{SELECT count(*) FROM fact WHERE idsync_origin IS NULL}), '2',
    'on a, only its own rows have no origin');
is($node{a}->safe_psql('postgres', qq{SELECT count(*) FROM fact WHERE idsync_origin = '$id{b}'}), '100',
    "on a, b's rows have b as their origin");
# c got b's rows from b; items carry the origin, so a third hop keeps it too.
is($node{c}->safe_psql('postgres', qq{SELECT count(*) FROM fact WHERE idsync_origin = '$id{b}'}), '100',
    "on c, b's rows have b as their origin");
($status) = run_once('c', $config_c);
is($status, 0, 'c passes to b');
is($node{b}->safe_psql('postgres', q{SELECT count(*) FROM fact}), '103', 'b holds every row once');
is(stop_daemon($pid), 0, 'SIGTERM: exit 0');

done_testing();
