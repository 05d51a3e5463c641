// Small owners of libuv handles, and the awaitables the coroutines wait on. Every handle lives on
// the heap and is freed in its close callback, as libuv requires.
#pragma once

#include <coroutine>
#include <deque>
#include <functional>

#include <uv.h>

// Seconds since an arbitrary point, for durations (monotonic).
double monotonic_seconds();
// The wall clock, as Unix seconds (for metrics that report times and ages).
double wall_seconds();

// A one-shot timer; restarting replaces the pending callback.
class Timer {
public:
    explicit Timer(uv_loop_t *loop);
    ~Timer();
    Timer(const Timer &) = delete;
    void start(double seconds, std::function<void()> callback);
    void stop();

private:
    static void on_timeout(uv_timer_t *handle);
    uv_timer_t *handle_;
    std::function<void()> callback_;
};

// One coroutine parked until someone calls resume().
class Waiter {
public:
    struct Awaiter {
        Waiter &waiter;
        bool await_ready() const noexcept { return false; }
        void await_suspend(std::coroutine_handle<> handle) noexcept { waiter.handle_ = handle; }
        void await_resume() const noexcept {}
    };
    Awaiter wait() { return Awaiter{*this}; }
    bool waiting() const { return static_cast<bool>(handle_); }
    // Resumes the parked coroutine, if any; call it last in a callback, since the coroutine may
    // run on and destroy the callback's owner.
    void resume()
    {
        if (auto handle = handle_) {
            handle_ = nullptr;
            handle.resume();
        }
    }

private:
    std::coroutine_handle<> handle_;
};

// An interruptible sleep: a peer sleeps between passes and wakes early on SIGTERM or SIGHUP.
class Sleeper {
public:
    explicit Sleeper(uv_loop_t *loop) : timer_(loop) {}
    Waiter::Awaiter sleep(double seconds);
    void wake();

private:
    Timer timer_;
    Waiter waiter_;
};

// At most N holders at once; the others queue in arrival order.
class Semaphore {
public:
    explicit Semaphore(int count) : count_(count) {}
    struct Awaiter {
        Semaphore &semaphore;
        bool await_ready() noexcept;
        void await_suspend(std::coroutine_handle<> handle) { semaphore.queue_.push_back(handle); }
        void await_resume() const noexcept {}
    };
    Awaiter acquire() { return Awaiter{*this}; }
    void release();
    void resize(int count);

private:
    int count_;
    int held_ = 0;
    std::deque<std::coroutine_handle<>> queue_;
};
