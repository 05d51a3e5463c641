#include "ctl_resync.hpp"

#include <stdexcept>

#include "ctl_connection.hpp"

std::string request_resync(const Config &config, const std::string &table, const std::string &peer)
{
    const PeerConfig *found = nullptr;
    for (const PeerConfig &p : config.peers)
        if (p.name == peer)
            found = &p;
    if (found == nullptr)
        throw std::invalid_argument("no peer named \"" + peer + "\" in " + config.path);
    // The request names the peer by its node id, which only the peer knows.
    CtlConnection remote("peer " + peer, found->dsn, config.conn_timeout, config.node_timeout);
    std::string node = remote.query("SELECT idsync.node_id()::text").text(0, 0);
    CtlConnection local("local", config.local_dsn, config.conn_timeout, config.node_timeout);
    PgResult at = local.query("SELECT $1::regclass::text, idsync.request_resync($1::regclass, "
                              "$2::uuid)::text",
                              {table, node});
    return "resync of " + at.text(0, 0) + " to " + peer + " (node " + node + ") requested at " +
           at.text(0, 1) + ": idsyncd's next pass to " + peer + " copies it in bulk\n";
}
