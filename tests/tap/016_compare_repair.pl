# idsyncctl compare and repair between two clusters, no daemon running. The same rows are loaded
# on both nodes (item lww with explicit versions, fact insert_only, and owner/pet lww with the
# pet's reference to its owner translated, numbered differently on each node); compare with equal
# content reads only the top level of buckets, no row. Then rows change behind idsync's back on b
# (triggers disabled: updates, deletes, inserts, a renamed pet, a lost fact, an owner added while
# the kept hashes stay equal) and normally on a (a delete that leaves a tombstone, an insert):
# compare, as the file's peer role, reports exactly the differing natural keys with their states
# (a tombstone against a live row is 'different', the pet's key with its owner's name), the stale
# kept hash on b, and reads only a fraction of the table. repair, as administrators on both
# nodes, sends those rows both ways by the table's rules (lww: the newer version wins, equal
# versions the larger row hash), recomputes b's stale hashes, and compare then finds nothing: the
# kept hashes are equal on both nodes and equal to their recomputation, and the repaired rows are
# the same on both. An unknown peer is a usage error.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use JSON::PP;
use IdsyncDaemon;

my %node = map { $_ => new_node($_) } qw(a b);
sub query { my ($n, $sql) = @_; return $node{$n}->safe_psql('postgres', $sql) }

my $id_a = query('a', 'SELECT idsync.node_id()');
for my $n (qw(a b)) {
    query($n, q{
        CREATE TABLE owner (id bigserial PRIMARY KEY, name text UNIQUE NOT NULL);
        CREATE TABLE pet (id bigserial PRIMARY KEY, owner_id bigint NOT NULL REFERENCES owner,
                          name text NOT NULL, UNIQUE (owner_id, name));
        SELECT idsync.replicate('owner', '{name}', 'lww');
        SELECT idsync.replicate('pet', '{owner_id,name}', 'lww');
    });
}
# Different ids for the same owners and pets on b.
query('b', 'ALTER SEQUENCE owner_id_seq RESTART 1000; ALTER SEQUENCE pet_id_seq RESTART 5000');
# The same rows, with the same versions, on both nodes.
for my $n (qw(a b)) {
    query($n, q{
        INSERT INTO item (name, value, idsync_version) SELECT 'k' || g, g, 1000 FROM generate_series(1, 5000) g;
        INSERT INTO fact (name, n) SELECT 'f' || (g % 50), g FROM generate_series(1, 2000) g;
        INSERT INTO owner (name, idsync_version) SELECT 'o' || g, 1000 FROM generate_series(1, 50) g;
        INSERT INTO pet (owner_id, name, idsync_version)
        SELECT o.id, 'p' || g, 1000 FROM owner o, generate_series(1, 4) g;
    });
}
is(query('a', q{SELECT string_agg(DISTINCT idsync_version::text, ',') FROM item}), '1000',
   'the explicit versions are kept');
isnt(query('a', q{SELECT p.owner_id FROM pet p JOIN owner o ON o.id = p.owner_id WHERE o.name = 'o1' AND p.name = 'p1'}),
     query('b', q{SELECT p.owner_id FROM pet p JOIN owner o ON o.id = p.owner_id WHERE o.name = 'o1' AND p.name = 'p1'}),
     'the same pet refers to its owner by different ids on a and b');

# The peer role on b that the configuration file names.
query('b', qq{
    CREATE ROLE ctl_peer LOGIN;
    SELECT idsync.grant_peer('ctl_peer', '$id_a');
    GRANT SELECT ON item, fact, owner, pet TO ctl_peer;
});
my $config = write_config('a', $node{a}, [['b', dsn($node{b}) . ' user=ctl_peer']]);
my $admin = "--dsn '" . dsn($node{a}) . "' --peer-dsn '" . dsn($node{b}) . "'";

sub ctl {
    my (@args) = @_;
    my $out = `idsyncctl -c '$config' @args 2>&1`;
    return ($? >> 8, $out);
}
# (exit status, decoded JSON, output) of compare or repair --json.
sub run_json {
    my (@args) = @_;
    my $out = `idsyncctl -c '$config' @args --json 2>/dev/null`;
    my $code = $? >> 8;
    my $json = eval { decode_json($out) } // {};
    return ($code, $json, $out);
}
sub compare { return run_json('compare', @_) }
# The differences as "state key" strings (keys in canonical JSON), sorted.
my $canonical = JSON::PP->new->canonical;
sub differences {
    my ($json) = @_;
    return [sort map { "$_->{state} " . $canonical->encode($_->{key}) } @{ $json->{differences} // [] }];
}
sub kept_hash { my ($n, $t) = @_; return query($n, "SELECT content_hash FROM idsync.sync_info('$t')") }
sub true_hash {
    my ($n, $t) = @_;
    return query($n, "SELECT lpad(to_hex(hash1), 16, '0') || lpad(to_hex(hash2), 16, '0') FROM idsync.table_hash('$t')");
}

# 1. Equal content: the rows are hashed afresh (the kept hashes cannot see changes made behind
# idsync's back), but the top level's buckets are equal and no row is read.
for my $t (qw(item fact owner pet)) {
    my ($code, $json, $out) = compare("public.$t", 'b');
    is($code, 0, "compare $t, equal content: exit 0") or diag($out);
    is_deeply($json->{differences}, [], "compare $t: no differences");
    is_deeply($json->{levels}, [8], "compare $t: only the top level of 256 buckets");
    ok($json->{rows_read} <= 2 + 2 * 256, "compare $t: reads the kept states and the buckets, no row ($json->{rows_read})");
    ok(!$json->{stale_here} && !$json->{stale_there}, "compare $t: no stale kept hash");
    note("$t equal: rows_read $json->{rows_read}, round_trips $json->{round_trips}");
}

# 2. Changes behind idsync's back on b, normal changes on a.
query('b', q{
    ALTER TABLE item DISABLE TRIGGER USER;
    UPDATE item SET value = -value WHERE name IN ('k10', 'k20', 'k30');
    DELETE FROM item WHERE name IN ('k40', 'k50');
    INSERT INTO item (name, value, idsync_version) VALUES ('only_b', 1, 1000);
    ALTER TABLE item ENABLE TRIGGER USER;
    ALTER TABLE pet DISABLE TRIGGER USER;
    UPDATE pet SET name = 'renamed' WHERE name = 'p1' AND owner_id = (SELECT id FROM owner WHERE name = 'o7');
    ALTER TABLE pet ENABLE TRIGGER USER;
    ALTER TABLE owner DISABLE TRIGGER USER;
    INSERT INTO owner (name, idsync_version) VALUES ('o51', 1000);
    ALTER TABLE owner ENABLE TRIGGER USER;
    ALTER TABLE fact DISABLE TRIGGER USER;
    DELETE FROM fact WHERE n = 77;
    ALTER TABLE fact ENABLE TRIGGER USER;
    INSERT INTO fact (name, n) VALUES ('fb', 1);
});
query('a', q{
    DELETE FROM item WHERE name = 'k60';
    INSERT INTO item (name, value) VALUES ('only_a', 2);
    INSERT INTO fact (name, n) VALUES ('fa', 1);
});
is(query('a', q{SELECT count(*) FROM idsync.tombstones WHERE relid = 'item'::regclass AND key ->> 'name' = 'k60'}),
   '1', 'the delete on a left a tombstone');

my ($code, $json, $out) = compare('public.item', 'b');
is($code, 1, 'compare item: exit 1 when rows differ') or diag($out);
is_deeply(differences($json), [sort
    (map({ qq{different {"name":"$_"}} } qw(k10 k20 k30 k60)),
     qq{missing_here {"name":"only_b"}},
     map({ qq{missing_there {"name":"$_"}} } qw(k40 k50 only_a)))],
    'compare item: the rows updated on b and the tombstone on a differ, the rows deleted on b and '
    . 'the new row on a are missing there, the row inserted on b is missing here') or diag($out);
my %item_diff = map { $_->{key}{name} => $_ } @{ $json->{differences} };
is($item_diff{k10}{here}{value}, 10, 'compare --json: the row here');
is($item_diff{k10}{there}{value}, -10, 'compare --json: the row there');
ok($item_diff{k60}{here}{idsync_deleted}, 'compare --json: the tombstone here');
is($item_diff{k60}{there}{value}, 60, 'compare --json: the live row there');
ok(!defined $item_diff{only_b}{here} && defined $item_diff{only_b}{there}, 'compare --json: missing here is null here');
is($json->{table}, 'public.item', 'compare --json: the table');
is($json->{peer}, 'b', 'compare --json: the peer');
ok($json->{stale_there}, "compare: b's kept content hash is stale");
ok(!$json->{stale_here}, "compare: a's kept content hash is not");
ok($json->{rows_read} > 0 && $json->{rows_read} < 2500,
   "compare item: reads less than half the table ($json->{rows_read} rows)");
ok($json->{round_trips} <= 10, "compare item: few round trips ($json->{round_trips})");
note("item: rows_read $json->{rows_read}, round_trips $json->{round_trips}, levels @{ $json->{levels} // [] }");

($code, $json, $out) = compare('public.fact', 'b');
is($code, 1, 'compare fact: exit 1') or diag($out);
is_deeply(differences($json), [sort
    qq{missing_here {"n":1,"name":"fb"}}, qq{missing_there {"n":1,"name":"fa"}}, qq{missing_there {"n":77,"name":"f27"}}],
    'compare fact: the fact lost on b and the new one on a are missing there, the new one on b missing here')
    or diag($out);
note("fact: rows_read $json->{rows_read}, round_trips $json->{round_trips}");

($code, $json, $out) = compare('public.pet', 'b');
is($code, 1, 'compare pet: exit 1') or diag($out);
is_deeply(differences($json), [
    qq{missing_here {"name":"renamed","owner_id":{"name":"o7"}}},
    qq{missing_there {"name":"p1","owner_id":{"name":"o7"}}}],
    "compare pet: by natural keys, the owner's name nested, whatever the ids") or diag($out);
note("pet: rows_read $json->{rows_read}, round_trips $json->{round_trips}");

# Only b's rows changed, the kept hashes are still equal: the rows are compared all the same.
is(kept_hash('b', 'owner'), kept_hash('a', 'owner'), 'owner: the kept hashes did not see the owner added on b');
($code, $json, $out) = compare('public.owner', 'b');
is($code, 1, 'compare owner: exit 1') or diag($out);
is_deeply(differences($json), [qq{missing_here {"name":"o51"}}], 'compare owner: the owner added on b is missing here')
    or diag($out);
ok($json->{stale_there} && !$json->{stale_here}, "compare owner: b's kept hash is stale");

# 3. Repair, as administrators on both nodes.
my %before = map { $_ => query('a', "SELECT value || '/' || idsync_version FROM item WHERE name = '$_'") } qw(k10 k20 k30);
for my $t (qw(item fact owner pet)) {
    ($code, $json, $out) = run_json($admin, 'repair', "public.$t", 'b');
    is($code, 0, "repair $t: exit 0") or diag($out);
    is_deeply($json->{differences}, [], "repair $t: no differences remain");
    ok(!$json->{stale_here} && !$json->{stale_there}, "repair $t: no stale kept hash remains");
}
for my $t (qw(item fact owner pet)) {
    ($code, $json, $out) = compare("public.$t", 'b');
    is($code, 0, "compare $t after the repair: exit 0") or diag($out);
    is_deeply($json->{differences}, [], "compare $t after the repair: no differences");
    my $kept = kept_hash('a', $t);
    is(kept_hash('b', $t), $kept, "$t: the kept content hashes of a and b are equal");
    is(true_hash('a', $t), $kept, "$t: a's kept content hash is its recomputation");
    is(true_hash('b', $t), kept_hash('b', $t), "$t: b's kept content hash is its recomputation");
}

# The repaired rows, by the lww rule.
for my $k (qw(k10 k20 k30)) {
    my $sql = "SELECT value || '/' || idsync_version FROM item WHERE name = '$k'";
    my $on_a = query('a', $sql);
    is(query('b', $sql), $on_a, "$k: the same row on a and b after the tie");
    ok($on_a eq $before{$k} || $on_a eq "-$before{$k}", "$k: one of the two rows won ($on_a)");
}
is(query('b', q{SELECT string_agg(name || '=' || value || '/' || idsync_version, ',' ORDER BY name) FROM item WHERE name IN ('k40', 'k50')}),
   'k40=40/1000,k50=50/1000', 'the rows deleted on b behind idsync\'s back are back on b');
is(query('b', q{SELECT count(*) FROM item WHERE name = 'k60'}), '0', 'the row deleted on a is gone from b');
is(query('a', q{SELECT count(*) FROM item WHERE name = 'k60'}), '0', 'and stays deleted on a');
is(query('b', q{SELECT version FROM idsync.tombstones WHERE relid = 'item'::regclass AND key ->> 'name' = 'k60'}),
   query('a', q{SELECT version FROM idsync.tombstones WHERE relid = 'item'::regclass AND key ->> 'name' = 'k60'}),
   'its tombstone is on b, with its version');
for my $n (qw(a b)) {
    is(query($n, q{SELECT string_agg(name || '=' || value, ',' ORDER BY name) FROM item WHERE name LIKE 'only%'}),
       'only_a=2,only_b=1', "$n: the new items of both nodes");
    is(query($n, q{SELECT string_agg(name || '/' || n, ',' ORDER BY name, n) FROM fact WHERE (name, n) IN (('fa', 1), ('fb', 1), ('f27', 77))}),
       'f27/77,fa/1,fb/1', "$n: the facts of both nodes");
    is(query($n, q{SELECT string_agg(p.name, ',' ORDER BY p.name) FROM pet p JOIN owner o ON o.id = p.owner_id WHERE o.name = 'o7'}),
       'p1,p2,p3,p4,renamed', "$n: o7's pets, the renamed one added where it was missing, p1 back on b");
    is(query($n, q{SELECT count(*) FROM owner WHERE name = 'o51'}), '1', "$n: the owner added on b");
    is(query($n, 'SELECT count(*) FROM item'), '5001', "$n: 5,001 items (one deleted, two added)");
    is(query($n, 'SELECT count(*) FROM idsync.rejects'), '0', "$n: nothing parked");
}

# 4. Usage errors.
($code) = ctl('compare', 'public.item', 'nosuch');
is($code, 2, 'compare with an unknown peer: exit 2');
($code) = ctl($admin, 'repair', 'public.item', 'nosuch');
is($code, 2, 'repair with an unknown peer: exit 2');
($code) = ctl('compare', 'public.item');
is($code, 2, 'compare without a peer: exit 2');

done_testing();
