# Deletes of lww tables between three clusters, an idsyncd beside each replicating to the two
# others. A delete removes the row and keeps a tombstone in idsync.tombstones that replicates;
# per key the newest version wins. Covered: concurrent upserts, updates, deletes and re-inserts
# of overlapping keys on every node (same live rows, same tombstones, same content hashes, each
# kept hash equal to its recomputation, nothing parked); a plain INSERT of a deleted key; and a
# parent deleted on one node while another node adds a child to it, for each ON DELETE action of
# the child's foreign key, the daemons stopped meanwhile and restarted a first: RESTRICT (the
# parent's tombstone waits where the child lives, the child becomes a tombstone where the parent
# was deleted, then the parent's tombstone goes through), CASCADE, and SET NULL.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(sleep time);
use IdsyncDaemon;

my $seed = $ENV{IDSYNC_SEED} // int(time());
srand($seed);
note("random seed $seed (set IDSYNC_SEED to replay)");

my @names = qw(a b c);
my %node = map { $_ => new_node($_) } @names;

# Owners and pets, once per ON DELETE action (suffix r: RESTRICT, c: CASCADE, n: SET NULL). The
# pet's reference to its owner's surrogate id travels as the owner's name.
my %action = (r => 'RESTRICT', c => 'CASCADE', n => 'SET NULL');
for my $name (@names) {
    for my $s (sort keys %action) {
        my $not_null = $s eq 'n' ? '' : 'NOT NULL';
        $node{$name}->safe_psql('postgres', qq{
            CREATE TABLE owner_$s (id bigserial PRIMARY KEY, name text UNIQUE NOT NULL);
            CREATE TABLE pet_$s (id bigserial PRIMARY KEY,
                owner_id bigint $not_null REFERENCES owner_$s ON DELETE $action{$s},
                name text UNIQUE NOT NULL);
            SELECT idsync.replicate('owner_$s', '{name}', 'lww');
            SELECT idsync.replicate('pet_$s', '{name}', 'lww');
        });
    }
}
# Different ids for the same rows on every node.
for my $i (1, 2) {
    $node{$names[$i]}->safe_psql('postgres', join('; ', map {
        "ALTER SEQUENCE owner_${_}_id_seq RESTART " . (1000 * $i)
            . "; ALTER SEQUENCE pet_${_}_id_seq RESTART " . (1000 * $i + 500)
    } sort keys %action));
}

my %config;
for my $name (@names) {
    my @peers = map { [$_, dsn($node{$_})] } grep { $_ ne $name } @names;
    $config{$name} = write_config($name, $node{$name}, \@peers, backoff_max => 1);
}
my %pid = map { $_ => start_daemon($_, $config{$_}) } @names;

sub query {
    my ($name, $sql) = @_;
    return $node{$name}->safe_psql('postgres', $sql);
}

# Whether the content hash sync_info keeps for a table equals table_hash's recomputation.
sub kept_hash_is_fresh {
    my ($name, $table) = @_;
    return query($name, qq{
        SELECT (SELECT content_hash FROM idsync.sync_info('$table'))
             = lpad(to_hex(hash1), 16, '0') || lpad(to_hex(hash2), 16, '0')
        FROM idsync.table_hash('$table')});
}

sub rejects { my ($name) = @_; return query($name, 'SELECT count(*) FROM idsync.rejects') }

# The tombstoned names of a table, in order.
sub deleted_names {
    my ($name, $table) = @_;
    return query($name, qq{
        SELECT coalesce(string_agg(t.key ->> 'name', ',' ORDER BY t.key ->> 'name'), '')
        FROM idsync.tombstones t WHERE t.relid = '$table'::regclass});
}

# item on a node: live rows, tombstones, content hash.
sub item_view {
    my ($name) = @_;
    return {
        rows => query($name, q{SELECT coalesce(string_agg(name || '=' || coalesce(value::text, '-'),
                                   ',' ORDER BY name), '') FROM item}),
        deleted => deleted_names($name, 'item'),
        hash => query($name, q{SELECT content_hash FROM idsync.sync_info('item')}),
    };
}

# owner_S and pet_S on a node: owners, pets with their owner's name, tombstones, hashes.
sub family_view {
    my ($name, $s) = @_;
    return {
        owners => query($name, qq{SELECT coalesce(string_agg(name, ',' ORDER BY name), '') FROM owner_$s}),
        pets => query($name, qq{
            SELECT coalesce(string_agg(p.name || '>' || coalesce(o.name, '-'), ',' ORDER BY p.name), '')
            FROM pet_$s p LEFT JOIN owner_$s o ON o.id = p.owner_id}),
        deleted_owners => deleted_names($name, "owner_$s"),
        deleted_pets => deleted_names($name, "pet_$s"),
        hashes => query($name, qq{
            SELECT (SELECT content_hash FROM idsync.sync_info('owner_$s')) || ' '
                || (SELECT content_hash FROM idsync.sync_info('pet_$s'))}),
    };
}

sub same_views {
    my ($view) = @_;
    my @views = map { $view->($_) } @names;
    for my $v (@views[1 .. $#views]) {
        return 0 if grep { $v->{$_} ne $views[0]{$_} } keys %{ $views[0] };
    }
    return 1;
}

sub nothing_parked { return !grep { rejects($_) ne '0' } @names }

sub item_converged { return same_views(\&item_view) && nothing_parked() }

sub families_converged {
    return nothing_parked() && !grep { my $s = $_; !same_views(sub { family_view($_[0], $s) }) }
        sort keys %action;
}

# --- 1. concurrent upserts, updates, deletes and re-inserts of overlapping keys
query('a', q{INSERT INTO item (name, value) SELECT 'k' || g, g FROM generate_series(0, 19) g});
ok(wait_until('the first rows to reach every node', \&item_converged),
    'the first rows reach every node');
for my $round (1 .. 8) {
    for my $name (@names) {
        my @sql;
        for (1 .. 10) {
            my $key = 'k' . int(rand(20));
            my $value = int(rand(1000));
            my $op = rand();
            if ($op < 0.35) {
                push @sql, "INSERT INTO item (name, value) VALUES ('$key', $value) "
                    . "ON CONFLICT (name) DO UPDATE SET value = excluded.value";
            } elsif ($op < 0.5) {
                push @sql, "UPDATE item SET value = value + 1 WHERE name = '$key'";
            } elsif ($op < 0.8) {
                push @sql, "DELETE FROM item WHERE name = '$key'";
            } else {
                # A key deleted here comes back by an INSERT.
                push @sql, "INSERT INTO item (name, value) SELECT t.key ->> 'name', $value "
                    . "FROM idsync.tombstones t WHERE t.relid = 'item'::regclass "
                    . "ORDER BY random() LIMIT 1 ON CONFLICT (name) DO NOTHING";
            }
        }
        query($name, join(";\n", @sql));
    }
    sleep(rand(0.3));
}
# The last word on three keys is a delete, one on each node.
my %last_delete = (a => 'k1', b => 'k2', c => 'k3');
for my $name (@names) {
    my $key = $last_delete{$name};
    query($name, "INSERT INTO item (name, value) VALUES ('$key', 1) "
        . "ON CONFLICT (name) DO UPDATE SET value = excluded.value; "
        . "DELETE FROM item WHERE name = '$key'");
}
ok(wait_until('convergence after concurrent deletes and re-inserts', \&item_converged, 90),
    'item: three nodes converge after concurrent deletes and re-inserts');
my %item = map { $_ => item_view($_) } @names;
note("a: rows $item{a}{rows}; deleted $item{a}{deleted}");
for my $name (qw(b c)) {
    is($item{$name}{rows}, $item{a}{rows}, "item: $name has a's live rows");
    is($item{$name}{deleted}, $item{a}{deleted}, "item: $name has a's tombstones");
    is($item{$name}{hash}, $item{a}{hash}, "item: $name has a's content hash");
}
for my $name (@names) {
    is(kept_hash_is_fresh($name, 'item'), 't', "item: ${name}'s kept content hash equals table_hash");
    is(rejects($name), '0', "$name: no row parked in idsync.rejects");
}
is(join(',', grep { my $k = $_; grep { $_ eq $k } split /,/, $item{a}{deleted} } qw(k1 k2 k3)), 'k1,k2,k3',
    'item: the three last deletes are tombstones everywhere');
is(query('a', q{SELECT count(*) FROM item WHERE name IN ('k1', 'k2', 'k3')}), '0',
    'item: ... and not live rows');
is(query('a', q{SELECT count(*) FROM idsync.tombstones t JOIN item i ON i.name = t.key ->> 'name'
                WHERE t.relid = 'item'::regclass}), '0', 'item: no key both live and tombstoned');

# A plain INSERT of a key deleted elsewhere replaces the tombstone on every node.
query('c', q{INSERT INTO item (name, value) VALUES ('k1', 4242)});
ok(wait_until('the re-inserted key to reach every node', sub {
    item_converged() && query('a', q{SELECT value FROM item WHERE name = 'k1'}) eq '4242'
}), 'item: a re-inserted key converges');
for my $name (@names) {
    is(query($name, q{SELECT value FROM item WHERE name = 'k1'}) . ' '
        . query($name, q{SELECT count(*) FROM idsync.tombstones t
                         WHERE t.relid = 'item'::regclass AND t.key ->> 'name' = 'k1'}),
        '4242 0', "item: $name holds the re-inserted row and no tombstone of it");
    is(kept_hash_is_fresh($name, 'item'), 't', "item: ${name}'s kept hash still equals table_hash");
}

# --- 2-4. a parent deleted on a while b adds a child to it
# Everywhere first: owners alice and bob, bob's pet fido, and (where alice may have children)
# alice's pet tom.
for my $s (sort keys %action) {
    query('a', qq{
        INSERT INTO owner_$s (name) VALUES ('alice'), ('bob');
        INSERT INTO pet_$s (owner_id, name) SELECT id, 'fido' FROM owner_$s WHERE name = 'bob';
    });
    query('a', qq{INSERT INTO pet_$s (owner_id, name) SELECT id, 'tom' FROM owner_$s WHERE name = 'alice'})
        unless $s eq 'r';
}
ok(wait_until('owners and pets to reach every node', sub {
    families_converged() && query('c', q{SELECT count(*) FROM pet_n}) eq '2'
}), 'owners and pets reach every node');

# The daemons stopped, a deletes alice while b gives her a new pet, rex.
is(stop_daemon($pid{$_}), 0, "daemon $_ stops") for @names;
for my $s (sort keys %action) {
    query('a', qq{DELETE FROM owner_$s WHERE name = 'alice'});
    query('b', qq{INSERT INTO pet_$s (owner_id, name) SELECT id, 'rex' FROM owner_$s WHERE name = 'alice'});
}
is(query('a', q{SELECT string_agg(name, ',' ORDER BY name) FROM pet_c}), 'fido',
    'CASCADE: a deleted tom with alice');
is(query('a', q{SELECT string_agg(name || '>' || coalesce(owner_id::text, '-'), ',' ORDER BY name) FROM pet_n
                WHERE owner_id IS NULL}), 'tom>-', 'SET NULL: a kept tom without an owner');
is(join(' ', map { query('b', "SELECT o.name FROM pet_$_ p JOIN owner_$_ o ON o.id = p.owner_id WHERE p.name = 'rex'") }
    sort keys %action), 'alice alice alice', 'b gave alice a pet rex in each variant');

# a's daemon alone first: a's deletes reach b and c, but rex stays on b, unknown elsewhere.
$pid{a} = start_daemon('a', $config{a});
ok(wait_until("a's deletes to reach b and c", sub {
    query('b', q{SELECT count(*) FROM idsync.rejects WHERE relid = 'owner_r'::regclass AND sqlstate = '23503'}) ne '0'
        && query('b', q{SELECT count(*) FROM pet_c}) eq '1'
        && query('b', q{SELECT count(*) FROM pet_n WHERE owner_id IS NULL}) eq '2'
        && !grep { query('c', "SELECT count(*) FROM owner_$_ WHERE name = 'alice'") ne '0' } sort keys %action
}), "a's deletes reach b and c");
is(family_view('b', 'r')->{owners} . ' | ' . family_view('b', 'r')->{pets}, 'alice,bob | fido>bob,rex>alice',
    'RESTRICT: on b, where rex references alice, her tombstone waits and both rows stay');
is(query('b', q{SELECT count(*) FROM idsync.rejects WHERE relid = 'owner_r'::regclass AND sqlstate = '23503'
                AND item ->> 'name' = 'alice'}), '1', "RESTRICT: ... parked in b's rejects as waiting (23503)");
is(join(' | ', @{ family_view('b', 'c') }{qw(owners pets deleted_owners deleted_pets)}), 'bob | fido>bob | alice | rex,tom',
    'CASCADE: on b, alice\'s tombstone deletes her, tom and rex; all three tombstones kept');
is(join(' | ', @{ family_view('b', 'n') }{qw(owners pets deleted_owners deleted_pets)}),
    'bob | fido>bob,rex>-,tom>- | alice | ', 'SET NULL: on b, alice\'s tombstone leaves tom and rex without an owner');
is(join(' ', map { family_view('c', $_)->{owners} } sort keys %action), 'bob bob bob',
    'c, without children of alice, deletes her in every variant');

$pid{$_} = start_daemon($_, $config{$_}) for qw(b c);
my $converged = wait_until('owners and pets to converge', \&families_converged, 90);
ok($converged, 'owners and pets: three nodes converge, nothing left parked');
unless ($converged) {
    for my $name (@names) {
        diag("$name: rejects " . query($name, q{SELECT string_agg(relid::regclass || ' ' || sqlstate || ' '
            || item::text || ' ' || message, E'\n') FROM idsync.rejects}));
        for my $s (sort keys %action) {
            my $v = family_view($name, $s);
            diag("$name $s: " . join('; ', map { "$_ $v->{$_}" } sort keys %$v));
        }
    }
}

my %expected = (
    r => { owners => 'bob', pets => 'fido>bob', deleted_owners => 'alice', deleted_pets => 'rex' },
    c => { owners => 'bob', pets => 'fido>bob', deleted_owners => 'alice', deleted_pets => 'rex,tom' },
    n => { owners => 'bob', pets => 'fido>bob,rex>-,tom>-', deleted_owners => 'alice', deleted_pets => '' },
);
for my $s (sort keys %action) {
    my %view = map { $_ => family_view($_, $s) } @names;
    for my $name (@names) {
        is(join(' | ', @{ $view{$name} }{qw(owners pets deleted_owners deleted_pets)}),
            join(' | ', @{ $expected{$s} }{qw(owners pets deleted_owners deleted_pets)}),
            "$action{$s}: $name holds the expected owners, pets and tombstones");
        is($view{$name}{hashes}, $view{a}{hashes}, "$action{$s}: $name has a's content hashes")
            unless $name eq 'a';
        is(kept_hash_is_fresh($name, "owner_$s") . kept_hash_is_fresh($name, "pet_$s"), 'tt',
            "$action{$s}: ${name}'s kept content hashes equal table_hash");
    }
}
is(join(' ', map { rejects($_) } @names), '0 0 0', 'no row parked on any node');

is(stop_daemon($pid{$_}), 0, "daemon $_ exits with 0 on SIGTERM") for @names;
done_testing();
