// How idsyncd logs text it did not write (error messages from servers): control characters
// escaped, newlines as indented continuation lines.
#include <string>

#include "log.hpp"
#include "suites.hpp"

namespace {

void assert_text(const std::string &got, const std::string &want)
{
    ck_assert_msg(got == want, "got \"%s\", want \"%s\"", got.c_str(), want.c_str());
}

} // namespace

START_TEST(control_characters_are_escaped)
{
    assert_text(escape_log_text("plain text"), "plain text");
    assert_text(escape_log_text("bell\a esc\x1b[31m red del\x7f tab\t cr\r"),
                "bell\\x07 esc\\x1b[31m red del\\x7f tab\\x09 cr\\x0d");
    assert_text(escape_log_text(std::string("nul\0after", 9)), "nul\\x00after");
    assert_text(escape_log_text("caf\xc3\xa9"), "caf\xc3\xa9"); // UTF-8 stays as it is
}
END_TEST

START_TEST(newlines_cannot_forge_a_line)
{
    assert_text(escape_log_text("ERROR:  x\nDETAIL:  y\n"), "ERROR:  x\n    DETAIL:  y");
    assert_text(escape_log_text("x\n2026-01-01 00:00:00.000 idsyncd INFO: forged"),
                "x\n    2026-01-01 00:00:00.000 idsyncd INFO: forged");
}
END_TEST

Suite *log_suite()
{
    Suite *suite = suite_create("log");
    TCase *escaping = tcase_create("escape_log_text");
    tcase_add_test(escaping, control_characters_are_escaped);
    tcase_add_test(escaping, newlines_cannot_forge_a_line);
    suite_add_tcase(suite, escaping);
    return suite;
}
