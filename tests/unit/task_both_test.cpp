// both(): two Tasks run at once, and both always end before the caller goes on.
#include <stdexcept>
#include <string>

#include "task_both.hpp"
#include "uv_util.hpp"
// Last: check.h defines a macro named fail.
#include "suites.hpp"

namespace {

// A step that parks on `gate` until the test opens it, then gives `value` (or throws).
Task<int> step(Waiter &gate, std::string &trace, const char *name, int value, bool refuse)
{
    co_await gate.wait();
    trace += name;
    if (refuse)
        throw std::runtime_error(name);
    co_return value;
}

struct Outcome {
    bool ended = false;
    int a = 0, b = 0;
    std::string error;
};

Task<void> join(Waiter &gate_a, Waiter &gate_b, std::string &trace, bool fail_a, bool fail_b,
                Outcome &out)
{
    try {
        auto [a, b] =
            co_await both(step(gate_a, trace, "a", 1, fail_a), step(gate_b, trace, "b", 2, fail_b));
        out.a = a;
        out.b = b;
    } catch (const std::runtime_error &e) {
        out.error = e.what();
    }
    out.ended = true;
}

void run(bool fail_a, bool fail_b, bool b_first, std::string &trace, Outcome &out)
{
    Waiter gate_a, gate_b;
    spawn(join(gate_a, gate_b, trace, fail_a, fail_b, out), [](std::exception_ptr) {});
    // Both started at once: each is parked on its gate before either is let through.
    ck_assert(gate_a.waiting() && gate_b.waiting());
    (b_first ? gate_b : gate_a).resume();
    ck_assert(!out.ended);
    (b_first ? gate_a : gate_b).resume();
}

} // namespace

START_TEST(both_results_in_either_order)
{
    for (bool b_first : {false, true}) {
        std::string trace;
        Outcome out;
        run(false, false, b_first, trace, out);
        ck_assert(out.ended);
        ck_assert_int_eq(out.a, 1);
        ck_assert_int_eq(out.b, 2);
        ck_assert_str_eq(trace.c_str(), b_first ? "ba" : "ab");
    }
}
END_TEST

START_TEST(a_failure_waits_for_the_other)
{
    std::string trace;
    Outcome out;
    // a fails first; the caller must not go on until b has ended too.
    run(true, false, false, trace, out);
    ck_assert(out.ended);
    ck_assert_str_eq(trace.c_str(), "ab");
    ck_assert_str_eq(out.error.c_str(), "a");
}
END_TEST

START_TEST(first_failure_wins)
{
    std::string trace;
    Outcome out;
    run(true, true, true, trace, out);
    ck_assert_str_eq(out.error.c_str(), "a");
    Outcome only_b;
    std::string trace_b;
    run(false, true, false, trace_b, only_b);
    ck_assert_str_eq(only_b.error.c_str(), "b");
}
END_TEST

Suite *task_both_suite()
{
    Suite *s = suite_create("both");
    TCase *c = tcase_create("core");
    tcase_add_test(c, both_results_in_either_order);
    tcase_add_test(c, a_failure_waits_for_the_other);
    tcase_add_test(c, first_failure_wins);
    suite_add_tcase(s, c);
    return s;
}
