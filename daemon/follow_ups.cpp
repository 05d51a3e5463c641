#include "follow_ups.hpp"

#include <algorithm>

void FollowUps::notified(const std::string &table, double now)
{
    tables_[table] = Entry{now + kSkipWindow, std::nullopt, kPollGap, 0};
}

void FollowUps::notified_every(double now)
{
    every_ = Entry{now + kSkipWindow, std::nullopt, kPollGap, 0};
}

bool FollowUps::begin_pass(const std::vector<std::string> &registered)
{
    bool every = every_.has_value();
    if (every) {
        for (const std::string &table : registered)
            tables_.try_emplace(table, *every_);
        every_.reset();
    }
    std::erase_if(tables_, [&registered](const auto &entry) {
        return std::find(registered.begin(), registered.end(), entry.first) == registered.end();
    });
    return every;
}

void FollowUps::add_to(std::set<std::string> &only) const
{
    for (const auto &[table, entry] : tables_)
        only.insert(table);
}

void FollowUps::settle(const std::string &table, bool success, bool capped, double started,
                       int64_t cut, int64_t last_issued)
{
    auto it = tables_.find(table);
    if (it == tables_.end() || capped) // a capped table goes on with the next pass anyway
        return;
    Entry &entry = it->second;
    if (!success) {
        if (++entry.failures >= kFollowUpFailures)
            tables_.erase(it);
        else
            entry.gap = std::min(entry.gap * 2, kPollGapMax);
        return;
    }
    entry.failures = 0;
    if (started < entry.until)
        return;
    if (!entry.target)
        entry.target = last_issued;
    if (cut >= *entry.target)
        tables_.erase(it);
    else
        entry.gap = std::min(entry.gap * 2, kPollGapMax);
}

std::optional<double> FollowUps::next_pass(double started) const
{
    std::optional<double> next;
    if (every_)
        next = started + every_->gap;
    for (const auto &[table, entry] : tables_)
        next = std::min(next.value_or(started + entry.gap), started + entry.gap);
    return next;
}
