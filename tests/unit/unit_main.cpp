// Runs every Check suite of idsyncd; Check forks each test, so state never leaks between them.
#include <cstdlib>

#include "suites.hpp"

int main()
{
    SRunner *runner = srunner_create(config_suite());
    srunner_add_suite(runner, mode_suite());
    srunner_add_suite(runner, backoff_suite());
    srunner_add_suite(runner, metrics_suite());
    srunner_add_suite(runner, http_suite());
    srunner_add_suite(runner, log_suite());
    srunner_add_suite(runner, task_both_suite());
    srunner_add_suite(runner, schema_shape_suite());
    srunner_add_suite(runner, pass_summary_suite());
    srunner_add_suite(runner, follow_ups_suite());
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
