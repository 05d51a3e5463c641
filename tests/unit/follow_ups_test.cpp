// The passes a peer owes notified tables: the window, the target point, the backing off while a
// transaction holds the cut back, failures, and every table after the listener reconnects.
#include "follow_ups.hpp"
#include "suites.hpp"

START_TEST(a_table_is_passed_until_the_window_and_its_target)
{
    FollowUps f;
    f.notified("t", 10.0);
    ck_assert(!f.empty());
    // Within the window: passed again, whatever the cut.
    f.settle("t", true, false, 10.1, 100, 100);
    ck_assert(f.has("t"));
    ck_assert_double_eq_tol(*f.next_pass(10.1), 10.1 + kPollGap, 1e-9);
    // After it: the last point issued becomes the target; a cut below it keeps the table and
    // doubles the gap.
    f.settle("t", true, false, 10.2, 90, 120);
    ck_assert(f.has("t"));
    ck_assert_double_eq_tol(*f.next_pass(10.2), 10.2 + 2 * kPollGap, 1e-9);
    // The target stays what was issued when the window had passed.
    f.settle("t", true, false, 10.3, 119, 130);
    ck_assert(f.has("t"));
    f.settle("t", true, false, 10.4, 120, 140);
    ck_assert(!f.has("t"));
    ck_assert(f.empty());
    ck_assert(!f.next_pass(10.4).has_value());
}
END_TEST

START_TEST(a_new_notification_starts_over)
{
    FollowUps f;
    f.notified("t", 10.0);
    f.settle("t", true, false, 10.2, 90, 120);
    f.notified("t", 10.25);
    // A new window: a pass at 10.3 is inside it, even with the cut at the old target.
    f.settle("t", true, false, 10.3, 120, 125);
    ck_assert(f.has("t"));
    ck_assert_double_eq_tol(*f.next_pass(10.3), 10.3 + kPollGap, 1e-9);
    f.settle("t", true, false, 10.5, 125, 125);
    ck_assert(!f.has("t"));
}
END_TEST

START_TEST(the_gap_stops_doubling_at_its_maximum)
{
    FollowUps f;
    f.notified("t", 0);
    for (int i = 0; i < 20; i++)
        f.settle("t", true, false, 1.0 + i, 5, 10);
    ck_assert(f.has("t"));
    ck_assert_double_eq_tol(*f.next_pass(30.0), 30.0 + kPollGapMax, 1e-9);
}
END_TEST

START_TEST(failures_in_a_row_leave_the_table_to_the_full_pass)
{
    FollowUps f;
    f.notified("t", 0);
    for (int i = 0; i < kFollowUpFailures - 1; i++)
        f.settle("t", false, false, 0.01, 0, 0);
    ck_assert(f.has("t"));
    f.settle("t", true, false, 0.01, 0, 0); // a success in between starts the count again
    for (int i = 0; i < kFollowUpFailures - 1; i++)
        f.settle("t", false, false, 0.01, 0, 0);
    ck_assert(f.has("t"));
    f.settle("t", false, false, 0.01, 0, 0);
    ck_assert(!f.has("t"));
}
END_TEST

START_TEST(a_capped_pass_changes_nothing)
{
    FollowUps f;
    f.notified("t", 0);
    for (int i = 0; i < 3 * kFollowUpFailures; i++)
        f.settle("t", false, true, 1.0, 0, 10);
    ck_assert(f.has("t"));
    ck_assert_double_eq_tol(*f.next_pass(1.0), 1.0 + kPollGap, 1e-9);
}
END_TEST

START_TEST(every_table_after_a_reconnect_keeps_newer_notifications)
{
    FollowUps f;
    f.notified_every(10.0);
    f.notified("b", 20.0);
    ck_assert(f.begin_pass({"a", "b"}));
    ck_assert(f.has("a"));
    // b keeps its own, later window: a pass at 20.1 is inside it.
    f.settle("b", true, false, 20.1, 50, 50);
    ck_assert(f.has("b"));
    f.settle("a", true, false, 20.1, 50, 50);
    ck_assert(!f.has("a"));
    // Taken once: the next pass is not of every table.
    ck_assert(!f.begin_pass({"a", "b"}));
}
END_TEST

START_TEST(tables_no_longer_registered_are_forgotten)
{
    FollowUps f;
    f.notified("gone", 0);
    f.notified("kept", 0);
    std::set<std::string> only;
    f.add_to(only);
    ck_assert_int_eq(only.size(), 2);
    ck_assert(!f.begin_pass({"kept"}));
    ck_assert(!f.has("gone"));
    ck_assert(f.has("kept"));
}
END_TEST

Suite *follow_ups_suite()
{
    Suite *suite = suite_create("follow_ups");
    TCase *tc = tcase_create("follow_ups");
    tcase_add_test(tc, a_table_is_passed_until_the_window_and_its_target);
    tcase_add_test(tc, a_new_notification_starts_over);
    tcase_add_test(tc, the_gap_stops_doubling_at_its_maximum);
    tcase_add_test(tc, failures_in_a_row_leave_the_table_to_the_full_pass);
    tcase_add_test(tc, a_capped_pass_changes_nothing);
    tcase_add_test(tc, every_table_after_a_reconnect_keeps_newer_notifications);
    tcase_add_test(tc, tables_no_longer_registered_are_forgotten);
    suite_add_tcase(suite, tc);
    return suite;
}
