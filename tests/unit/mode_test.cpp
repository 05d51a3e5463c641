// The mode decision of a table pass, on Swift's examples.
#include "mode.hpp"
#include "suites.hpp"

#include <string>

namespace {

Preflight preflight(int64_t local_max, int64_t remote_max, int64_t remote_point,
                    int64_t local_outgoing, std::string local_hash = "aa",
                    std::string remote_hash = "bb")
{
    Preflight p;
    p.local.max_point = local_max;
    p.local.content_hash = local_hash;
    p.remote.max_point = remote_max;
    p.remote.content_hash = remote_hash;
    p.remote_point = remote_point;
    p.local_outgoing = local_outgoing;
    return p;
}

const ModeSettings swift{1000, 0.5};

} // namespace

START_TEST(peer_has_everything_is_no_change)
{
    ck_assert(choose_mode(preflight(500, 10, 500, -1), swift) == Mode::no_change);
    ck_assert(choose_mode(preflight(500, 10, -1, 500), swift) == Mode::no_change);
    ck_assert(choose_mode(preflight(500, 10, 900, 3), swift) == Mode::no_change);
}
END_TEST

START_TEST(empty_local_table_is_no_change)
{
    ck_assert(choose_mode(preflight(-1, -1, -1, -1), swift) == Mode::no_change);
}
END_TEST

START_TEST(equal_content_is_hashmatch)
{
    ck_assert(choose_mode(preflight(5000, 4000, 10, 20, "h", "h"), swift) == Mode::hashmatch);
}
END_TEST

START_TEST(empty_hash_never_matches)
{
    ck_assert(choose_mode(preflight(5000, 4000, 4500, 20, "", ""), swift) == Mode::diff);
}
END_TEST

START_TEST(empty_peer_far_behind_is_bulk)
{
    ck_assert(choose_mode(preflight(5000, -1, -1, -1), swift) == Mode::bulk);
    ck_assert(choose_mode(preflight(100000, 900000, 49000, -1), swift) == Mode::bulk);
    ck_assert(choose_mode(preflight(100000, 900000, 10, 49999), swift) == Mode::bulk);
}
END_TEST

START_TEST(the_peers_own_points_do_not_matter)
{
    // A peer whose sequence lags ours but that has merged almost everything gets diffs.
    ck_assert(choose_mode(preflight(100000, 10, 99000, -1), swift) == Mode::diff);
    ck_assert(choose_mode(preflight(100000, 10, -1, 99000), swift) == Mode::diff);
}
END_TEST

START_TEST(small_difference_is_diff_even_when_ratio_is_low)
{
    // Swift: "difference > per_diff stops us from dropping to rsync on smaller containers".
    ck_assert(choose_mode(preflight(900, -1, -1, -1), swift) == Mode::diff);
    ck_assert(choose_mode(preflight(1000, 0, -1, -1), swift) == Mode::diff);
    ck_assert(choose_mode(preflight(1001, 0, -1, -1), swift) == Mode::bulk);
}
END_TEST

START_TEST(half_way_is_diff)
{
    ck_assert(choose_mode(preflight(100000, 0, 50000, -1), swift) == Mode::diff);
    ck_assert(choose_mode(preflight(100000, 0, 49999, -1), swift) == Mode::bulk);
}
END_TEST

START_TEST(ratio_is_configurable)
{
    ModeSettings never{1000, 0.0};
    ModeSettings eager{10, 0.9};
    ck_assert(choose_mode(preflight(100000, -1, -1, -1), never) == Mode::diff);
    ck_assert(choose_mode(preflight(100000, 0, 80000, -1), eager) == Mode::bulk);
}
END_TEST

START_TEST(diff_starts_after_the_larger_known_point)
{
    ck_assert_int_eq(diff_start(preflight(900, 0, 300, 200)), 300);
    ck_assert_int_eq(diff_start(preflight(900, 0, 100, 200)), 200);
    ck_assert_int_eq(diff_start(preflight(900, 0, -1, -1)), -1);
}
END_TEST

START_TEST(mode_names_are_the_metric_names)
{
    ck_assert_str_eq(mode_name(Mode::no_change), "no_change");
    ck_assert_str_eq(mode_name(Mode::hashmatch), "hashmatch");
    ck_assert_str_eq(mode_name(Mode::bulk), "bulk");
    ck_assert_str_eq(mode_name(Mode::diff), "diff");
}
END_TEST

Suite *mode_suite()
{
    Suite *suite = suite_create("mode");
    TCase *tc = tcase_create("choose_mode");
    tcase_add_test(tc, peer_has_everything_is_no_change);
    tcase_add_test(tc, empty_local_table_is_no_change);
    tcase_add_test(tc, equal_content_is_hashmatch);
    tcase_add_test(tc, empty_hash_never_matches);
    tcase_add_test(tc, empty_peer_far_behind_is_bulk);
    tcase_add_test(tc, the_peers_own_points_do_not_matter);
    tcase_add_test(tc, small_difference_is_diff_even_when_ratio_is_low);
    tcase_add_test(tc, half_way_is_diff);
    tcase_add_test(tc, ratio_is_configurable);
    tcase_add_test(tc, diff_starts_after_the_larger_known_point);
    tcase_add_test(tc, mode_names_are_the_metric_names);
    suite_add_tcase(suite, tc);
    return suite;
}
