// Check suites of idsyncd's pure logic; each lives in the file named after it.
#pragma once

#include <check.h>

Suite *config_suite();
Suite *mode_suite();
Suite *backoff_suite();
Suite *metrics_suite();
Suite *http_suite();
Suite *log_suite();
Suite *task_both_suite();
Suite *schema_shape_suite();
Suite *pass_summary_suite();
Suite *follow_ups_suite();
