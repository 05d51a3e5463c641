#include "ctl_conflicts.hpp"

#include <nlohmann/json.hpp>

#include "ctl_connection.hpp"
#include "log.hpp"

namespace {

constexpr const char *conflict_rows =
    "SELECT c.conflict_id, c.relid::regclass::text, c.kind, c.key::text, c.lost::text, "
    "COALESCE(c.lost_version::text, ''), COALESCE(c.lost_origin::text, ''), c.won_version, "
    "COALESCE(c.won_origin::text, ''), c.recorded_at::text, "
    "extract(epoch FROM now() - c.recorded_at) FROM idsync.conflicts c "
    "WHERE $1::regclass IS NULL OR c.relid = $1::regclass::oid ORDER BY c.conflict_id DESC";

} // namespace

std::string conflicts_report(const Config &config, const std::string &table, bool json)
{
    CtlConnection db("local", config.local_dsn, config.conn_timeout, config.node_timeout);
    PgParams params{table.empty() ? std::nullopt : std::optional<std::string>(table)};
    PgResult rows = db.query(conflict_rows, params);
    if (json) {
        nlohmann::json out = nlohmann::json::array();
        for (int i = 0; i < rows.rows(); i++)
            out.push_back(
                {{"conflict_id", rows.int64(i, 0)},
                 {"table", rows.text(i, 1)},
                 {"kind", rows.text(i, 2)},
                 {"key", nlohmann::json::parse(rows.text(i, 3))},
                 {"lost", nlohmann::json::parse(rows.text(i, 4))},
                 {"lost_version", rows.text(i, 5).empty()
                                      ? nlohmann::json(nullptr)
                                      : nlohmann::json(std::stoll(rows.text(i, 5)))},
                 {"lost_origin", rows.text(i, 6).empty() ? nlohmann::json(nullptr)
                                                         : nlohmann::json(rows.text(i, 6))},
                 {"won_version", rows.int64(i, 7)},
                 {"won_origin", rows.text(i, 8).empty() ? nlohmann::json(nullptr)
                                                        : nlohmann::json(rows.text(i, 8))},
                 {"recorded_at", rows.text(i, 9)},
                 {"age_seconds", std::stod(rows.text(i, 10))}});
        return out.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    }
    // LOST_FROM and WON_FROM: the node that wrote the version ("here": this one).
    std::string out = strprintf("%-10s %-24s %-19s %-36s %-36s %8s  %s\n", "ID", "TABLE", "KIND",
                                "LOST_FROM", "WON_FROM", "AGE_S", "KEY / LOST VERSION");
    for (int i = 0; i < rows.rows(); i++) {
        std::string lost_from = rows.text(i, 6).empty() ? "here" : rows.text(i, 6);
        std::string won_from = rows.text(i, 8).empty() ? "here" : rows.text(i, 8);
        out += strprintf("%-10s %-24s %-19s %-36s %-36s %8.0f  %s / %s\n", rows.text(i, 0).c_str(),
                         rows.text(i, 1).c_str(), rows.text(i, 2).c_str(), lost_from.c_str(),
                         won_from.c_str(), std::stod(rows.text(i, 10)),
                         escape_log_text(rows.text(i, 3)).c_str(),
                         escape_log_text(rows.text(i, 4)).c_str());
    }
    out += strprintf("%d conflict records\n", rows.rows());
    return out;
}
