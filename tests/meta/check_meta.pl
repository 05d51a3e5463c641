#!/usr/bin/perl
# Checks META.json against the PGXN Meta Spec 1.0.0 (http://pgxn.org/meta/spec.txt): required
# keys and their forms, and agreement with idsync.control and the SQL scripts. Core Perl only.
use strict;
use warnings;
use JSON::PP;

my ($meta_path, $control_path) = @ARGV;
my @errors;
sub fail { push @errors, @_ }

open my $fh, '<', $meta_path or die "$meta_path: $!";
my $meta = eval { decode_json(do { local $/; <$fh> }) };
fail("META.json is not valid JSON: $@") unless $meta;
$meta //= {};

my $semver = qr/^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z-]+)?$/;
my %licenses = map { $_ => 1 } qw(agpl_3 apache_1_1 apache_2_0 artistic_1 artistic_2 bsd
  freebsd gfdl_1_2 gfdl_1_3 gpl_1 gpl_2 gpl_3 lgpl_2_1 lgpl_3_0 mit mozilla_1_0 mozilla_1_1
  openssl perl_5 postgresql qpl_1_0 ssleay sun zlib open_source restricted unrestricted unknown);

for my $key (qw(name version abstract maintainer license provides meta-spec)) {
    fail("required key \"$key\" is missing") unless exists $meta->{$key};
}
fail("name must be at least two characters of letters, digits, - or _")
  unless ($meta->{name} // '') =~ /^[A-Za-z0-9_-]{2,}$/;
fail("version \"" . ($meta->{version} // '') . "\" is not a semantic version")
  unless ($meta->{version} // '') =~ $semver;
fail("abstract must be a non-empty string") unless ref(\($meta->{abstract} // '')) eq 'SCALAR' && length($meta->{abstract} // '');
my $maintainer = $meta->{maintainer};
fail("maintainer must be a string or a non-empty list of strings")
  unless defined $maintainer && (!ref $maintainer || (ref $maintainer eq 'ARRAY' && @$maintainer && !grep { ref } @$maintainer));
my $license = $meta->{license};
my @license = ref $license eq 'ARRAY' ? @$license : ref $license eq 'HASH' ? () : ($license // '');
fail("license \"$_\" is not one of the spec's license strings") for grep { !$licenses{$_} } @license;
fail("meta-spec version must be 1.0.0") unless (($meta->{'meta-spec'} // {})->{version} // '') eq '1.0.0';
fail("release_status must be stable, testing or unstable")
  if exists $meta->{release_status} && $meta->{release_status} !~ /^(stable|testing|unstable)$/;
my $provides = $meta->{provides} // {};
fail("provides must name at least one extension") unless ref $provides eq 'HASH' && %$provides;
for my $ext (sort keys %$provides) {
    my $p = $provides->{$ext};
    fail("provides.$ext needs file and version") unless ref $p eq 'HASH' && $p->{file} && $p->{version};
    next unless ref $p eq 'HASH';
    fail("provides.$ext.version is not a semantic version") unless ($p->{version} // '') =~ $semver;
    fail("provides.$ext.file $p->{file} does not exist") if $p->{file} && !-f $p->{file};
}
if (my $prereqs = $meta->{prereqs}) {
    for my $phase (keys %$prereqs) {
        fail("prereqs phase \"$phase\" is unknown") unless $phase =~ /^(configure|build|test|runtime|develop)$/;
        for my $rel (keys %{ $prereqs->{$phase} }) {
            fail("prereqs relationship \"$rel\" is unknown") unless $rel =~ /^(requires|recommends|suggests|conflicts)$/;
        }
    }
}

# Agreement with the extension itself.
open my $cf, '<', $control_path or die "$control_path: $!";
my ($default) = map { /^default_version\s*=\s*'([^']+)'/ ? $1 : () } <$cf>;
fail("idsync.control has no default_version") unless $default;
if ($default) {
    fail("META.json version $meta->{version} differs from idsync.control's $default")
      unless ($meta->{version} // '') eq $default;
    fail("provides.idsync.version differs from idsync.control's $default")
      unless (($provides->{idsync} // {})->{version} // '') eq $default;
    fail("no install or upgrade script ends in $default") unless glob("sql/idsync--*$default.sql");
}

if (@errors) {
    print "META.json: $_\n" for @errors;
    exit 1;
}
print "META.json: valid (PGXN Meta Spec 1.0.0), version $meta->{version} everywhere\n";
