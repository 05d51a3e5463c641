#include "ctl_rejects.hpp"

#include <nlohmann/json.hpp>

#include "ctl_connection.hpp"
#include "log.hpp"

namespace {

constexpr const char *parked_rows =
    "SELECT r.reject_id, r.relid::text, COALESCE(r.source::text, ''), r.point, r.sqlstate, "
    "r.message, COALESCE(r.detail, ''), r.rejected_at::text, "
    "extract(epoch FROM now() - r.rejected_at), r.item::text FROM idsync.rejects r "
    "WHERE $1::regclass IS NULL OR r.relid = $1::regclass ORDER BY r.reject_id";

} // namespace

std::string rejects_report(const Config &config, const std::string &table, bool json)
{
    CtlConnection db("local", config.local_dsn, config.conn_timeout, config.node_timeout);
    PgParams params{table.empty() ? std::nullopt : std::optional<std::string>(table)};
    PgResult rows = db.query(parked_rows, params);
    if (json) {
        nlohmann::json out = nlohmann::json::array();
        for (int i = 0; i < rows.rows(); i++)
            out.push_back({{"reject_id", rows.int64(i, 0)},
                           {"table", rows.text(i, 1)},
                           {"source", rows.text(i, 2)},
                           {"point", rows.is_null(i, 3) ? nlohmann::json(nullptr)
                                                        : nlohmann::json(rows.int64(i, 3))},
                           {"sqlstate", rows.text(i, 4)},
                           {"message", rows.text(i, 5)},
                           {"detail", rows.text(i, 6)},
                           {"rejected_at", rows.text(i, 7)},
                           {"age_seconds", std::stod(rows.text(i, 8))},
                           {"item", nlohmann::json::parse(rows.text(i, 9))}});
        return out.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    }
    std::string out = strprintf("%-10s %-28s %-36s %-8s %8s  %s\n", "ID", "TABLE", "FROM",
                                "SQLSTATE", "AGE_S", "MESSAGE");
    for (int i = 0; i < rows.rows(); i++)
        out += strprintf("%-10s %-28s %-36s %-8s %8.0f  %s\n", rows.text(i, 0).c_str(),
                         rows.text(i, 1).c_str(), rows.text(i, 2).c_str(), rows.text(i, 4).c_str(),
                         std::stod(rows.text(i, 8)), escape_log_text(rows.text(i, 5)).c_str());
    out += strprintf("%d parked rows\n", rows.rows());
    return out;
}

std::string retry_rejects(const Config &config, const std::string &table)
{
    CtlConnection db("local", config.local_dsn, config.conn_timeout, config.node_timeout);
    std::vector<std::string> tables;
    if (!table.empty()) {
        tables.push_back(table);
    } else {
        PgResult parked =
            db.query("SELECT DISTINCT r.relid::text FROM idsync.rejects r ORDER BY 1");
        for (int i = 0; i < parked.rows(); i++)
            tables.push_back(parked.text(i, 0));
    }
    std::string out;
    for (const std::string &t : tables) {
        PgResult r = db.query("SELECT $1::regclass::text, retried, merged, still_rejected "
                              "FROM idsync.retry_rejects($1::regclass)",
                              {t});
        out += strprintf("%s: %s retried, %s merged, %s still parked\n", r.text(0, 0).c_str(),
                         r.text(0, 1).c_str(), r.text(0, 2).c_str(), r.text(0, 3).c_str());
    }
    if (tables.empty())
        out = "no parked rows\n";
    return out;
}

std::string discard_rejects(const Config &config, const std::string &table,
                            const std::vector<std::string> &ids)
{
    CtlConnection db("local", config.local_dsn, config.conn_timeout, config.node_timeout);
    std::optional<std::string> array;
    if (!ids.empty()) {
        array = "{";
        for (size_t i = 0; i < ids.size(); i++)
            *array += (i ? "," : "") + ids[i];
        *array += "}";
    }
    PgResult r = db.query("SELECT $1::regclass::text, idsync.discard_rejects($1::regclass, "
                          "$2::bigint[])",
                          {table, array});
    return strprintf("%s: %s parked rows discarded (recorded in idsync.discarded_rejects)\n",
                     r.text(0, 0).c_str(), r.text(0, 1).c_str());
}
