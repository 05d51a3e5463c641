// The retry schedule of a failing peer.
#include "backoff.hpp"
#include "suites.hpp"

START_TEST(doubles_per_failure_up_to_the_cap)
{
    // random01 = 1 would be the top of the jitter range; just below it gives ~the full delay.
    double top = 0.999999;
    ck_assert_double_eq_tol(backoff_delay(1, 1, 300, top), 1, 0.001);
    ck_assert_double_eq_tol(backoff_delay(2, 1, 300, top), 2, 0.001);
    ck_assert_double_eq_tol(backoff_delay(5, 1, 300, top), 16, 0.001);
    ck_assert_double_eq_tol(backoff_delay(9, 1, 300, top), 256, 0.001);
    ck_assert_double_eq_tol(backoff_delay(10, 1, 300, top), 300, 0.001);
    ck_assert_double_eq_tol(backoff_delay(1000, 1, 300, top), 300, 0.001);
}
END_TEST

START_TEST(jitter_stays_between_half_and_full)
{
    for (int n = 1; n < 12; n++) {
        double full = backoff_delay(n, 0.5, 60, 0.999999);
        double low = backoff_delay(n, 0.5, 60, 0.0);
        double mid = backoff_delay(n, 0.5, 60, 0.5);
        ck_assert_double_eq_tol(low, full / 2, 0.001);
        ck_assert(mid > low && mid < full);
    }
}
END_TEST

START_TEST(no_failure_no_delay)
{
    ck_assert_double_eq(backoff_delay(0, 1, 300, 0.5), 0);
    ck_assert_double_eq(backoff_delay(-3, 1, 300, 0.5), 0);
}
END_TEST

START_TEST(out_of_range_random_is_clamped)
{
    ck_assert_double_eq_tol(backoff_delay(1, 2, 300, -5), 1, 1e-9);
    ck_assert_double_eq_tol(backoff_delay(1, 2, 300, 7), 2, 1e-9);
}
END_TEST

Suite *backoff_suite()
{
    Suite *suite = suite_create("backoff");
    TCase *tc = tcase_create("backoff_delay");
    tcase_add_test(tc, doubles_per_failure_up_to_the_cap);
    tcase_add_test(tc, jitter_stays_between_half_and_full);
    tcase_add_test(tc, no_failure_no_delay);
    tcase_add_test(tc, out_of_range_random_is_clamped);
    suite_add_tcase(suite, tc);
    return suite;
}
