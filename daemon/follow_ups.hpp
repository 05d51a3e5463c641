// The tables a peer must pass again after notifications. A session notifies a table at most
// once per 50 ms (kNotifyGapMs in the extension's change_notify.hpp), so its transactions in
// the 50 ms after a notification skip theirs. A skipping transaction issued its change points
// before it decided to skip, so before kSkipWindow after the notification arrived here (the
// window counts from the arrival, after the notifying commit; the margin is for the clocks of
// two processes). The table is passed every kPollGap until a pass that started after the window
// cuts at or above the last point issued by then: that pass takes in the skipping transaction's
// rows if it committed, and if not, its cut stays below them. While the cut is held back the
// gap doubles up to kPollGapMax; a table whose pass fails kFollowUpFailures times in a row is
// left to the next full pass.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

constexpr double kSkipWindow = 0.15;
constexpr double kPollGap = 0.02;
constexpr double kPollGapMax = 1;
constexpr int kFollowUpFailures = 8;

class FollowUps {
public:
    // A notification of `table` arrived at `now` (monotonic seconds).
    void notified(const std::string &table, double now);
    // Every table counts as notified at `now`: the notifications sent while the listener was
    // away are lost. The next pass takes every registered table.
    void notified_every(double now);
    bool empty() const { return tables_.empty() && !every_; }
    // At the start of a pass that listed the registered tables: every table counted as notified
    // becomes notified (unless notified since); tables no longer registered are forgotten.
    // Returns whether the pass must take every table.
    bool begin_pass(const std::vector<std::string> &registered);
    // Adds the tables to pass again to `only`.
    void add_to(std::set<std::string> &only) const;
    // After the pass of `table` that started at `started` with `cut` and the last point issued
    // then, `last_issued`.
    void settle(const std::string &table, bool success, bool capped, double started, int64_t cut,
                int64_t last_issued);
    // When the next pass is due for them, after a pass that started at `started`; nullopt when
    // none is.
    std::optional<double> next_pass(double started) const;
    bool has(const std::string &table) const { return tables_.count(table) > 0; }

private:
    struct Entry {
        double until = 0;              // when kSkipWindow after the last notification ends
        std::optional<int64_t> target; // the last point issued once `until` had passed
        double gap = kPollGap;         // until the next pass
        int failures = 0;              // passes that failed in a row
    };
    std::map<std::string, Entry> tables_;
    std::optional<Entry> every_;
};
