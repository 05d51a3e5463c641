# Replication between three databases by SQL calls only: every database is a node, and this
# script plays the daemon, moving items from one to another in random order and random batch
# sizes. After random inserts, updates and deletes on every node and exchanges until quiet,
# all three hold identical rows and equal content hashes. Merging a batch twice changes
# nothing the second time.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $seed = $ENV{IDSYNC_SEED} // time();
srand($seed);
note("random seed $seed (set IDSYNC_SEED to replay)");

my $node = PostgreSQL::Test::Cluster->new('replication');
$node->init;
$node->start;

my @dbs = qw(node_a node_b node_c);
my %id;
for my $db (@dbs) {
    $node->safe_psql('postgres', "CREATE DATABASE $db");
    # The OS user runs the cluster, and its name may be idsync: "$user" in search_path would
    # then put new tables into the extension's schema.
    $node->safe_psql($db, "ALTER DATABASE $db SET search_path = public");
    $node->safe_psql($db, q{
        CREATE EXTENSION idsync;
        CREATE TABLE item (id bigserial PRIMARY KEY, name text NOT NULL UNIQUE, value int);
        SELECT idsync.replicate('item', '{name}', 'lww');
        CREATE TABLE fact (id bigserial PRIMARY KEY, name text NOT NULL, n int NOT NULL,
                           UNIQUE (name, n));
        SELECT idsync.replicate('fact', '{name,n}');
    });
    $id{$db} = $node->safe_psql($db, 'SELECT idsync.node_id()');
}
isnt($id{node_a}, $id{node_b}, 'every database has its own node id');

# Random local writes: overlapping names, so the nodes write the same rows concurrently.
sub write_randomly {
    my ($db) = @_;
    my @sql;
    for (1 .. 5 + int(rand(20))) {
        my $name = 'n' . int(rand(60));
        my $op = rand();
        if ($op < 0.5) {
            push @sql, sprintf("INSERT INTO item (name, value) VALUES ('%s', %d) "
                . "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                $name, int(rand(1000)));
        } elsif ($op < 0.75) {
            push @sql, sprintf("UPDATE item SET value = value + 1 WHERE name = '%s'", $name);
        } elsif ($op < 0.9) {
            push @sql, sprintf("DELETE FROM item WHERE name = '%s'", $name);
        } else {
            push @sql, sprintf("SELECT count(*) FROM idsync.insert_missing('fact', "
                . "ARRAY['name', 'n'], ARRAY['%s', '%s'], ARRAY[%d, %d])",
                $name, $name, int(rand(5)), int(rand(5)));
        }
    }
    $node->safe_psql($db, join(";\n", @sql));
}

# Ships what `to` lacks of `from`'s changes of `table`, in batches, as the daemon does.
# Returns the number of items shipped.
sub ship {
    my ($from, $to, $table, $batch) = @_;
    my $shipped = 0;
    my $point = $node->safe_psql($to, "SELECT idsync.get_sync('$table', '$id{$from}')");
    while (1) {
        my $items = $node->safe_psql($from,
            "SELECT coalesce(jsonb_agg(i ORDER BY i.point), '[]') "
            . "FROM idsync.items_since('$table', $point, $batch) i");
        last if $items eq '[]';
        my $merged = $node->safe_psql($to,
            "SELECT sync_point FROM idsync.merge_items('$table', \$items\$$items\$items\$, '$id{$from}')");
        die "sync point did not move" if $merged <= $point;
        $point = $merged;
        $shipped += () = $items =~ /"point"/g;
    }
    return $shipped;
}

for my $round (1 .. 6) {
    write_randomly($_) for @dbs;
    for (1 .. 4) {
        my ($from, $to) = (@dbs[int(rand(3))], @dbs[int(rand(3))]);
        next if $from eq $to;
        ship($from, $to, $_, 1 + int(rand(15))) for qw(item fact);
    }
}

# Exchange until quiet: a full round in which no pair had anything to ship.
my $rounds = 0;
while (1) {
    my $moved = 0;
    for my $from (@dbs) {
        for my $to (@dbs) {
            next if $from eq $to;
            $moved += ship($from, $to, $_, 1 + int(rand(15))) for qw(item fact);
        }
    }
    $rounds++;
    last if $moved == 0;
    die "no convergence after $rounds rounds" if $rounds > 10;
}
note("quiet after $rounds exchange rounds");

for my $table (qw(item fact)) {
    my %rows = map {
        my $db = $_;
        ($db => $node->safe_psql($db, $table eq 'item'
            ? q{SELECT coalesce((SELECT string_agg(format('%s=%s/%s', name, value, idsync_version), ','
                                          ORDER BY name) FROM item), '')
                       || ' deleted ' || coalesce((SELECT string_agg(format('%s/%s', t.key ->> 'name', t.version),
                                          ',' ORDER BY t.key ->> 'name') FROM idsync.tombstones t
                                          WHERE t.relid = 'item'::regclass), '')}
            : 'SELECT string_agg(format(\'%s:%s\', name, n), \',\' ORDER BY name, n) FROM fact'))
    } @dbs;
    my %info = map { ($_ => $node->safe_psql($_,
        "SELECT row_count || ' ' || content_hash FROM idsync.sync_info('$table')")) } @dbs;
    is($rows{node_b}, $rows{node_a}, "$table: node_b holds node_a's rows");
    is($rows{node_c}, $rows{node_a}, "$table: node_c holds node_a's rows");
    is($info{node_b}, $info{node_a}, "$table: node_b's row count and content hash equal node_a's");
    is($info{node_c}, $info{node_a}, "$table: node_c's row count and content hash equal node_a's");
    my $check = $node->safe_psql('node_a',
        "SELECT (SELECT content_hash FROM idsync.sync_info('$table')) = "
        . "lpad(to_hex(hash1), 16, '0') || lpad(to_hex(hash2), 16, '0') FROM idsync.table_hash('$table')");
    is($check, 't', "$table: the incremental content hash equals a full recomputation");
}

# Idempotence: the same batch merged twice changes nothing the second time.
$node->safe_psql('node_a', "INSERT INTO item (name, value) VALUES ('fresh', 1)");
my $batch = $node->safe_psql('node_a',
    "SELECT jsonb_agg(i ORDER BY i.point) FROM idsync.items_since('item', 0, 1000) i");
my $first = $node->safe_psql('node_b',
    "SELECT inserted + updated FROM idsync.merge_items('item', \$j\$$batch\$j\$)");
my $points = $node->safe_psql('node_b', 'SELECT max(idsync_point) FROM item');
my $second = $node->safe_psql('node_b',
    "SELECT inserted || ' ' || updated || ' ' || rejected FROM idsync.merge_items('item', \$j\$$batch\$j\$)");
is($first, 1, 'the first merge applies the new row');
is($second, '0 0 0', 'the second merge of the same batch changes nothing');
is($node->safe_psql('node_b', 'SELECT max(idsync_point) FROM item'), $points,
    'and writes nothing');

$node->stop;
done_testing();
