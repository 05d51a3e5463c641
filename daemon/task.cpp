#include "task.hpp"

namespace {

// A coroutine that starts at once and frees itself at the end: the root of a chain of Tasks.
struct Detached {
    struct promise_type {
        Detached get_return_object() { return {}; }
        std::suspend_never initial_suspend() noexcept { return {}; }
        std::suspend_never final_suspend() noexcept { return {}; }
        void return_void() {}
        void unhandled_exception() { std::terminate(); } // run() below catches everything
    };
};

Detached run(Task<void> task, std::function<void(std::exception_ptr)> done)
{
    std::exception_ptr error;
    try {
        co_await task;
    } catch (...) {
        error = std::current_exception();
    }
    done(error);
}

} // namespace

void spawn(Task<void> task, std::function<void(std::exception_ptr)> done)
{
    run(std::move(task), std::move(done));
}
