// idsyncctl: the operator's command line beside idsyncd. It reads idsyncd's configuration file
// and asks the databases themselves (the local one as the daemon's role, each peer as the peer
// role the file names), so it answers whether or not idsyncd runs.
//
//   idsyncctl -c FILE status [--json]           per peer and table: in sync, lag, parked rows
//   idsyncctl -c FILE rejects [TABLE] [--json]  the rows parked on this node, and why
//   idsyncctl -c FILE [--dsn DSN] rejects retry [TABLE]       merge them again
//   idsyncctl -c FILE [--dsn DSN] rejects discard TABLE [ID]  drop them, keeping a record
//   idsyncctl -c FILE resync TABLE PEER         the next pass copies TABLE to PEER in bulk
//   idsyncctl -c FILE conflicts [TABLE] [--json]  lww versions that lost in merges here
//   idsyncctl -c FILE compare TABLE PEER [--json]  which natural keys differ, and how
//   idsyncctl -c FILE --dsn DSN repair TABLE PEER  send exactly those rows, both ways
//
// Exit status: 0 in sync (status) or done; 1 not in sync, a node unreachable, or a query
// failed; 2 usage or configuration error (also a peer the file does not name).
#include <cstdio>
#include <getopt.h>
#include <stdexcept>
#include <string>
#include <vector>

#include "config.hpp"
#include "ctl_compare.hpp"
#include "ctl_conflicts.hpp"
#include "ctl_rejects.hpp"
#include "ctl_resync.hpp"
#include "ctl_status.hpp"
#include "pg_connection.hpp"

#ifndef IDSYNC_VERSION
#define IDSYNC_VERSION "unknown"
#endif

namespace {

constexpr int exit_not_in_sync = 1;
constexpr int exit_usage = 2;

void print_usage(FILE *out)
{
    fprintf(out, "Usage: idsyncctl -c FILE status [--json]\n"
                 "       idsyncctl -c FILE rejects [TABLE] [--json]\n"
                 "       idsyncctl -c FILE [--dsn DSN] rejects retry [TABLE]\n"
                 "       idsyncctl -c FILE [--dsn DSN] rejects discard TABLE [ID ...]\n"
                 "       idsyncctl -c FILE resync TABLE PEER\n"
                 "       idsyncctl -c FILE conflicts [TABLE] [--json]\n"
                 "       idsyncctl -c FILE compare TABLE PEER [--json]\n"
                 "       idsyncctl -c FILE --dsn DSN [--peer-dsn DSN] repair TABLE PEER [--json]\n"
                 "\n"
                 "Answers an operator's questions about the idsync node whose idsyncd reads FILE.\n"
                 "\n"
                 "  status    per peer and registered table: in sync (same rows and content\n"
                 "            hash) or not, this node's rows the peer has not merged (LAG_ROWS)\n"
                 "            and the age of the oldest of them (LAG_S), rows parked on the peer;\n"
                 "            exit 0 only when every peer is reachable and every table in sync\n"
                 "  rejects   the rows parked on this node (TABLE: one table's), oldest first;\n"
                 "            retry merges them again, discard drops them for good (recorded in\n"
                 "            idsync.discarded_rejects): both as an administrator (--dsn)\n"
                 "  resync    idsyncd's next pass to PEER copies TABLE in bulk (a repair; safe\n"
                 "            while loaders run: the peer takes only the rows it lacks)\n"
                 "  conflicts the versions of lww rows that lost to another version in a merge\n"
                 "            here, newest first, for the tables that record them\n"
                 "            (idsync.record_conflicts)\n"
                 "  compare   the natural keys of TABLE that differ here and on PEER (missing\n"
                 "            here, missing there, different), found by comparing hashes over\n"
                 "            buckets of keys, level by level; exit 0 when none, else 1\n"
                 "  repair    compare, send exactly those rows both ways by the table's rules\n"
                 "            (lww: the newer wins), recompute a stale kept content hash,\n"
                 "            compare again; as an administrator here (--dsn) and, to recompute\n"
                 "            a hash there, on the peer (--peer-dsn)\n"
                 "\n"
                 "  -c, --config FILE   idsyncd's configuration file\n"
                 "      --dsn DSN       connect to the local database with DSN instead of the\n"
                 "                      file's (an administrator's, for retry, discard, repair)\n"
                 "      --peer-dsn DSN  connect to PEER with DSN instead of the file's (repair)\n"
                 "      --json          machine-readable output\n"
                 "  -h, --help          this text\n"
                 "  -V, --version       the version\n");
}

// rejects [TABLE] | rejects retry [TABLE] | rejects discard TABLE [ID ...] (ids are numbers)
bool rejects_args_ok(const std::vector<std::string> &args)
{
    if (args.size() > 1 && args[1] == "retry")
        return args.size() <= 3;
    if (args.size() > 1 && args[1] == "discard") {
        if (args.size() < 3)
            return false;
        for (size_t i = 3; i < args.size(); i++)
            if (args[i].empty() || args[i].find_first_not_of("0123456789") != std::string::npos)
                return false;
        return true;
    }
    return args.size() <= 2;
}

} // namespace

int main(int argc, char **argv)
{
    enum { opt_json = 1000, opt_dsn, opt_peer_dsn };
    const option options[] = {
        {"config", required_argument, nullptr, 'c'},
        {"json", no_argument, nullptr, opt_json},
        {"dsn", required_argument, nullptr, opt_dsn},
        {"help", no_argument, nullptr, 'h'},
        {"peer-dsn", required_argument, nullptr, opt_peer_dsn},
        {"version", no_argument, nullptr, 'V'},
        {nullptr, 0, nullptr, 0},
    };
    std::string config_path;
    bool json = false;
    std::string dsn;
    std::string peer_dsn;
    int opt;
    while ((opt = getopt_long(argc, argv, "c:hV", options, nullptr)) != -1) {
        switch (opt) {
        case 'c':
            config_path = optarg;
            break;
        case opt_json:
            json = true;
            break;
        case opt_peer_dsn:
            peer_dsn = optarg;
            break;
        case opt_dsn:
            dsn = optarg;
            break;
        case 'h':
            print_usage(stdout);
            return 0;
        case 'V':
            printf("idsyncctl %s\n", IDSYNC_VERSION);
            return 0;
        default:
            print_usage(stderr);
            return exit_usage;
        }
    }
    std::vector<std::string> args(argv + optind, argv + argc);
    if (config_path.empty() || args.empty()) {
        print_usage(stderr);
        return exit_usage;
    }
    const std::string &command = args[0];
    if ((command == "status" && args.size() != 1) ||
        (command == "rejects" && !rejects_args_ok(args)) ||
        (command == "resync" && args.size() != 3) || (command == "conflicts" && args.size() > 2) ||
        ((command == "compare" || command == "repair") && args.size() != 3) ||
        (command != "status" && command != "rejects" && command != "resync" &&
         command != "conflicts" && command != "compare" && command != "repair")) {
        fprintf(stderr, "idsyncctl: unknown command or extra arguments: %s\n", command.c_str());
        print_usage(stderr);
        return exit_usage;
    }
    Config config;
    if (!load_config_or_report(config_path, config, "idsyncctl"))
        return exit_usage;
    if (!dsn.empty())
        config.local_dsn = dsn;

    if (command == "status") {
        try {
            StatusReport report = collect_status(config);
            std::string text = json ? status_json(report) : status_text(report);
            fputs(text.c_str(), stdout);
            return report.all_in_sync() ? 0 : exit_not_in_sync;
        } catch (const std::exception &e) {
            fprintf(stderr, "idsyncctl: %s\n", e.what());
            return exit_not_in_sync;
        }
    }
    if (command == "repair" && dsn.empty()) {
        fprintf(stderr, "idsyncctl: repair merges the peer's rows here: it needs an "
                        "administrator's connection (--dsn)\n");
        return exit_usage;
    }
    if (command == "compare" || command == "repair") {
        std::string done;
        try {
            CompareReport report = command == "compare"
                                       ? compare_table(config, args[1], args[2])
                                       : repair_table(config, args[1], args[2], peer_dsn, &done);
            if (!json)
                fputs(done.c_str(), stdout);
            fputs((json ? compare_json(report) : compare_text(report)).c_str(), stdout);
            return report.clean() ? 0 : exit_not_in_sync;
        } catch (const std::invalid_argument &e) {
            fprintf(stderr, "idsyncctl: %s\n", e.what());
            return exit_usage;
        } catch (const std::exception &e) {
            fputs(done.c_str(), stdout); // what a repair did before it failed
            fprintf(stderr, "idsyncctl: %s\n", e.what());
            return exit_not_in_sync;
        }
    }
    try {
        if (command == "resync")
            fputs(request_resync(config, args[1], args[2]).c_str(), stdout);
        else if (command == "conflicts")
            fputs(conflicts_report(config, args.size() > 1 ? args[1] : "", json).c_str(), stdout);
        else if (args.size() > 1 && args[1] == "retry")
            fputs(retry_rejects(config, args.size() > 2 ? args[2] : "").c_str(), stdout);
        else if (args.size() > 1 && args[1] == "discard")
            fputs(discard_rejects(config, args[2], {args.begin() + 3, args.end()}).c_str(), stdout);
        else
            fputs(rejects_report(config, args.size() > 1 ? args[1] : "", json).c_str(), stdout);
    } catch (const std::invalid_argument &e) {
        fprintf(stderr, "idsyncctl: %s\n", e.what());
        return exit_usage;
    } catch (const std::exception &e) { // PgError, or what a server sent that did not parse
        fprintf(stderr, "idsyncctl: %s\n", e.what());
        return exit_not_in_sync;
    }
    return 0;
}
