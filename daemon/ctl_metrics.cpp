#include "ctl_metrics.hpp"

#include <cstring>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <http_parser.h>

#include "uv_util.hpp"

namespace {

// Waits for `events` on `fd` until `deadline` (monotonic seconds).
bool wait_fd(int fd, short events, double deadline)
{
    double left = deadline - monotonic_seconds();
    if (left <= 0)
        return false;
    pollfd p = {fd, events, 0};
    return poll(&p, 1, static_cast<int>(left * 1000) + 1) == 1;
}

int connect_to(const ListenAddress &address, double deadline)
{
    addrinfo hints = {};
    hints.ai_socktype = SOCK_STREAM;
    addrinfo *found = nullptr;
    if (getaddrinfo(address.host.c_str(), std::to_string(address.port).c_str(), &hints, &found) !=
        0)
        return -1;
    int fd = -1;
    for (addrinfo *a = found; a != nullptr && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0)
            continue;
        int error = 0;
        socklen_t length = sizeof error;
        if ((connect(fd, a->ai_addr, a->ai_addrlen) != 0 &&
             (errno != EINPROGRESS || !wait_fd(fd, POLLOUT, deadline))) ||
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) != 0 || error != 0) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(found);
    return fd;
}

struct Response {
    int status = 0;
    std::string body;
    bool complete = false;
};

int on_body(http_parser *parser, const char *at, size_t length)
{
    static_cast<Response *>(parser->data)->body.append(at, length);
    return 0;
}

int on_complete(http_parser *parser)
{
    auto *response = static_cast<Response *>(parser->data);
    response->status = static_cast<int>(parser->status_code);
    response->complete = true;
    return 0;
}

// The value of label `name` in a label set `{a="x",b="y"}` (escapes undone), or "".
std::string label(const std::string &labels, const std::string &name)
{
    std::string key = name + "=\"";
    for (size_t at = labels.find(key); at != std::string::npos; at = labels.find(key, at + 1)) {
        if (at != 1 && labels[at - 1] != ',')
            continue;
        std::string value;
        for (size_t i = at + key.size(); i < labels.size() && labels[i] != '"'; i++) {
            if (labels[i] == '\\' && i + 1 < labels.size()) {
                i++;
                value += labels[i] == 'n' ? '\n' : labels[i];
            } else {
                value += labels[i];
            }
        }
        return value;
    }
    return "";
}

} // namespace

std::optional<std::string> fetch_metrics(const ListenAddress &address, double timeout)
{
    if (!address.enabled)
        return std::nullopt;
    double deadline = monotonic_seconds() + timeout;
    int fd = connect_to(address, deadline);
    if (fd < 0)
        return std::nullopt;
    std::string request =
        "GET /metrics HTTP/1.1\r\nHost: " + address.host + "\r\nConnection: close\r\n\r\n";
    bool sent = send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
                static_cast<ssize_t>(request.size());
    Response response;
    http_parser parser;
    http_parser_init(&parser, HTTP_RESPONSE);
    parser.data = &response;
    http_parser_settings settings;
    http_parser_settings_init(&settings);
    settings.on_body = on_body;
    settings.on_message_complete = on_complete;
    char buffer[65536];
    while (sent && !response.complete && wait_fd(fd, POLLIN, deadline)) {
        ssize_t n = recv(fd, buffer, sizeof buffer, 0);
        if (n <= 0) {
            http_parser_execute(&parser, &settings, buffer, 0); // the end of a close-delimited body
            break;
        }
        if (http_parser_execute(&parser, &settings, buffer, static_cast<size_t>(n)) !=
            static_cast<size_t>(n))
            break;
    }
    close(fd);
    if (!response.complete || response.status != 200)
        return std::nullopt;
    return response.body;
}

LastPasses parse_last_passes(const std::string &metrics)
{
    const std::string name = "idsyncd_last_pass_timestamp_seconds{";
    LastPasses passes;
    size_t start = 0;
    while (start < metrics.size()) {
        size_t end = metrics.find('\n', start);
        if (end == std::string::npos)
            end = metrics.size();
        std::string line = metrics.substr(start, end - start);
        start = end + 1;
        if (line.compare(0, name.size(), name) != 0)
            continue;
        size_t close = line.rfind("} ");
        if (close == std::string::npos)
            continue;
        std::string labels = line.substr(name.size() - 1, close + 1 - (name.size() - 1));
        LastPass pass;
        pass.mode = label(labels, "mode");
        pass.outcome = label(labels, "outcome");
        pass.time = std::strtod(line.c_str() + close + 2, nullptr);
        passes[{label(labels, "peer"), label(labels, "table")}] = pass;
    }
    return passes;
}
