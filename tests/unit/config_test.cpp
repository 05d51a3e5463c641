// idsyncd's configuration file: values, defaults, and every error with its line.
#include "config.hpp"
#include "suites.hpp"

#include <cstdio>
#include <cstdlib>
#include <string>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

namespace {

struct Parsed {
    bool ok;
    Config config;
    std::vector<ConfigError> errors;
};

Parsed parse(const std::string &text)
{
    Parsed out;
    out.ok = parse_config(text, "test.ini", out.config, out.errors);
    return out;
}

// Every error as "file:line: message", one a line, for failure messages.
std::string all_errors(const Parsed &parsed)
{
    std::string out;
    for (const ConfigError &error : parsed.errors)
        out += error.str() + "\n";
    return out;
}

// Whether some error, as "file:line: message", starts with `prefix`.
bool has_error(const Parsed &parsed, const std::string &prefix)
{
    for (const ConfigError &error : parsed.errors)
        if (error.str().rfind(prefix, 0) == 0)
            return true;
    return false;
}

bool any_error_contains(const Parsed &parsed, const std::string &text)
{
    for (const ConfigError &error : parsed.errors)
        if (error.str().find(text) != std::string::npos)
            return true;
    return false;
}

// Check's string macros keep pointers: compare std::strings, not c_str() of temporaries.
#define assert_text(actual, expected)                                                              \
    do {                                                                                           \
        std::string got = (actual);                                                                \
        std::string want = (expected);                                                             \
        ck_assert_msg(got == want, "got \"%s\", expected \"%s\"", got.c_str(), want.c_str());      \
    } while (0)

#define assert_error(parsed, prefix)                                                               \
    ck_assert_msg(has_error((parsed), (prefix)), "no error starting \"%s\" in:\n%s",               \
                  std::string(prefix).c_str(), all_errors(parsed).c_str())

#define assert_valid(parsed) ck_assert_msg((parsed).ok, "errors:\n%s", all_errors(parsed).c_str())

const std::string local = "[idsyncd]\nlocal = host=127.0.0.1 dbname=app\n";

} // namespace

START_TEST(full_file_reads_every_value)
{
    Parsed p = parse("; idsyncd\n"
                     "[idsyncd]\n"
                     "local = host=127.0.0.1 port=5432 dbname=app user=idsync\n"
                     "interval = 2.5\n"
                     "per_diff = 10\n"
                     "diff_bytes = 65536\n"
                     "max_diffs = 3\n"
                     "bulk_ratio = 0.25\n"
                     "concurrency = 2\n"
                     "node_timeout = 4\n"
                     "conn_timeout = 0.25\n"
                     "backoff_base = 0.5\n"
                     "backoff_max = 8\n"
                     "progress_interval = 1\n"
                     "metrics_listen = [::1]:9999      ; or off\n"
                     "\n"
                     "[peer b]\n"
                     "dsn = host=10.0.0.2 dbname=app user=idsync\n"
                     "[peer node-c.east_1]\n"
                     "dsn = postgresql://idsync@10.0.0.3/app\n");
    assert_valid(p);
    assert_text(p.config.local_dsn, "host=127.0.0.1 port=5432 dbname=app user=idsync");
    ck_assert_double_eq(p.config.interval, 2.5);
    ck_assert_int_eq(p.config.per_diff, 10);
    ck_assert_int_eq(p.config.diff_bytes, 65536);
    ck_assert_int_eq(p.config.max_diffs, 3);
    ck_assert_double_eq(p.config.bulk_ratio, 0.25);
    ck_assert_int_eq(p.config.concurrency, 2);
    ck_assert_double_eq(p.config.node_timeout, 4);
    ck_assert_double_eq(p.config.conn_timeout, 0.25);
    ck_assert_double_eq(p.config.backoff_base, 0.5);
    ck_assert_double_eq(p.config.backoff_max, 8);
    ck_assert_double_eq(p.config.progress_interval, 1);
    ck_assert(p.config.metrics_listen.enabled);
    assert_text(p.config.metrics_listen.host, "::1");
    ck_assert_int_eq(p.config.metrics_listen.port, 9999);
    ck_assert_int_eq(p.config.peers.size(), 2);
    assert_text(p.config.peers[0].name, "b");
    assert_text(p.config.peers[0].dsn, "host=10.0.0.2 dbname=app user=idsync");
    ck_assert_int_eq(p.config.peers[0].line, 17);
    assert_text(p.config.peers[1].name, "node-c.east_1");
    assert_text(p.config.peers[1].dsn, "postgresql://idsync@10.0.0.3/app");
    ck_assert_int_eq(p.config.peers[1].line, 19);
}
END_TEST

START_TEST(only_local_gives_the_defaults_and_no_peers)
{
    Parsed p = parse(local);
    assert_valid(p);
    ck_assert_int_eq(p.errors.size(), 0);
    ck_assert_double_eq(p.config.interval, 30);
    ck_assert_int_eq(p.config.per_diff, 1000);
    ck_assert_int_eq(p.config.diff_bytes, 8 << 20);
    ck_assert_int_eq(p.config.max_diffs, 100);
    ck_assert_double_eq(p.config.bulk_ratio, 0.5);
    ck_assert_int_eq(p.config.concurrency, 8);
    ck_assert_double_eq(p.config.node_timeout, 10);
    ck_assert_double_eq(p.config.conn_timeout, 0.5);
    ck_assert_double_eq(p.config.backoff_base, 1);
    ck_assert_double_eq(p.config.backoff_max, 300);
    ck_assert_double_eq(p.config.progress_interval, 5);
    ck_assert(p.config.metrics_listen.enabled);
    assert_text(p.config.metrics_listen.host, "127.0.0.1");
    ck_assert_int_eq(p.config.metrics_listen.port, 9187);
    ck_assert_int_eq(p.config.peers.size(), 0);
}
END_TEST

START_TEST(windows_line_ends_and_a_byte_order_mark_are_read)
{
    Parsed p = parse("\xEF\xBB\xBF[idsyncd]\r\nlocal = dbname=app\r\ninterval = 7\r\n");
    assert_valid(p);
    assert_text(p.config.local_dsn, "dbname=app");
    ck_assert_double_eq(p.config.interval, 7);
}
END_TEST

START_TEST(unknown_setting_names_its_line_and_the_known_ones)
{
    Parsed p = parse(local + "intervall = 5\n[peer b]\ndsn = host=b\nhost = b\n");
    ck_assert(!p.ok);
    ck_assert_int_eq(p.errors.size(), 2);
    assert_text(p.errors[0].str(),
                "test.ini:3: unknown setting \"intervall\" in [idsyncd] (known: local, "
                "interval, per_diff, diff_bytes, max_diffs, bulk_ratio, concurrency, node_timeout, "
                "conn_timeout, backoff_base, backoff_max, progress_interval, metrics_listen)");
    assert_text(p.errors[1].str(), "test.ini:6: unknown setting \"host\" in [peer b] (known: dsn)");
}
END_TEST

START_TEST(unknown_section_and_setting_outside_any_section)
{
    Parsed p = parse("stray = 1\n" + local + "[peers]\ndsn = host=x\n");
    ck_assert(!p.ok);
    assert_error(p, "test.ini:1: \"stray\" is outside any section");
    assert_error(p, "test.ini:4: unknown section [peers] (expected [idsyncd] or [peer NAME])");
    ck_assert_int_eq(p.errors.size(), 2); // the section's own settings are not reported again
}
END_TEST

START_TEST(duplicate_peer_setting_and_section)
{
    Parsed p = parse(local + "interval = 1\ninterval = 2\n[peer b]\ndsn = host=x\n[peer b]\n"
                             "dsn = host=y\n[idsyncd]\nconcurrency = 2\n");
    ck_assert(!p.ok);
    assert_error(p, "test.ini:4: duplicate setting \"interval\" (first at line 3)");
    assert_error(p, "test.ini:7: duplicate peer \"b\" (first at line 5)");
    assert_error(p, "test.ini:9: duplicate section [idsyncd] (first at line 1)");
    ck_assert_int_eq(p.errors.size(), 3);
    ck_assert_int_eq(p.config.peers.size(), 1);
    assert_text(p.config.peers[0].dsn, "host=x");
}
END_TEST

START_TEST(bad_numbers_each_reported_at_their_line)
{
    Parsed p = parse(local + "interval = abc\nper_diff = 2.5\nmax_diffs = 12x\n"
                             "bulk_ratio = half\nconcurrency = \nnode_timeout = nan\n"
                             "conn_timeout = inf\nbackoff_base = 1e999\nprogress_interval = 5s\n"
                             "diff_bytes = 8MB\n");
    ck_assert(!p.ok);
    assert_error(p, "test.ini:3: interval must be a number of seconds > 0 (got \"abc\")");
    assert_error(p, "test.ini:4: per_diff must be a whole number from 1 to 1000000 (got \"2.5\")");
    assert_error(p, "test.ini:5: max_diffs must be a whole number from 1 to 1000000");
    assert_error(p, "test.ini:6: bulk_ratio must be a number from 0 to 1 (got \"half\")");
    assert_error(p, "test.ini:7: concurrency must be a whole number from 1 to 1024 (got \"\")");
    assert_error(p, "test.ini:8: node_timeout must be a number of seconds > 0");
    assert_error(p, "test.ini:9: conn_timeout must be a number of seconds > 0");
    assert_error(p, "test.ini:10: backoff_base must be a number of seconds > 0");
    assert_error(p, "test.ini:11: progress_interval must be a number of seconds > 0");
    assert_error(p, "test.ini:12: diff_bytes must be a whole number from 1 to 67108864");
    ck_assert_int_eq(p.errors.size(), 10);
    ck_assert_double_eq(p.config.interval, 30); // a bad value leaves the default
}
END_TEST

START_TEST(out_of_range_numbers_each_reported_at_their_line)
{
    Parsed p = parse(local + "interval = 0\nper_diff = 0\nmax_diffs = 1000001\n"
                             "bulk_ratio = 1.5\nconcurrency = 1025\nnode_timeout = -1\n"
                             "conn_timeout = 0\nbackoff_base = -0.5\nprogress_interval = 0\n"
                             "diff_bytes = 0\n");
    ck_assert(!p.ok);
    assert_error(p, "test.ini:3: interval must be a number of seconds > 0 (got \"0\")");
    assert_error(p, "test.ini:4: per_diff must be a whole number from 1 to 1000000 (got \"0\")");
    assert_error(p, "test.ini:5: max_diffs must be a whole number from 1 to 1000000");
    assert_error(p, "test.ini:6: bulk_ratio must be a number from 0 to 1 (got \"1.5\")");
    assert_error(p, "test.ini:7: concurrency must be a whole number from 1 to 1024");
    assert_error(p, "test.ini:8: node_timeout must be a number of seconds > 0 (got \"-1\")");
    assert_error(p, "test.ini:9: conn_timeout must be a number of seconds > 0");
    assert_error(p, "test.ini:10: backoff_base must be a number of seconds > 0");
    assert_error(p, "test.ini:11: progress_interval must be a number of seconds > 0");
    assert_error(p, "test.ini:12: diff_bytes must be a whole number from 1 to 67108864");
    ck_assert_int_eq(p.errors.size(), 10);
}
END_TEST

START_TEST(range_limits_themselves_are_accepted)
{
    Parsed p = parse(local + "bulk_ratio = 0\nper_diff = 1000000\nmax_diffs = 1\n"
                             "concurrency = 1024\nbackoff_base = 5\nbackoff_max = 5\n");
    assert_valid(p);
    ck_assert_double_eq(p.config.bulk_ratio, 0);
    ck_assert_int_eq(p.config.per_diff, 1000000);
    ck_assert_int_eq(p.config.concurrency, 1024);
    assert_valid(parse(local + "bulk_ratio = 1\n"));
}
END_TEST

START_TEST(backoff_max_below_base_at_its_line_or_line_0)
{
    Parsed p = parse(local + "backoff_base = 10\nbackoff_max = 5\n");
    ck_assert(!p.ok);
    assert_text(p.errors.at(0).str(),
                "test.ini:4: backoff_max must be at least backoff_base (got 5 < 10)");
    Parsed q = parse(local + "backoff_base = 600\n");
    ck_assert(!q.ok);
    assert_text(q.errors.at(0).str(),
                "test.ini: backoff_max must be at least backoff_base (got 300 < 600)");
}
END_TEST

START_TEST(bad_dsn_gives_libpq_reason_without_the_password)
{
    Parsed p = parse("[idsyncd]\nlocal = host=x password=secret bogus=1\n"
                     "[peer b]\ndsn = host=x password=sec ret\n"
                     "[peer c]\ndsn = postgresql://u:se%zzcret@h/db\n");
    ck_assert(!p.ok);
    assert_text(p.errors.at(0).str(), "test.ini:2: local is not a valid libpq connection "
                                      "string: invalid connection option \"bogus\"");
    assert_text(p.errors.at(1).str(), "test.ini:4: dsn of [peer b] is not a valid libpq "
                                      "connection string: missing \"=\" after \"(hidden)\" in "
                                      "connection info string");
    assert_error(p, "test.ini:6: dsn of [peer c] is not a valid libpq connection string: "
                    "invalid percent-encoded token: \"(hidden)\"");
    ck_assert_int_eq(p.errors.size(), 3);
    ck_assert(!any_error_contains(p, "secret"));
    ck_assert(!any_error_contains(p, "ret\""));
    ck_assert(!any_error_contains(p, "cret"));
    // A peer with an invalid dsn still has one: no "needs dsn" on top.
    ck_assert(!any_error_contains(p, "needs dsn"));
}
END_TEST

START_TEST(empty_values_are_errors)
{
    Parsed p = parse("[idsyncd]\nlocal =\nmetrics_listen =\n[peer b]\ndsn =\n");
    ck_assert(!p.ok);
    assert_error(p, "test.ini:2: local must not be empty");
    assert_error(p, "test.ini:3: metrics_listen must be host:port, [v6addr]:port or off "
                    "(got \"\")");
    assert_error(p, "test.ini:5: dsn of [peer b] must not be empty");
    ck_assert_int_eq(p.errors.size(), 3); // no "needs local" or "needs dsn" on top
}
END_TEST

START_TEST(missing_local_at_line_0_and_peer_without_dsn_at_its_section)
{
    Parsed p = parse("[idsyncd]\ninterval = 1\n[peer b]\n[peer c]\ndsn = host=c\n");
    ck_assert(!p.ok);
    assert_error(p, "test.ini: [idsyncd] needs local (the local database's libpq connection "
                    "string)");
    assert_error(p, "test.ini:3: [peer b] needs dsn");
    ck_assert_int_eq(p.errors.size(), 2);
    Parsed empty = parse("");
    ck_assert(!empty.ok);
    ck_assert_int_eq(empty.errors.size(), 1);
    ck_assert_int_eq(empty.errors[0].line, 0);
}
END_TEST

START_TEST(bad_peer_names_are_explained)
{
    Parsed p = parse(local + "[peer a b]\ndsn = host=x\n[peer a/b]\ndsn = host=x\n[peer ]\n");
    ck_assert(!p.ok);
    assert_error(p, "test.ini:3: peer name \"a b\" may hold only letters, digits, '_', '-' and "
                    "'.'");
    assert_error(p, "test.ini:5: peer name \"a/b\" may hold only");
    assert_error(p, "test.ini:7: [peer NAME] needs a name");
    ck_assert_int_eq(p.errors.size(), 3);
    ck_assert_int_eq(p.config.peers.size(), 0);
}
END_TEST

START_TEST(line_too_long_is_reported_once_at_its_line)
{
    std::string long_dsn = "host=x dbname=" + std::string(300, 'a');
    Parsed p = parse(local + "[peer b]\ndsn = " + long_dsn + "\ninterval = 1\nbad line\n");
    ck_assert(!p.ok);
    assert_text(p.errors.at(0).str(), "test.ini:4: line too long (at most 199 characters)");
    // Later lines keep their numbers; the long line's setting counts as given.
    assert_error(p, "test.ini:5: unknown setting \"interval\" in [peer b]");
    assert_error(p, "test.ini:6: cannot parse this line");
    ck_assert_int_eq(p.errors.size(), 3);
    // 199 characters still fit.
    std::string line = "dsn = host=x dbname=";
    line += std::string(199 - line.size(), 'a');
    assert_valid(parse(local + "[peer b]\n" + line + "\n"));
    assert_valid(parse(local + "[peer b]\n" + line)); // and at the very end of the text
}
END_TEST

START_TEST(unparsable_and_indented_lines_are_each_reported)
{
    Parsed p = parse(local + "just words\ninterval = 5\n    more words\n[peer b\ndsn = host=x\n"
                             "also words\n");
    ck_assert(!p.ok);
    assert_error(p, "test.ini:3: cannot parse this line (expected [section], name = value, "
                    "or a ; comment)");
    assert_error(p, "test.ini:5: indented line continues \"interval\" from line 4");
    assert_error(p, "test.ini:6: section header needs a closing ']'");
    assert_error(p, "test.ini:8: cannot parse this line");
    // Settings under a broken header are not filed under the section before it.
    ck_assert_int_eq(p.errors.size(), 4);
    ck_assert_double_eq(p.config.interval, 5);
}
END_TEST

START_TEST(listen_accepts_v4_hostname_v6_and_off)
{
    ListenAddress address;
    assert_text(parse_listen("127.0.0.1:9187", address), "");
    ck_assert(address.enabled);
    assert_text(address.host, "127.0.0.1");
    ck_assert_int_eq(address.port, 9187);
    assert_text(parse_listen("localhost:9000", address), "");
    assert_text(address.host, "localhost");
    ck_assert_int_eq(address.port, 9000);
    assert_text(parse_listen("[::1]:80", address), "");
    assert_text(address.host, "::1");
    ck_assert_int_eq(address.port, 80);
    assert_text(parse_listen("[::]:65535", address), "");
    ck_assert_int_eq(address.port, 65535);
    assert_text(parse_listen("off", address), "");
    ck_assert(!address.enabled);
    assert_text(parse_listen("0.0.0.0:1", address), "");
    ck_assert(address.enabled);
}
END_TEST

START_TEST(listen_rejects_bad_ports_and_shapes)
{
    ListenAddress address;
    assert_text(parse_listen("x", address),
                "metrics_listen must be host:port, [v6addr]:port or off (got \"x\")");
    assert_text(parse_listen("127.0.0.1:0", address),
                "metrics_listen port must be a number from 1 to 65535 (got \"127.0.0.1:0\")");
    ck_assert(!parse_listen("127.0.0.1:65536", address).empty());
    ck_assert(!parse_listen("127.0.0.1:http", address).empty());
    ck_assert(!parse_listen("127.0.0.1", address).empty());  // no port
    ck_assert(!parse_listen("127.0.0.1:", address).empty()); // empty port
    ck_assert(!parse_listen("[::1]", address).empty());
    ck_assert(!parse_listen("[::1]80", address).empty());
    ck_assert(!parse_listen("::1:80", address).empty()); // IPv6 needs brackets
    ck_assert(!parse_listen("[nonsense]:80", address).empty());
    ck_assert(!parse_listen(":80", address).empty());
    ck_assert(!parse_listen("999.1.1.1:80", address).empty());
    ck_assert(!parse_listen("a host:80", address).empty());
    ck_assert(!parse_listen("Off", address).empty());
    // A rejected value leaves the address as it was.
    ck_assert(address.enabled);
    assert_text(address.host, "127.0.0.1");
    ck_assert_int_eq(address.port, 9187);
}
END_TEST

START_TEST(describe_shows_endpoints_and_settings_never_a_password)
{
    Parsed p = parse("[idsyncd]\n"
                     "local = host=127.0.0.1 port=5432 dbname=app user=idsync password=topsecret\n"
                     "interval = 2.5\n"
                     "metrics_listen = [::1]:9999\n"
                     "[peer b]\n"
                     "dsn = postgresql://u:alsosecret@10.0.0.2/app\n"
                     "[peer c]\n"
                     "dsn = host=10.0.0.3 sslmode=require sslpassword=keysecret\n");
    assert_valid(p);
    std::string text = describe_config(p.config);
    ck_assert_msg(text.find("secret") == std::string::npos, "%s", text.c_str());
    ck_assert_msg(text.find("local: host=127.0.0.1 port=5432 dbname=app user=idsync (password "
                            "in DSN; prefer ~/.pgpass or PGPASSFILE)\n") != std::string::npos,
                  "%s", text.c_str());
    ck_assert_msg(text.find("peer b: host=10.0.0.2 dbname=app user=u (password in DSN") !=
                      std::string::npos,
                  "%s", text.c_str());
    ck_assert_msg(text.find("peer c: host=10.0.0.3\n") != std::string::npos, "%s", text.c_str());
    ck_assert(text.find("interval=2.5 per_diff=1000 max_diffs=100 diff_bytes=8388608") !=
              std::string::npos);
    ck_assert(text.find("backoff_max=300") != std::string::npos);
    ck_assert(text.find("metrics_listen=[::1]:9999") != std::string::npos);
}
END_TEST

START_TEST(describe_a_node_alone)
{
    Parsed p = parse("[idsyncd]\nlocal = dbname='my app'\nmetrics_listen = off\n");
    assert_valid(p);
    std::string text = describe_config(p.config);
    ck_assert_msg(text.find("local: dbname='my app'\n") != std::string::npos, "%s", text.c_str());
    ck_assert(text.find("no peers") != std::string::npos);
    ck_assert(text.find("metrics_listen=off") != std::string::npos);
    ck_assert(text.find("password") == std::string::npos);
}
END_TEST

START_TEST(error_str_with_and_without_a_line)
{
    assert_text((ConfigError{"f.ini", 7, "boom"}).str(), "f.ini:7: boom");
    assert_text((ConfigError{"f.ini", 0, "boom"}).str(), "f.ini: boom");
}
END_TEST

START_TEST(load_config_reads_a_file_and_sets_its_path)
{
    char path[] = "/tmp/idsyncd-config-test-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    std::string text = local + "interval = 3\n";
    ck_assert_int_eq(write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
    close(fd);
    Config config;
    std::vector<ConfigError> errors;
    bool ok = load_config(path, config, errors);
    unlink(path);
    ck_assert(ok);
    assert_text(config.path, path);
    ck_assert_double_eq(config.interval, 3);
}
END_TEST

START_TEST(load_config_reports_an_unreadable_file)
{
    Config config;
    std::vector<ConfigError> errors;
    ck_assert(!load_config("/nonexistent/idsyncd.ini", config, errors));
    ck_assert_int_eq(errors.size(), 1);
    assert_text(errors[0].str(),
                "/nonexistent/idsyncd.ini: cannot read: No such file or directory");
    errors.clear();
    ck_assert(!load_config("/tmp", config, errors));
    assert_text(errors.at(0).str(), "/tmp: cannot read: Is a directory");
}
END_TEST

// A file holding a password that group or others may open is refused, as libpq refuses such
// a .pgpass; without a password, or with mode 600, it loads.
START_TEST(load_config_refuses_a_password_others_can_read)
{
    char path[] = "/tmp/idsyncd-config-test-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    std::string text = "[idsyncd]\nlocal = dbname=a password=secret\n";
    ck_assert_int_eq(write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
    close(fd);
    Config config;
    std::vector<ConfigError> errors;
    ck_assert_int_eq(chmod(path, 0644), 0);
    ck_assert(!load_config(path, config, errors));
    ck_assert_int_eq(errors.size(), 1);
    ck_assert(errors[0].str().find("mode 0644") != std::string::npos);
    ck_assert(errors[0].str().find("secret") == std::string::npos);
    errors.clear();
    ck_assert_int_eq(chmod(path, 0600), 0);
    bool ok = load_config(path, config, errors);
    unlink(path);
    ck_assert_msg(ok, "%s", errors.empty() ? "" : errors[0].str().c_str());
}
END_TEST

START_TEST(file_mode_rule)
{
    ck_assert(check_file_mode(0100644, false).empty());
    ck_assert(check_file_mode(0100600, true).empty());
    ck_assert(check_file_mode(0100400, true).empty());
    ck_assert(!check_file_mode(0100640, true).empty());
    ck_assert(!check_file_mode(0100604, true).empty());
    ck_assert(!check_file_mode(0100620, true).empty());
    ck_assert(dsn_has_password("host=a password=x"));
    ck_assert(dsn_has_password("postgresql://u:pw@h/db"));
    ck_assert(!dsn_has_password("host=a user=b"));
    ck_assert(!dsn_has_password("not a dsn ="));
}
END_TEST

Suite *config_suite()
{
    Suite *suite = suite_create("config");
    TCase *values = tcase_create("values");
    tcase_add_test(values, full_file_reads_every_value);
    tcase_add_test(values, only_local_gives_the_defaults_and_no_peers);
    tcase_add_test(values, windows_line_ends_and_a_byte_order_mark_are_read);
    tcase_add_test(values, range_limits_themselves_are_accepted);
    suite_add_tcase(suite, values);

    TCase *errors = tcase_create("errors");
    tcase_add_test(errors, unknown_setting_names_its_line_and_the_known_ones);
    tcase_add_test(errors, unknown_section_and_setting_outside_any_section);
    tcase_add_test(errors, duplicate_peer_setting_and_section);
    tcase_add_test(errors, bad_numbers_each_reported_at_their_line);
    tcase_add_test(errors, out_of_range_numbers_each_reported_at_their_line);
    tcase_add_test(errors, backoff_max_below_base_at_its_line_or_line_0);
    tcase_add_test(errors, bad_dsn_gives_libpq_reason_without_the_password);
    tcase_add_test(errors, empty_values_are_errors);
    tcase_add_test(errors, missing_local_at_line_0_and_peer_without_dsn_at_its_section);
    tcase_add_test(errors, bad_peer_names_are_explained);
    tcase_add_test(errors, line_too_long_is_reported_once_at_its_line);
    tcase_add_test(errors, unparsable_and_indented_lines_are_each_reported);
    tcase_add_test(errors, error_str_with_and_without_a_line);
    suite_add_tcase(suite, errors);

    TCase *listen = tcase_create("parse_listen");
    tcase_add_test(listen, listen_accepts_v4_hostname_v6_and_off);
    tcase_add_test(listen, listen_rejects_bad_ports_and_shapes);
    suite_add_tcase(suite, listen);

    TCase *describe = tcase_create("describe_config");
    tcase_add_test(describe, describe_shows_endpoints_and_settings_never_a_password);
    tcase_add_test(describe, describe_a_node_alone);
    suite_add_tcase(suite, describe);

    TCase *files = tcase_create("load_config");
    tcase_add_test(files, load_config_reads_a_file_and_sets_its_path);
    tcase_add_test(files, load_config_reports_an_unreadable_file);
    tcase_add_test(files, load_config_refuses_a_password_others_can_read);
    tcase_add_test(files, file_mode_rule);
    suite_add_tcase(suite, files);
    return suite;
}
