# Bulk copies in binary COPY: a table whose columns are all of built-in types goes in binary,
# straight into an empty table and through the staging table into one that has rows; a table
# with a type created on each node (an enum, an array of it) goes as text, since binary input
# checks type OIDs, which differ between nodes. Either way every value arrives exactly:
# infinities, NaN, the extremes of floats, text with tabs, newlines and backslashes, bytes with
# zeros, NULLs inside arrays, jsonb, intervals, addresses.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IdsyncDaemon;

my ($a, $b) = map { new_node($_) } qw(a b);
for my $node ($a, $b) {
    $node->safe_psql('postgres', q{
        CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
        CREATE TABLE measure (id bigserial PRIMARY KEY, k text NOT NULL UNIQUE, at timestamptz,
            amount numeric(20,6), ratio float8, small real, tags text[], doc jsonb, flag boolean,
            day date, span interval, addr inet, uid uuid, raw bytea, note text);
        CREATE TABLE measure_staged (LIKE measure INCLUDING ALL);
        CREATE TABLE moods (id bigserial PRIMARY KEY, k text NOT NULL UNIQUE, m mood, ms mood[]);
        SELECT idsync.replicate('measure', '{k}'), idsync.replicate('measure_staged', '{k}'),
               idsync.replicate('moods', '{k}');
    });
}
my $values = q{
    SELECT 'a' || g,
           CASE g % 5 WHEN 0 THEN 'infinity' WHEN 1 THEN '-infinity' WHEN 2 THEN NULL
                ELSE '2026-11-30 12:00:00.123456+00'::timestamptz + g * interval '1.000001 s' END,
           CASE WHEN g % 7 = 0 THEN 'NaN'::numeric ELSE g * 1234.567891 - 1e9 END,
           CASE g % 6 WHEN 0 THEN 'NaN' WHEN 1 THEN 'Infinity' WHEN 2 THEN '-Infinity'
                WHEN 3 THEN 1e-307 ELSE g / 3.0 END,
           (g / 7.0)::real,
           CASE WHEN g % 4 = 0 THEN NULL ELSE ARRAY['x' || g, NULL, E'tab\there'] END,
           jsonb_build_object('g', g, 'nested', jsonb_build_array(g, 'two', NULL, 1.5)),
           CASE g % 3 WHEN 0 THEN NULL ELSE g % 2 = 0 END,
           CASE WHEN g % 9 = 0 THEN 'infinity'::date ELSE '2000-01-01'::date + g END,
           make_interval(months => g % 13, days => g % 31, secs => g / 1000.0),
           ('10.' || (g % 250) || '.0.1/24')::inet,
           md5(g::text)::uuid,
           decode(lpad(to_hex(g), 8, '0') || '00ff', 'hex'),
           E'line\nbreak \\\\ back\tslash ' || repeat('é', g % 5)
    FROM generate_series(1, 3000) g
};
$a->safe_psql('postgres', qq{
    INSERT INTO measure (k, at, amount, ratio, small, tags, doc, flag, day, span, addr, uid, raw, note) $values;
    INSERT INTO measure_staged (k, at, amount, ratio, small, tags, doc, flag, day, span, addr, uid, raw, note) $values;
    INSERT INTO moods (k, m, ms) SELECT 'a' || g, (enum_range(NULL::mood))[g % 3 + 1],
        ARRAY[(enum_range(NULL::mood))[g % 3 + 1], NULL, 'happy'] FROM generate_series(1, 3000) g;
});
# b's own rows: the staging path for measure_staged.
$b->safe_psql('postgres', q{INSERT INTO measure_staged (k, note) VALUES ('b1', 'from b'), ('b2', NULL)});

my $config = write_config('a_to_b', $a, [['b', dsn($b)]]);
my ($status, $log) = run_once('copy', $config);
is($status, 0, 'bulk pass: exit status 0');
for my $table (qw(measure measure_staged moods)) {
    like($log, qr/public\.\Q$table\E to b: bulk/, "$table goes in bulk mode");
}
note(join "\n", $log =~ /^.*bulk copy of .*$/mg);

sub rows_of {
    my ($node, $table) = @_;
    my $columns = $table eq 'moods' ? 'k, m, ms'
        : 'k, at, amount, ratio, small, tags, doc, flag, day, span, addr, uid, raw, note';
    return $node->safe_psql('postgres',
        "SELECT $columns FROM $table WHERE k LIKE 'a%' ORDER BY k");
}
for my $table (qw(measure measure_staged moods)) {
    my $here = rows_of($a, $table);
    is(rows_of($b, $table), $here, "$table: every value arrived exactly");
}
is($b->safe_psql('postgres', q{SELECT count(*) FROM measure_staged}), '3002',
    "measure_staged: a's rows and b's own");
is($b->safe_psql('postgres', q{SELECT idsync.table_hash('measure')}),
    $a->safe_psql('postgres', q{SELECT idsync.table_hash('measure')}), 'measure: equal content hashes');

done_testing();
