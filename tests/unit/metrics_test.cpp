// The Prometheus text rendering of idsyncd's counters and gauges.
#include <string>

#include "ctl_metrics.hpp"
#include "metrics.hpp"
#include "suites.hpp"

namespace {

bool has_line(const std::string &text, const std::string &line)
{
    return ("\n" + text).find("\n" + line + "\n") != std::string::npos;
}

bool has_text(const std::string &text, const std::string &part)
{
    return text.find(part) != std::string::npos;
}

const char *const counters[] = {
    "idsyncd_attempts_total",
    "idsyncd_successes_total",
    "idsyncd_failures_total",
    "idsyncd_no_change_total",
    "idsyncd_hashmatch_total",
    "idsyncd_bulk_total",
    "idsyncd_diff_total",
    "idsyncd_diff_capped_total",
    "idsyncd_rows_sent_total",
    "idsyncd_rejects_total",
    "idsyncd_peer_connect_failures_total",
};

const char *const gauges[] = {
    "idsyncd_pass_duration_seconds",
    "idsyncd_lag_points",
    "idsyncd_lag_seconds",
    "idsyncd_last_success_timestamp_seconds",
    "idsyncd_last_pass_timestamp_seconds",
    "idsyncd_oldest_reject_seconds",
    "idsyncd_oldest_waiting_seconds",
    "idsyncd_peer_up",
    "idsyncd_local_up",
};

} // namespace

START_TEST(empty_registry_has_every_family)
{
    Metrics metrics;
    std::string text = metrics.render();
    for (const char *name : counters) {
        ck_assert_msg(has_text(text, std::string("# HELP ") + name + " "), "no HELP for %s", name);
        ck_assert_msg(has_line(text, std::string("# TYPE ") + name + " counter"), "%s", name);
    }
    for (const char *name : gauges) {
        ck_assert_msg(has_text(text, std::string("# HELP ") + name + " "), "no HELP for %s", name);
        ck_assert_msg(has_line(text, std::string("# TYPE ") + name + " gauge"), "%s", name);
    }
    ck_assert(has_line(text, "idsyncd_local_up 0"));
    ck_assert(!has_text(text, "{"));
    ck_assert(text.back() == '\n');
}
END_TEST

START_TEST(pair_counters_carry_peer_and_table)
{
    Metrics metrics;
    PairStats &stats = metrics.pair("b", "public.items");
    stats.attempts = 3;
    stats.successes = 2;
    stats.failures = 1;
    stats.no_change = 4;
    stats.hashmatch = 5;
    stats.bulk = 6;
    stats.diff = 7;
    stats.diff_capped = 8;
    stats.rows_sent = 18446744073709551615ull;
    stats.rejects = 9;
    stats.corrected_points = 10;
    stats.lag_points = 42;
    metrics.peer("b").backoff_seconds = 2.5;
    metrics.set_local_up(true);
    std::string text = metrics.render();
    std::string labels = "{peer=\"b\",table=\"public.items\"} ";
    ck_assert(has_line(text, "idsyncd_attempts_total" + labels + "3"));
    ck_assert(has_line(text, "idsyncd_successes_total" + labels + "2"));
    ck_assert(has_line(text, "idsyncd_failures_total" + labels + "1"));
    ck_assert(has_line(text, "idsyncd_no_change_total" + labels + "4"));
    ck_assert(has_line(text, "idsyncd_hashmatch_total" + labels + "5"));
    ck_assert(has_line(text, "idsyncd_bulk_total" + labels + "6"));
    ck_assert(has_line(text, "idsyncd_diff_total" + labels + "7"));
    ck_assert(has_line(text, "idsyncd_diff_capped_total" + labels + "8"));
    ck_assert(has_line(text, "idsyncd_rows_sent_total" + labels + "18446744073709551615"));
    ck_assert(has_line(text, "idsyncd_rejects_total" + labels + "9"));
    ck_assert(has_line(text, "idsyncd_sync_points_corrected_total" + labels + "10"));
    ck_assert(has_line(text, "idsyncd_peer_backoff_seconds{peer=\"b\"} 2.5"));
    ck_assert(has_line(text, "idsyncd_pass_duration_seconds" + labels + "0"));
    ck_assert(has_line(text, "idsyncd_lag_points" + labels + "42"));
    ck_assert(has_line(text, "idsyncd_local_up 1"));
}
END_TEST

START_TEST(times_become_ages_at_render)
{
    Metrics metrics;
    std::string labels = "{peer=\"b\",table=\"t\"} ";
    PairStats &stats = metrics.pair("b", "t");
    // Never caught up, nothing known: no lag sample, no last success; nothing parked.
    std::string text = metrics.render(1000);
    ck_assert(!has_text(text, "idsyncd_lag_seconds" + labels));
    ck_assert(!has_text(text, "idsyncd_last_success_timestamp_seconds" + labels));
    ck_assert(has_line(text, "idsyncd_oldest_reject_seconds" + labels + "0"));
    stats.caught_up_time = 990;
    stats.last_success_time = 995.5;
    stats.oldest_reject_time = 900;
    stats.oldest_waiting_time = 980;
    text = metrics.render(1000);
    ck_assert(has_line(text, "idsyncd_lag_seconds" + labels + "0"));
    ck_assert(has_line(text, "idsyncd_last_success_timestamp_seconds" + labels + "995.5"));
    ck_assert(has_line(text, "idsyncd_oldest_reject_seconds" + labels + "100"));
    ck_assert(has_line(text, "idsyncd_oldest_waiting_seconds" + labels + "20"));
    // Behind: the seconds since the pass after which the peer had everything.
    stats.behind = true;
    text = metrics.render(1030);
    ck_assert(has_line(text, "idsyncd_lag_seconds" + labels + "40"));
}
END_TEST

// idsyncctl reads back what idsyncd renders: mode, outcome and time of the latest pass, also
// for a table name that needs escaping.
START_TEST(last_pass_reads_back)
{
    Metrics metrics;
    PairStats &stats = metrics.pair("b", "public.\"odd\\name\"");
    stats.last_pass_time = 1234.5;
    stats.last_mode = "bulk";
    stats.last_outcome = "success";
    metrics.pair("c", "t").last_pass_time = 0; // no pass yet: no sample
    LastPasses passes = parse_last_passes(metrics.render(2000));
    ck_assert_uint_eq(passes.size(), 1);
    const LastPass &pass = passes.at({"b", "public.\"odd\\name\""});
    ck_assert_str_eq(pass.mode.c_str(), "bulk");
    ck_assert_str_eq(pass.outcome.c_str(), "success");
    ck_assert(pass.time == 1234.5);
}
END_TEST

START_TEST(samples_follow_their_header_in_key_order)
{
    Metrics metrics;
    metrics.pair("b", "t").attempts = 2;
    metrics.pair("a", "t").attempts = 1;
    metrics.pair("a", "s").attempts = 0;
    std::string text = metrics.render();
    size_t type = text.find("# TYPE idsyncd_attempts_total counter\n");
    size_t as = text.find("idsyncd_attempts_total{peer=\"a\",table=\"s\"} 0\n");
    size_t at = text.find("idsyncd_attempts_total{peer=\"a\",table=\"t\"} 1\n");
    size_t bt = text.find("idsyncd_attempts_total{peer=\"b\",table=\"t\"} 2\n");
    size_t next = text.find("# HELP idsyncd_successes_total");
    ck_assert(type != std::string::npos && next != std::string::npos);
    ck_assert(type < as && as < at && at < bt && bt < next);
    std::string again = metrics.render();
    ck_assert_str_eq(text.c_str(), again.c_str());
}
END_TEST

START_TEST(label_values_are_escaped)
{
    Metrics metrics;
    metrics.pair("we\"ird\\peer", "line\nbreak").attempts = 1;
    metrics.peer("we\"ird\\peer").up = true;
    std::string text = metrics.render();
    ck_assert(has_line(
        text, "idsyncd_attempts_total{peer=\"we\\\"ird\\\\peer\",table=\"line\\nbreak\"} 1"));
    ck_assert(has_line(text, "idsyncd_peer_up{peer=\"we\\\"ird\\\\peer\"} 1"));
    ck_assert(!has_text(text, "line\nbreak"));
}
END_TEST

START_TEST(unknown_lag_is_omitted)
{
    Metrics metrics;
    metrics.pair("a", "t");
    metrics.pair("b", "t").lag_points = 0;
    std::string text = metrics.render();
    ck_assert(has_line(text, "# TYPE idsyncd_lag_points gauge"));
    ck_assert(!has_text(text, "idsyncd_lag_points{peer=\"a\""));
    ck_assert(has_line(text, "idsyncd_lag_points{peer=\"b\",table=\"t\"} 0"));
    // The pair itself is still there.
    ck_assert(has_line(text, "idsyncd_attempts_total{peer=\"a\",table=\"t\"} 0"));
}
END_TEST

START_TEST(peer_stats_have_only_a_peer_label)
{
    Metrics metrics;
    metrics.peer("b").up = true;
    metrics.peer("b").connect_failures = 3;
    metrics.peer("c");
    std::string text = metrics.render();
    ck_assert(has_line(text, "idsyncd_peer_up{peer=\"b\"} 1"));
    ck_assert(has_line(text, "idsyncd_peer_up{peer=\"c\"} 0"));
    ck_assert(has_line(text, "idsyncd_peer_connect_failures_total{peer=\"b\"} 3"));
    ck_assert(has_line(text, "idsyncd_peer_connect_failures_total{peer=\"c\"} 0"));
}
END_TEST

START_TEST(forget_peer_drops_its_pairs_and_stats)
{
    Metrics metrics;
    metrics.pair("a", "t").attempts = 1;
    metrics.pair("b", "s").attempts = 2;
    metrics.pair("b", "t").attempts = 3;
    metrics.pair("bb", "t").attempts = 4;
    metrics.peer("b").connect_failures = 5;
    metrics.peer("bb").connect_failures = 6;
    metrics.forget_peer("b");
    std::string text = metrics.render();
    ck_assert(!has_text(text, "peer=\"b\""));
    ck_assert(has_line(text, "idsyncd_attempts_total{peer=\"a\",table=\"t\"} 1"));
    ck_assert(has_line(text, "idsyncd_attempts_total{peer=\"bb\",table=\"t\"} 4"));
    ck_assert(has_line(text, "idsyncd_peer_connect_failures_total{peer=\"bb\"} 6"));
    // Forgetting an unknown peer is harmless; a forgotten peer starts from zero.
    metrics.forget_peer("nobody");
    ck_assert_uint_eq(metrics.pair("b", "t").attempts, 0);
}
END_TEST

START_TEST(gauges_are_numbers_prometheus_parses)
{
    Metrics metrics;
    metrics.pair("a", "t").pass_seconds = 1.5;
    metrics.pair("b", "t").pass_seconds = 0.000125;
    metrics.pair("c", "t").pass_seconds = 12345678.25;
    metrics.pair("d", "t").pass_seconds = 0.1;
    metrics.pair("e", "t").pass_seconds = 1e300 * 1e300;
    std::string text = metrics.render();
    std::string name = "idsyncd_pass_duration_seconds";
    ck_assert(has_line(text, name + "{peer=\"a\",table=\"t\"} 1.5"));
    ck_assert(has_line(text, name + "{peer=\"b\",table=\"t\"} 0.000125"));
    ck_assert(has_line(text, name + "{peer=\"c\",table=\"t\"} 12345678.25"));
    ck_assert(has_line(text, name + "{peer=\"d\",table=\"t\"} 0.1"));
    ck_assert(has_line(text, name + "{peer=\"e\",table=\"t\"} +Inf"));
}
END_TEST

Suite *metrics_suite()
{
    Suite *suite = suite_create("metrics");
    TCase *tc = tcase_create("render");
    tcase_add_test(tc, empty_registry_has_every_family);
    tcase_add_test(tc, pair_counters_carry_peer_and_table);
    tcase_add_test(tc, samples_follow_their_header_in_key_order);
    tcase_add_test(tc, times_become_ages_at_render);
    tcase_add_test(tc, last_pass_reads_back);
    tcase_add_test(tc, label_values_are_escaped);
    tcase_add_test(tc, unknown_lag_is_omitted);
    tcase_add_test(tc, peer_stats_have_only_a_peer_label);
    tcase_add_test(tc, forget_peer_drops_its_pairs_and_stats);
    tcase_add_test(tc, gauges_are_numbers_prometheus_parses);
    suite_add_tcase(suite, tc);
    return suite;
}
