// Task<T>: a lazily started C++20 coroutine that a caller co_awaits, so that a pass reads as a
// chain of steps (preflight, choose the mode, send) while libuv drives every wait underneath.
// spawn() starts a top-level task and reports how it ended.
#pragma once

#include <coroutine>
#include <exception>
#include <functional>
#include <optional>
#include <utility>

namespace task_detail {

struct PromiseBase {
    std::coroutine_handle<> continuation = std::noop_coroutine();
    std::exception_ptr error;

    std::suspend_always initial_suspend() noexcept { return {}; }
    struct FinalAwaiter {
        bool await_ready() noexcept { return false; }
        template <typename Promise>
        std::coroutine_handle<> await_suspend(std::coroutine_handle<Promise> self) noexcept
        {
            return self.promise().continuation;
        }
        void await_resume() noexcept {}
    };
    FinalAwaiter final_suspend() noexcept { return {}; }
    void unhandled_exception() { error = std::current_exception(); }
};

} // namespace task_detail

template <typename T = void> class [[nodiscard]] Task {
public:
    struct promise_type : task_detail::PromiseBase {
        std::optional<T> value;
        Task get_return_object() { return Task(Handle::from_promise(*this)); }
        template <typename U> void return_value(U &&v) { value.emplace(std::forward<U>(v)); }
    };
    using Handle = std::coroutine_handle<promise_type>;

    Task(Task &&other) noexcept : handle_(std::exchange(other.handle_, {})) {}
    Task(const Task &) = delete;
    ~Task()
    {
        if (handle_)
            handle_.destroy();
    }

    bool await_ready() const noexcept { return false; }
    std::coroutine_handle<> await_suspend(std::coroutine_handle<> caller) noexcept
    {
        handle_.promise().continuation = caller;
        return handle_;
    }
    T await_resume()
    {
        if (handle_.promise().error)
            std::rethrow_exception(handle_.promise().error);
        return std::move(*handle_.promise().value);
    }

private:
    explicit Task(Handle handle) : handle_(handle) {}
    Handle handle_;
};

template <> class [[nodiscard]] Task<void> {
public:
    struct promise_type : task_detail::PromiseBase {
        Task get_return_object() { return Task(Handle::from_promise(*this)); }
        void return_void() {}
    };
    using Handle = std::coroutine_handle<promise_type>;

    Task(Task &&other) noexcept : handle_(std::exchange(other.handle_, {})) {}
    Task(const Task &) = delete;
    ~Task()
    {
        if (handle_)
            handle_.destroy();
    }

    bool await_ready() const noexcept { return false; }
    std::coroutine_handle<> await_suspend(std::coroutine_handle<> caller) noexcept
    {
        handle_.promise().continuation = caller;
        return handle_;
    }
    void await_resume()
    {
        if (handle_.promise().error)
            std::rethrow_exception(handle_.promise().error);
    }

private:
    explicit Task(Handle handle) : handle_(handle) {}
    Handle handle_;
};

// Runs `task` to completion on its own; `done` gets nullptr or the exception it ended with.
void spawn(Task<void> task, std::function<void(std::exception_ptr)> done);
