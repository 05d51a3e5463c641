// idsyncd's configuration file: values, defaults, and every error with its line.
#include "config.hpp"
#include "suites.hpp"

#include <string>
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

// The first error's "file:line: message".
std::string first_error(const Parsed &parsed)
{
    return parsed.errors.empty() ? "" : parsed.errors[0].str();
}

bool has_error(const Parsed &parsed, const std::string &text)
{
    for (const ConfigError &error : parsed.errors)
        if (error.str().find(text) != std::string::npos)
            return true;
    return false;
}

// Check's string macros keep a pointer: compare std::strings, not c_str() of temporaries.
#define assert_text(actual, expected)                                                              \
    do {                                                                                           \
        std::string got = (actual);                                                                \
        std::string want = (expected);                                                             \
        ck_assert_msg(got == want, "got \"%s\", expected \"%s\"", got.c_str(), want.c_str());      \
    } while (0)

const std::string local = "[idsyncd]\nlocal = host=127.0.0.1 dbname=app\n";

} // namespace

START_TEST(full_file_reads_every_value)
{
    Parsed p = parse("; comment\n"
                     "[idsyncd]\n"
                     "local = host=/run/postgresql dbname=app user=idsync\n"
                     "interval = 2.5\n"
                     "per_diff = 10\n"
                     "max_diffs = 3\n"
                     "bulk_ratio = 0.25\n"
                     "concurrency = 2\n"
                     "node_timeout = 4\n"
                     "conn_timeout = 0.25\n"
                     "backoff_base = 0.5\n"
                     "backoff_max = 8\n"
                     "progress_interval = 1\n"
                     "metrics_listen = [::1]:9999\n"
                     "\n"
                     "[peer b]\n"
                     "dsn = host=10.0.0.2 dbname=app\n"
                     "[peer node-c.east]\n"
                     "dsn = host=10.0.0.3 dbname=app\n");
    ck_assert_msg(p.ok, "%s", first_error(p).c_str());
    assert_text(p.config.local_dsn, "host=/run/postgresql dbname=app user=idsync");
    ck_assert_double_eq(p.config.interval, 2.5);
    ck_assert_int_eq(p.config.per_diff, 10);
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
    assert_text(p.config.peers[0].dsn, "host=10.0.0.2 dbname=app");
    ck_assert_int_eq(p.config.peers[0].line, 16);
    assert_text(p.config.peers[1].name, "node-c.east");
}
END_TEST

START_TEST(swift_defaults_when_only_local_is_given)
{
    Parsed p = parse(local);
    ck_assert_msg(p.ok, "%s", first_error(p).c_str());
    ck_assert_double_eq(p.config.interval, 30);
    ck_assert_int_eq(p.config.per_diff, 1000);
    ck_assert_int_eq(p.config.max_diffs, 100);
    ck_assert_double_eq(p.config.bulk_ratio, 0.5);
    ck_assert_int_eq(p.config.concurrency, 8);
    ck_assert_double_eq(p.config.node_timeout, 10);
    ck_assert_double_eq(p.config.conn_timeout, 0.5);
    assert_text(p.config.metrics_listen.host, "127.0.0.1");
    ck_assert_int_eq(p.config.metrics_listen.port, 9187);
    ck_assert_int_eq(p.config.peers.size(), 0);
}
END_TEST

START_TEST(unknown_setting_names_its_line)
{
    Parsed p = parse(local + "intervall = 5\n");
    ck_assert(!p.ok);
    assert_text(first_error(p),
                "test.ini:3: unknown setting \"intervall\" in [idsyncd] (known: local, "
                "interval, per_diff, max_diffs, bulk_ratio, concurrency, node_timeout, "
                "conn_timeout, backoff_base, backoff_max, progress_interval, metrics_listen)");
}
END_TEST

START_TEST(unknown_section_and_key_outside_sections)
{
    Parsed p = parse("stray = 1\n" + local + "[peers]\ndsn = x\n");
    ck_assert(has_error(p, "test.ini:1: \"stray\" outside of any section"));
    ck_assert(has_error(p, "test.ini:4: unknown section [peers] (expected [idsyncd] or "
                           "[peer NAME])"));
}
END_TEST

START_TEST(duplicate_peer_and_duplicate_setting)
{
    Parsed p = parse(local + "interval = 1\ninterval = 2\n[peer b]\ndsn = host=x\n[peer b]\n"
                             "dsn = host=y\n");
    ck_assert(has_error(p, "test.ini:4: duplicate setting \"interval\" (first at line 3)"));
    ck_assert(has_error(p, "test.ini:7: duplicate peer \"b\" (first at line 5)"));
    ck_assert_int_eq(p.config.peers.size(), 1);
    assert_text(p.config.peers[0].dsn, "host=x");
}
END_TEST

START_TEST(bad_numbers_and_ranges_each_with_its_line)
{
    Parsed p = parse(local + "interval = soon\nper_diff = 0\nmax_diffs = 2.5\n"
                             "bulk_ratio = 1.5\nconcurrency = 5000\nnode_timeout = -1\n"
                             "conn_timeout = nan\nbackoff_base = 10\nbackoff_max = 5\n");
    ck_assert(has_error(p, "test.ini:3: interval must be a number of seconds > 0 (got \"soon\")"));
    ck_assert(has_error(p, "test.ini:4: per_diff must be a whole number from 1 to 1000000"));
    ck_assert(has_error(p, "test.ini:5: max_diffs must be a whole number"));
    ck_assert(has_error(p, "test.ini:6: bulk_ratio must be a number from 0 to 1"));
    ck_assert(has_error(p, "test.ini:7: concurrency must be a whole number from 1 to 1024"));
    ck_assert(has_error(p, "test.ini:8: node_timeout must be a number of seconds > 0"));
    ck_assert(has_error(p, "test.ini:9: conn_timeout must be a number of seconds > 0"));
    ck_assert(has_error(p, "test.ini:11: backoff_max must be at least backoff_base"));
}
END_TEST

START_TEST(bad_dsn_is_explained_without_the_password)
{
    Parsed p = parse(local + "[peer b]\ndsn = host=x password=secret bogus=1\n");
    ck_assert(!p.ok);
    ck_assert(has_error(p, "test.ini:4: dsn of peer b is not a valid connection string: "));
    ck_assert(has_error(p, "bogus"));
    ck_assert(!has_error(p, "secret"));
}
END_TEST

START_TEST(missing_local_and_missing_dsn)
{
    Parsed p = parse("[idsyncd]\ninterval = 1\n[peer b]\n[peer c]\ndsn = host=c\n");
    ck_assert(has_error(p, "test.ini: [idsyncd] needs local"));
    ck_assert(has_error(p, "test.ini:3: [peer b] needs dsn"));
    ck_assert(!has_error(p, "[peer c]"));
}
END_TEST

START_TEST(bad_peer_name_and_empty_value)
{
    Parsed p = parse(local + "[peer a b]\ndsn = host=x\n[peer c]\ndsn =\n");
    ck_assert(has_error(p, "test.ini:3: peer name \"a b\" may hold only letters, digits"));
    ck_assert(has_error(p, "test.ini:6: dsn has no value"));
}
END_TEST

START_TEST(line_too_long)
{
    std::string dsn = "host=x dbname=" + std::string(300, 'a');
    Parsed p = parse(local + "[peer b]\ndsn = " + dsn + "\n");
    ck_assert(has_error(p, "test.ini:4: line too long"));
}
END_TEST

START_TEST(listen_addresses)
{
    ListenAddress address;
    assert_text(parse_listen("127.0.0.1:9187", address), "");
    ck_assert(address.enabled);
    assert_text(address.host, "127.0.0.1");
    assert_text(parse_listen("[::1]:80", address), "");
    assert_text(address.host, "::1");
    ck_assert_int_eq(address.port, 80);
    assert_text(parse_listen("localhost:9000", address), "");
    assert_text(parse_listen("off", address), "");
    ck_assert(!address.enabled);
    ck_assert(!parse_listen("127.0.0.1", address).empty());
    ck_assert(!parse_listen("127.0.0.1:0", address).empty());
    ck_assert(!parse_listen("127.0.0.1:70000", address).empty());
    ck_assert(!parse_listen("::1:80", address).empty());
    ck_assert(!parse_listen("[nonsense]:80", address).empty());
    assert_text(parse_listen("x", address),
                "metrics_listen must be host:port, [v6addr]:port or off (got \"x\")");
}
END_TEST

START_TEST(describe_never_shows_a_password)
{
    Parsed p = parse("[idsyncd]\nlocal = host=h dbname=app password=topsecret\n[peer b]\n"
                     "dsn = host=b user=u password=alsosecret\n");
    ck_assert_msg(p.ok, "%s", first_error(p).c_str());
    std::string text = describe_config(p.config);
    ck_assert(text.find("secret") == std::string::npos);
    ck_assert(text.find("peer b: ") != std::string::npos);
    ck_assert(text.find("password in DSN") != std::string::npos);
}
END_TEST

START_TEST(error_format)
{
    assert_text((ConfigError{"f.ini", 7, "boom"}).str(), "f.ini:7: boom");
    assert_text((ConfigError{"f.ini", 0, "boom"}).str(), "f.ini: boom");
}
END_TEST

START_TEST(unreadable_file)
{
    Config config;
    std::vector<ConfigError> errors;
    ck_assert(!load_config("/nonexistent/idsyncd.ini", config, errors));
    assert_text(errors[0].str(),
                "/nonexistent/idsyncd.ini: cannot read: No such file or directory");
}
END_TEST

Suite *config_suite()
{
    Suite *suite = suite_create("config");
    TCase *tc = tcase_create("parse_config");
    tcase_add_test(tc, full_file_reads_every_value);
    tcase_add_test(tc, swift_defaults_when_only_local_is_given);
    tcase_add_test(tc, unknown_setting_names_its_line);
    tcase_add_test(tc, unknown_section_and_key_outside_sections);
    tcase_add_test(tc, duplicate_peer_and_duplicate_setting);
    tcase_add_test(tc, bad_numbers_and_ranges_each_with_its_line);
    tcase_add_test(tc, bad_dsn_is_explained_without_the_password);
    tcase_add_test(tc, missing_local_and_missing_dsn);
    tcase_add_test(tc, bad_peer_name_and_empty_value);
    tcase_add_test(tc, line_too_long);
    tcase_add_test(tc, listen_addresses);
    tcase_add_test(tc, describe_never_shows_a_password);
    tcase_add_test(tc, error_format);
    tcase_add_test(tc, unreadable_file);
    suite_add_tcase(suite, tc);
    return suite;
}
