# Helpers for the idsyncd integration tests: PostgreSQL clusters with idsync and two registered
# tables, configuration files, idsyncd processes, and waiting for convergence.
package IdsyncDaemon;
use strict;
use warnings;
use Exporter 'import';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(sleep time);
use HTTP::Tiny;

our @EXPORT = qw(new_node dsn write_config start_daemon stop_daemon kill_daemon run_once
  wait_until snapshot converged load_rows log_of metrics_of next_port);

my $dir = PostgreSQL::Test::Utils::tempdir();

# A cluster with idsync, `item` (lww, natural key name) and `fact` (insert_only, key name, n).
sub new_node {
    my ($name) = @_;
    my $node = PostgreSQL::Test::Cluster->new($name);
    $node->init;
    $node->append_conf('postgresql.conf', "fsync = off\nlog_min_messages = warning");
    $node->start;
    # The OS user may be named idsync: "$user" in search_path would pick the extension's schema.
    $node->safe_psql('postgres', 'ALTER DATABASE postgres SET search_path = public');
    $node->safe_psql('postgres', q{
        CREATE EXTENSION idsync;
        CREATE TABLE item (id bigserial PRIMARY KEY, name text NOT NULL UNIQUE, value int);
        SELECT idsync.replicate('item', '{name}', 'lww');
        CREATE TABLE fact (id bigserial PRIMARY KEY, name text NOT NULL, n int NOT NULL,
                           UNIQUE (name, n));
        SELECT idsync.replicate('fact', '{name,n}');
    });
    return $node;
}

sub dsn {
    my ($node) = @_;
    return sprintf('host=%s port=%d dbname=postgres', $node->host, $node->port);
}

my $port = 20000 + $$ % 20000;
sub next_port { return $port++ }

# write_config($name, $local_node, [[peer name, dsn], ...], key => value, ...): the file's path.
sub write_config {
    my ($name, $local, $peers, %settings) = @_;
    my $path = "$dir/$name.ini";
    my $text = "[idsyncd]\nlocal = " . dsn($local) . "\n";
    $settings{interval} //= 0.5;
    $settings{metrics_listen} //= 'off';
    $text .= "$_ = $settings{$_}\n" for sort keys %settings;
    $text .= "\n[peer $_->[0]]\ndsn = $_->[1]\n" for @$peers;
    open my $fh, '>', $path or die "$path: $!";
    print $fh $text;
    close $fh;
    chmod 0600, $path;    # it may hold a password: idsyncd refuses it open to others
    return $path;
}

sub log_of { my ($name) = @_; return "$dir/$name.log" }

# Starts `idsyncd -c FILE --verbose` with its log in log_of($name); returns the pid.
sub start_daemon {
    my ($name, $config, @args) = @_;
    my $pid = fork();
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        open STDOUT, '>>', log_of($name) or die;
        open STDERR, '>>', log_of($name) or die;
        exec('idsyncd', '-c', $config, '--verbose', @args) or die "exec idsyncd: $!";
    }
    return $pid;
}

# SIGTERM, then the exit status (dies if the daemon does not stop within 20 s).
sub stop_daemon {
    my ($pid) = @_;
    kill 'TERM', $pid;
    my $deadline = time() + 20;
    while (time() < $deadline) {
        return $? >> 8 if waitpid($pid, 1) == $pid;    # 1 = WNOHANG
        sleep 0.05;
    }
    kill 'KILL', $pid;
    waitpid($pid, 0);
    return -1;
}

sub kill_daemon {
    my ($pid) = @_;
    kill 'KILL', $pid;
    waitpid($pid, 0);
}

# idsyncd -c FILE --once: (exit status, log text).
sub run_once {
    my ($name, $config) = @_;
    my $log = log_of($name);
    system("idsyncd -c '$config' --once --verbose >>'$log' 2>&1");
    my $status = $? >> 8;
    return ($status, slurp_file($log));
}

sub wait_until {
    my ($what, $check, $timeout) = @_;
    my $deadline = time() + ($timeout // 60);
    while (time() < $deadline) {
        return 1 if $check->();
        sleep 0.2;
    }
    diag("timed out waiting for: $what");
    return 0;
}

# Everything a node holds that must be identical everywhere.
sub snapshot {
    my ($node) = @_;
    return $node->safe_psql('postgres', q{
        SELECT (SELECT count(*) || ' ' || coalesce(string_agg(name || '=' || coalesce(value::text, '-'),
                        ',' ORDER BY name), '')
                FROM item)
            || ' | deleted ' || (SELECT coalesce(string_agg(t.key ->> 'name', ',' ORDER BY t.key ->> 'name'), '')
                FROM idsync.tombstones t WHERE t.relid = 'item'::regclass)
            || ' | ' || (SELECT count(*) || ' ' || coalesce(string_agg(name || '/' || n, ',' ORDER BY name, n), '')
                FROM fact)
            || ' | ' || (SELECT content_hash FROM idsync.sync_info('item'))
            || ' ' || (SELECT content_hash FROM idsync.sync_info('fact'))
    });
}

sub converged {
    my (@nodes) = @_;
    my $first = snapshot($nodes[0]);
    return !grep { snapshot($_) ne $first } @nodes[1 .. $#nodes];
}

# $count rows into both tables, named with $prefix, in one transaction.
sub load_rows {
    my ($node, $prefix, $count) = @_;
    $node->safe_psql('postgres', qq{
        INSERT INTO item (name, value) SELECT '$prefix' || g, g FROM generate_series(1, $count) g;
        INSERT INTO fact (name, n) SELECT '$prefix' || (g % 97), g FROM generate_series(1, $count) g;
    });
}

sub metrics_of {
    my ($port) = @_;
    my $response = HTTP::Tiny->new(timeout => 5)->get("http://127.0.0.1:$port/metrics");
    return $response->{success} ? $response->{content} : '';
}

# On a failed run, the daemons' logs go into the test's log directory (kept by the TAP harness)
# and their last lines into the output, since the temporary directory is removed at exit.
END {
    for my $log (Test::More->builder->is_passing ? () : sort glob("$dir/*.log")) {
        my ($base) = $log =~ m{([^/]+)$};
        my $kept = "$PostgreSQL::Test::Utils::log_path/idsyncd_$base";
        system('cp', $log, $kept);
        my @lines = split /\n/, slurp_file($log);
        splice(@lines, 0, @lines - 40) if @lines > 40;
        diag("--- last lines of $base (all of it in $kept)\n" . join("\n", @lines));
    }
}

1;
