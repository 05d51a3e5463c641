#include "pass_summary.hpp"

#include "log.hpp"

void PassSummary::add(const TableOutcome &outcome)
{
    tables++;
    count_outcome(*this, outcome);
}

void PassSummary::add(const PassSummary &other)
{
    tables += other.tables;
    successes += other.successes;
    failures += other.failures;
    no_change += other.no_change;
    hashmatch += other.hashmatch;
    bulk += other.bulk;
    diff += other.diff;
    diff_capped += other.diff_capped;
    schema_drift += other.schema_drift;
    rows_sent += other.rows_sent;
    rejects += other.rejects;
    corrected_points += other.corrected_points;
    echoes_avoided += other.echoes_avoided;
    unreachable = unreachable || other.unreachable;
    local_down = local_down || other.local_down;
    broken = broken || other.broken;
}

std::string PassSummary::line(const std::string &to) const
{
    return strprintf(
        "replicated %d table%s to %s in %.2f s: %d successes, %d failures, "
        "no_change %d, hashmatch %d, bulk %d, diff %d, diff_capped %d, "
        "%llu rows sent, %llu rejects%s",
        tables, tables == 1 ? "" : "s", to.c_str(), seconds, successes, failures, no_change,
        hashmatch, bulk, diff, diff_capped, static_cast<unsigned long long>(rows_sent),
        static_cast<unsigned long long>(rejects),
        schema_drift > 0 ? strprintf(", %d skipped for schema drift", schema_drift).c_str() : "");
}
