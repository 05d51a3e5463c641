#include "mode.hpp"

#include <algorithm>

int64_t diff_start(const Preflight &preflight)
{
    return std::max(preflight.remote_point, preflight.local_outgoing);
}

Mode choose_mode(const Preflight &preflight, const ModeSettings &settings)
{
    const SyncInfo &local = preflight.local;
    const SyncInfo &remote = preflight.remote;
    if (diff_start(preflight) >= local.max_point)
        return Mode::no_change;
    if (!local.content_hash.empty() && local.content_hash == remote.content_hash)
        return Mode::hashmatch;
    // Points come from each node's own sequence, so comparing them is a heuristic for "far
    // behind", as Swift's comparison of row ids is. An empty peer (-1) counts as 0, so that a
    // ratio of 0 never bulks.
    double behind = static_cast<double>(std::max<int64_t>(remote.max_point, 0));
    if (behind < settings.bulk_ratio * static_cast<double>(local.max_point) &&
        local.max_point - remote.max_point > settings.per_diff)
        return Mode::bulk;
    return Mode::diff;
}

const char *mode_name(Mode mode)
{
    switch (mode) {
    case Mode::no_change:
        return "no_change";
    case Mode::hashmatch:
        return "hashmatch";
    case Mode::bulk:
        return "bulk";
    case Mode::diff:
        return "diff";
    }
    return "?";
}
