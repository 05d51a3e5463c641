# A fourth node joins a running set of three while loaders write on every node, and is retired
# later. Joining: the new node registers the same tables, the others add it to their
# configuration and reload (SIGHUP), and its daemon starts with them as peers; bulk copies load
# it and nothing is lost. Retiring: idsync.retire_node on the nodes that stay forgets its sync
# points for good, and no pass sends it anything again, even while it is still configured.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IdsyncDaemon;

my @first = qw(a b c);
my %node = map { $_ => new_node($_) } @first;
my %config;
my %pid;
sub configure {
    my ($name, @peers) = @_;
    $config{$name} = write_config($name, $node{$name}, [map { [$_, dsn($node{$_})] } @peers]);
}
for my $n (@first) { configure($n, grep { $_ ne $n } @first) }
$pid{$_} = start_daemon($_, $config{$_}) for @first;

my $round = 0;
sub load_everywhere {
    my (@names) = @_;
    $round++;
    load_rows($node{$_}, "r$round$_-", 50) for @names;
}
load_everywhere(@first) for 1 .. 3;
ok(wait_until('three nodes converge', sub { converged(@node{@first}) }, 120),
   'three nodes converge under load');

# d joins: registered tables, then the others learn of it while everyone keeps loading.
$node{d} = new_node('d');
my $id_d = $node{d}->safe_psql('postgres', 'SELECT idsync.node_id()');
configure('d', @first);
$pid{d} = start_daemon('d', $config{d});
load_everywhere(@first, 'd');
for my $n (@first) {
    configure($n, grep { $_ ne $n } @first, 'd');
    kill 'HUP', $pid{$n};
    load_everywhere(@first, 'd');
}
load_everywhere(@first, 'd') for 1 .. 2;
ok(wait_until('four nodes converge', sub { converged(@node{@first, 'd'}) }, 180),
   'four nodes converge: d has every row, and the others have d\'s');
my $rows = 50 * ($round * 3 + ($round - 3));    # three nodes every round, d from round 4 on
is($node{d}->safe_psql('postgres', 'SELECT count(*) FROM fact'), $rows, "d holds every fact row ($rows)");
is($node{d}->safe_psql('postgres', "SELECT count(*) FROM fact WHERE name LIKE 'r4d-%'"), '50',
   "d's own rows of its first round are there");

# d retires: the nodes that stay forget it, and send it nothing more although their
# configuration still names it.
is(stop_daemon($pid{d}), 0, "d's daemon stops");
my $d_before = $node{d}->safe_psql('postgres', 'SELECT count(*) FROM fact');
for my $n (@first) {
    my $forgotten = $node{$n}->safe_psql('postgres', "SELECT idsync.retire_node('$id_d')");
    ok($forgotten > 0, "$n forgets d's sync points ($forgotten rows)");
}
load_everywhere(@first);
load_everywhere(@first);
ok(wait_until('three nodes converge again', sub { converged(@node{@first}) }, 120),
   'the three nodes that stay converge');
sleep 2;    # a few more passes, each of which would have sent to d
is($node{d}->safe_psql('postgres', 'SELECT count(*) FROM fact'), $d_before,
   'nothing was sent to the retired node');
for my $n (@first) {
    is($node{$n}->safe_psql('postgres', qq{
        SELECT (SELECT count(*) FROM idsync.incoming_sync WHERE remote_id = '$id_d')
             + (SELECT count(*) FROM idsync.outgoing_sync WHERE remote_id = '$id_d')}), '0',
       "$n keeps no sync point of d, though its peers pass theirs on");
}
for my $n (@first) {
    configure($n, grep { $_ ne $n } @first);
    kill 'HUP', $pid{$n};
}
is(stop_daemon($pid{$_}), 0, "$_: daemon stops") for @first;
done_testing();
