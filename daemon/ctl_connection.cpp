#include "ctl_connection.hpp"

#include <cmath>

#include "log.hpp"

CtlConnection::CtlConnection(std::string label, const std::string &dsn, double conn_timeout,
                             double statement_timeout)
    : label_(std::move(label))
{
    // libpq counts connect_timeout in whole seconds, at least 2.
    std::string connect = std::to_string(std::max(2, static_cast<int>(std::ceil(conn_timeout))));
    // UTF-8 whatever the database's encoding: the JSON output needs it. A compare keeps a
    // transaction open on one node while the other reads: no idle-in-transaction timeout.
    std::string options =
        strprintf("-c search_path=pg_catalog,pg_temp -c client_encoding=UTF8 "
                  "-c statement_timeout=%d -c idle_in_transaction_session_timeout=0",
                  static_cast<int>(statement_timeout * 1000));
    // The DSN's own settings first; ours override the ones we need.
    const char *keys[] = {"dbname", "connect_timeout", "options", "fallback_application_name",
                          nullptr};
    const char *values[] = {dsn.c_str(), connect.c_str(), options.c_str(), "idsyncctl", nullptr};
    conn_ = PQconnectdbParams(keys, values, 1);
    if (PQstatus(conn_) != CONNECTION_OK)
        error_ = one_line(PQerrorMessage(conn_));
}

CtlConnection::~CtlConnection()
{
    PQfinish(conn_);
}

PGcancel *CtlConnection::cancel_handle() const
{
    return connected() ? PQgetCancel(conn_) : nullptr;
}

void CtlConnection::cancel(PGcancel *handle)
{
    if (handle == nullptr)
        return;
    char error[256];
    (void)PQcancel(handle, error, sizeof error); // best effort: the query may have ended
}

bool CtlConnection::connected() const
{
    return conn_ != nullptr && PQstatus(conn_) == CONNECTION_OK;
}

PgResult CtlConnection::query(const std::string &sql, const PgParams &params)
{
    if (!connected())
        throw PgError(label_ + ": not connected: " + error_, "08006", true, label_);
    std::vector<const char *> values;
    for (const auto &param : params)
        values.push_back(param ? param->c_str() : nullptr);
    PgResult result(PQexecParams(conn_, sql.c_str(), static_cast<int>(values.size()), nullptr,
                                 values.data(), nullptr, nullptr, 0));
    ExecStatusType status = PQresultStatus(result.get());
    if (status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK)
        return result;
    const char *sqlstate = PQresultErrorField(result.get(), PG_DIAG_SQLSTATE);
    bool lost = PQstatus(conn_) != CONNECTION_OK;
    throw PgError(label_ + ": " + one_line(PQresultErrorMessage(result.get())),
                  sqlstate ? sqlstate : "", lost, label_);
}
