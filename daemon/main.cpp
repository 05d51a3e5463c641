// idsyncd: replicates idsync's registered tables from this node's database to its peers.
//
//   idsyncd -c FILE [--once] [--verbose]    run (forever, or one pass to every peer)
//   idsyncd --check-config FILE             validate FILE, explain errors with file and line
//
// Exit status: 0 success; 1 a --once pass did not fully succeed; 2 usage or configuration error.
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <getopt.h>
#include <string>
#include <vector>

#include <uv.h>

#include "config.hpp"
#include "log.hpp"
#include "replicator.hpp"

#ifndef IDSYNC_VERSION
#define IDSYNC_VERSION "unknown"
#endif

namespace {

constexpr int exit_usage = 2;

void print_usage(FILE *out)
{
    fprintf(out, "Usage: idsyncd -c FILE [--once] [--verbose]\n"
                 "       idsyncd --check-config FILE\n"
                 "\n"
                 "Replicates the tables registered with idsync.replicate() in the local database\n"
                 "to every peer of the configuration file, the way OpenStack Swift replicates\n"
                 "container databases.\n"
                 "\n"
                 "  -c, --config FILE        the INI configuration file\n"
                 "      --check-config FILE  validate FILE and exit (0 valid, 2 not)\n"
                 "      --once               one pass to every peer, then exit: 0 only if every\n"
                 "                           table reached every peer completely\n"
                 "  -v, --verbose            log every table pass and mode decision\n"
                 "  -h, --help               this text\n"
                 "  -V, --version            the version\n"
                 "\n"
                 "Signals: SIGTERM/SIGINT stop after the batch in flight; SIGHUP reloads FILE.\n");
}

} // namespace

int main(int argc, char **argv)
{
    enum { opt_check = 1000, opt_once };
    const option options[] = {
        {"config", required_argument, nullptr, 'c'},
        {"check-config", required_argument, nullptr, opt_check},
        {"once", no_argument, nullptr, opt_once},
        {"verbose", no_argument, nullptr, 'v'},
        {"help", no_argument, nullptr, 'h'},
        {"version", no_argument, nullptr, 'V'},
        {nullptr, 0, nullptr, 0},
    };
    std::string config_path;
    std::string check_path;
    bool once = false;
    int opt;
    while ((opt = getopt_long(argc, argv, "c:vhV", options, nullptr)) != -1) {
        switch (opt) {
        case 'c':
            config_path = optarg;
            break;
        case opt_check:
            check_path = optarg;
            break;
        case opt_once:
            once = true;
            break;
        case 'v':
            log_set_verbose(true);
            break;
        case 'h':
            print_usage(stdout);
            return 0;
        case 'V':
            printf("idsyncd %s\n", IDSYNC_VERSION);
            return 0;
        default:
            print_usage(stderr);
            return exit_usage;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "idsyncd: unexpected argument \"%s\"\n", argv[optind]);
        print_usage(stderr);
        return exit_usage;
    }

    if (!check_path.empty()) {
        Config config;
        if (!load_config_or_report(check_path, config, "idsyncd"))
            return exit_usage;
        printf("%s: valid\n%s", check_path.c_str(), describe_config(config).c_str());
        return 0;
    }
    if (config_path.empty()) {
        fprintf(stderr, "idsyncd: no configuration file (-c FILE)\n");
        print_usage(stderr);
        return exit_usage;
    }
    Config config;
    if (!load_config_or_report(config_path, config, "idsyncd"))
        return exit_usage;

    // A metrics client hanging up mid-response must not kill the daemon.
    signal(SIGPIPE, SIG_IGN);
    uv_loop_t loop;
    uv_loop_init(&loop);
    int status;
    {
        Replicator replicator(&loop, config, once);
        status = replicator.run();
    }
    uv_run(&loop, UV_RUN_DEFAULT); // let the close callbacks of the last handles run
    uv_loop_close(&loop);
    return status;
}
