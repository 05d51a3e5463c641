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
    // Swift's rule (bulk when the peer is below half of our size and more than per_diff
    // behind), measured in our own point space: how far the peer has merged our changes against
    // our max point. The peer's own max point would compare two unrelated sequences (idsync's
    // points are per database and shared by its tables), and a peer whose sequence lags ours
    // would get a full copy on every pass. Never synced (-1) counts as 0, so ratio 0 never bulks.
    int64_t reached = std::max<int64_t>(diff_start(preflight), 0);
    if (static_cast<double>(reached) < settings.bulk_ratio * static_cast<double>(local.max_point) &&
        local.max_point - reached > settings.per_diff)
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
