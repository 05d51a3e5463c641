// What a pass to a peer adds up to, and when it counts as complete (--once's exit status).
#include "pass_summary.hpp"
#include "suites.hpp"

namespace {

TableOutcome succeeded(Mode mode)
{
    TableOutcome outcome;
    outcome.mode = mode;
    outcome.success = true;
    return outcome;
}

} // namespace

START_TEST(every_table_succeeding_is_complete)
{
    PassSummary summary;
    summary.add(succeeded(Mode::diff));
    summary.add(succeeded(Mode::no_change));
    ck_assert_int_eq(summary.tables, 2);
    ck_assert_int_eq(summary.successes, 2);
    ck_assert(summary.complete());
    ck_assert(summary.quiet());
}
END_TEST

START_TEST(a_failed_table_or_an_unreachable_side_is_not_complete)
{
    PassSummary failed;
    failed.add(succeeded(Mode::diff));
    failed.add(TableOutcome{});
    ck_assert(!failed.complete());
    PassSummary unreachable;
    unreachable.unreachable = true;
    ck_assert(!unreachable.complete());
}
END_TEST

START_TEST(a_pass_that_could_not_start_is_not_complete)
{
    // No table was tried: nothing failed, but nothing was replicated either.
    PassSummary broken;
    broken.broken = true;
    ck_assert_int_eq(broken.tables, 0);
    ck_assert(!broken.complete());
    ck_assert(!broken.quiet());
    PassSummary total;
    total.add(succeeded(Mode::diff));
    total.add(broken);
    ck_assert(!total.complete());
}
END_TEST

Suite *pass_summary_suite()
{
    Suite *suite = suite_create("pass_summary");
    TCase *tc = tcase_create("complete");
    tcase_add_test(tc, every_table_succeeding_is_complete);
    tcase_add_test(tc, a_failed_table_or_an_unreachable_side_is_not_complete);
    tcase_add_test(tc, a_pass_that_could_not_start_is_not_complete);
    suite_add_tcase(suite, tc);
    return suite;
}
