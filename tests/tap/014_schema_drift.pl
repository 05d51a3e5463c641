# Schema drift between three clusters, an idsyncd beside each replicating to the two others,
# with a load on every node throughout. A nullable column added to `item` on one node at a time
# (the supported way to change a replicated table's schema on a running set of nodes): while a
# node has the column and a peer does not, its daemon skips `item` for that peer (the
# idsyncd_schema_drift gauge and idsyncd_schema_drift_skips_total count it, nothing is parked in
# the peer's rejects) while rows from the peer still arrive (without the column) and `fact` still
# replicates; once every node has the column, the drift is resolved and everything converges:
# same rows and notes, same content hashes, each kept hash equal to its recomputation, no
# rejects, and every row each node inserted present everywhere.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(sleep time);
use IdsyncDaemon;

my @names = qw(a b c);
my %node = map { $_ => new_node($_) } @names;
my %port = map { $_ => next_port() } @names;
my %config;
for my $name (@names) {
    my @peers = map { [$_, dsn($node{$_})] } grep { $_ ne $name } @names;
    $config{$name} = write_config($name, $node{$name}, \@peers, backoff_max => 1,
        metrics_listen => "127.0.0.1:$port{$name}");
}
my %pid = map { $_ => start_daemon($_, $config{$_}) } @names;

# --- the load: a few item and fact rows on every node per round; what went where is recorded
my %has_note = map { $_ => 0 } @names;
my (%items, %notes, %facts);    # per loader: rows inserted, of which with a note; fact rows
my $round = 0;
sub load {
    $round++;
    for my $name (@names) {
        my ($columns, $values) = $has_note{$name}
            ? ('name, value, note', "'$name-$round-' || g, g, 'note $name $round ' || g")
            : ('name, value', "'$name-$round-' || g, g");
        $node{$name}->safe_psql('postgres', qq{
            INSERT INTO item ($columns) SELECT $values FROM generate_series(1, 3) g;
            INSERT INTO fact (name, n) SELECT '$name', $round * 10 + g FROM generate_series(1, 3) g;
        });
        $items{$name} += 3;
        $notes{$name} += 3 if $has_note{$name};
        $facts{$name} += 3;
    }
}

# wait_until with the load running inside the wait.
sub wait_loading {
    my ($what, $check, $timeout) = @_;
    return wait_until($what, sub { load(); $check->() }, $timeout);
}

sub metric {
    my ($name, $peer, $table) = @_;
    my $text = metrics_of($port{a});
    return $text =~ /^\Q$name\E\{peer="$peer",table="public\.$table"\} (\S+)$/m ? $1 : '';
}

sub query {
    my ($name, $sql) = @_;
    return $node{$name}->safe_psql('postgres', $sql);
}

load() for 1 .. 3;

# --- the column on a only: a skips item for b and c
query('a', 'ALTER TABLE item ADD COLUMN note text');
$has_note{a} = 1;
load();
my $from_b = "b-$round-1";
my $from_c = "c-$round-1";
my $from_a = "a-$round-1";
my $note_a = "note a $round 1";
ok(wait_loading('a to see the drift to b and c', sub {
    metric('idsyncd_schema_drift', 'b', 'item') eq '1'
        && metric('idsyncd_schema_drift', 'c', 'item') eq '1'
}), "a's metrics show the drift of item to b and to c");
cmp_ok(metric('idsyncd_schema_drift_skips_total', $_, 'item') || 0, '>', 0,
    "the skips of item to $_ are counted") for qw(b c);
is(metric('idsyncd_schema_drift', $_, 'fact'), '0', "no drift of fact to $_") for qw(b c);
ok(wait_loading("b's and c's rows to reach a", sub {
    query('a', qq{SELECT count(*) FROM item WHERE name IN ('$from_b', '$from_c')}) eq '2'
}), 'rows from b and c still reach a');
is(query('a', qq{SELECT coalesce(note, 'NULL') FROM item WHERE name = '$from_b'}), 'NULL',
    "b's row arrives on a with note NULL");
ok(wait_loading("a's fact rows to reach b and c", sub {
    !grep { query($_, qq{SELECT count(*) FROM fact WHERE name = 'a' AND n = $round * 10 - 9})
        ne '1' } qw(b c)
}), 'fact still replicates from a to b and c');
is(query($_, qq{SELECT count(*) FROM item WHERE name = '$from_a'}), '0',
    "a's rows with a note are not sent to $_") for qw(b c);
is(query($_, q{SELECT count(*) FROM idsync.rejects WHERE relid = 'item'::regclass}), '0',
    "nothing parked in ${_}'s rejects for item") for qw(b c);

# --- the column on c, then on b
query('c', 'ALTER TABLE item ADD COLUMN note text');
$has_note{c} = 1;
ok(wait_loading('the drift of item to c to be resolved', sub {
    metric('idsyncd_schema_drift', 'c', 'item') eq '0'
}), 'once c has the column, a sees no drift to c');
is(metric('idsyncd_schema_drift', 'b', 'item'), '1', '... and still the drift to b');
load() for 1 .. 2;
my ($noted_c, $note_c) = ("c-$round-2", "note c $round 2");
ok(wait_loading("c's noted row to reach a", sub {
    query('a', qq{SELECT coalesce(note, 'NULL') FROM item WHERE name = '$noted_c'})
        eq $note_c
}), "c's rows reach a with their note");
ok(wait_loading("a's noted rows to reach c", sub {
    query('c', qq{SELECT coalesce(note, 'NULL') FROM item WHERE name = '$from_a'})
        eq $note_a
}), "a's rows reach c with their note");
query('b', 'ALTER TABLE item ADD COLUMN note text');
$has_note{b} = 1;
ok(wait_loading('the drift of item to b and c to be resolved', sub {
    metric('idsyncd_schema_drift', 'b', 'item') eq '0'
        && metric('idsyncd_schema_drift', 'c', 'item') eq '0'
}), "once every node has the column, a's metrics show no drift to b or c");
load() for 1 .. 2;

# --- the load stops: convergence, nothing lost
sub state_of {
    my ($name) = @_;
    return query($name, q{
        SELECT (SELECT count(*) || ' ' || coalesce(string_agg(name || '=' || coalesce(value::text, '-')
                        || '/' || coalesce(note, '-'), ',' ORDER BY name), '') FROM item)
            || ' | ' || (SELECT count(*) || ' ' || coalesce(string_agg(name || '/' || n, ','
                        ORDER BY name, n), '') FROM fact)
            || ' | ' || (SELECT content_hash FROM idsync.sync_info('item'))
            || ' ' || (SELECT content_hash FROM idsync.sync_info('fact'))
    });
}
my $converged = wait_until('convergence', sub {
    my $first = state_of('a');
    !grep { state_of($_) ne $first } qw(b c);
}, 60);
ok($converged, 'all three converge: same item rows and notes, same fact rows, same hashes');
for my $name (@names) {
    for my $table (qw(item fact)) {
        is(query($name, qq{
            SELECT (SELECT content_hash FROM idsync.sync_info('$table'))
                 = (SELECT lpad(to_hex(hash1), 16, '0') || lpad(to_hex(hash2), 16, '0')
                    FROM idsync.table_hash('$table'))}), 't',
            "$name: the kept hash of $table equals its recomputation");
    }
    is(query($name, 'SELECT count(*) FROM idsync.rejects'), '0', "$name: no rejects")
        or diag(query($name, 'SELECT source, point, item, sqlstate, message FROM idsync.rejects'));
    for my $loader (@names) {
        is(query($name, qq{
            SELECT count(*) || ' ' || count(note) FROM item WHERE name LIKE '$loader-%'}),
            "$items{$loader} $notes{$loader}",
            "$name holds every item row $loader inserted, with its notes");
        is(query($name, qq{SELECT count(*) FROM fact WHERE name = '$loader'}), $facts{$loader},
            "$name holds every fact row $loader inserted");
    }
}
unless ($converged) {
    diag("$_: " . state_of($_)) for @names;
    diag("metrics of a:\n" . metrics_of($port{a}));
}

for my $name (@names) {
    is(stop_daemon($pid{$name}), 0, "SIGTERM: daemon $name exits with 0");
}

done_testing();
