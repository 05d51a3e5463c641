// both(a, b): runs two Tasks at once (each on its own connection, say) and returns both results
// when both have ended. It always waits for both, also when one fails, so neither outlives what
// it uses; then the first failure (a's before b's) is rethrown.
#pragma once

#include <exception>
#include <memory>
#include <optional>
#include <utility>

#include "task.hpp"

namespace task_detail {

template <typename A, typename B> struct BothState {
    std::optional<A> a;
    std::optional<B> b;
    std::exception_ptr error_a;
    std::exception_ptr error_b;
    int running = 2;
    std::coroutine_handle<> waiting;

    void finished()
    {
        if (--running == 0 && waiting)
            std::exchange(waiting, nullptr).resume();
    }
};

// A coroutine that starts at once, runs `task` to its end and stores what it gave into `slot`.
struct Eager {
    struct promise_type {
        Eager get_return_object() { return {}; }
        std::suspend_never initial_suspend() noexcept { return {}; }
        std::suspend_never final_suspend() noexcept { return {}; }
        void return_void() {}
        void unhandled_exception() { std::terminate(); } // run_into catches everything
    };
};

template <typename T, typename State>
Eager run_into(Task<T> task, std::shared_ptr<State> state, std::optional<T> &slot,
               std::exception_ptr &error)
{
    try {
        slot.emplace(co_await task);
    } catch (...) {
        error = std::current_exception();
    }
    state->finished();
}

template <typename State> struct BothAwaiter {
    State &state;
    bool await_ready() const noexcept { return state.running == 0; }
    void await_suspend(std::coroutine_handle<> handle) noexcept { state.waiting = handle; }
    void await_resume() const noexcept {}
};

} // namespace task_detail

template <typename A, typename B> Task<std::pair<A, B>> both(Task<A> a, Task<B> b)
{
    using State = task_detail::BothState<A, B>;
    auto state = std::make_shared<State>();
    task_detail::run_into(std::move(a), state, state->a, state->error_a);
    task_detail::run_into(std::move(b), state, state->b, state->error_b);
    co_await task_detail::BothAwaiter<State>{*state};
    if (state->error_a)
        std::rethrow_exception(state->error_a);
    if (state->error_b)
        std::rethrow_exception(state->error_b);
    co_return std::pair<A, B>(std::move(*state->a), std::move(*state->b));
}
