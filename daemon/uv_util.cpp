#include "uv_util.hpp"

#include <chrono>

double monotonic_seconds()
{
    return static_cast<double>(uv_hrtime()) / 1e9;
}

Timer::Timer(uv_loop_t *loop) : handle_(new uv_timer_t)
{
    uv_timer_init(loop, handle_);
    handle_->data = this;
}

Timer::~Timer()
{
    uv_timer_stop(handle_);
    handle_->data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t *>(handle_),
             [](uv_handle_t *handle) { delete reinterpret_cast<uv_timer_t *>(handle); });
}

void Timer::start(double seconds, std::function<void()> callback)
{
    callback_ = std::move(callback);
    uint64_t ms = seconds <= 0 ? 0 : static_cast<uint64_t>(seconds * 1000.0 + 0.5);
    uv_timer_start(handle_, on_timeout, ms, 0);
}

void Timer::stop()
{
    uv_timer_stop(handle_);
    callback_ = nullptr;
}

void Timer::on_timeout(uv_timer_t *handle)
{
    auto *timer = static_cast<Timer *>(handle->data);
    if (!timer || !timer->callback_)
        return;
    auto callback = std::move(timer->callback_);
    timer->callback_ = nullptr;
    callback(); // last: it may destroy the timer's owner
}

Waiter::Awaiter Sleeper::sleep(double seconds)
{
    timer_.start(seconds, [this] { waiter_.resume(); });
    return waiter_.wait();
}

void Sleeper::wake()
{
    timer_.stop();
    waiter_.resume();
}

bool Semaphore::Awaiter::await_ready() noexcept
{
    if (semaphore.held_ < semaphore.count_ && semaphore.queue_.empty()) {
        semaphore.held_++;
        return true;
    }
    return false;
}

void Semaphore::release()
{
    held_--;
    if (held_ < count_ && !queue_.empty()) {
        auto next = queue_.front();
        queue_.pop_front();
        held_++;
        next.resume();
    }
}

void Semaphore::resize(int count)
{
    count_ = count;
    while (held_ < count_ && !queue_.empty()) {
        auto next = queue_.front();
        queue_.pop_front();
        held_++;
        next.resume();
    }
}

double wall_seconds()
{
    using namespace std::chrono;
    return duration<double>(system_clock::now().time_since_epoch()).count();
}
