// The metrics endpoint: HTTP/1.1 requests parsed with http_parser (libhttp-parser) on libuv
// TCP streams. One request per connection; the response closes it.
#pragma once

#include <functional>
#include <list>
#include <memory>
#include <string>

#include <http_parser.h>
#include <uv.h>

#include "config.hpp"

struct HttpRequest {
    std::string method; // "GET", "HEAD", ...
    std::string path;   // the URL's path, without the query string
};

struct HttpResponse {
    int status = 200;
    std::string content_type = "text/plain; charset=utf-8";
    std::string body;
    bool head_only = false;        // HEAD: headers with the body's length, no body
    std::string serialize() const; // status line, headers (Content-Length, Connection: close), body
};

// Feeds bytes as they arrive; complete() once the request (headers and any body) is in.
class HttpRequestParser {
public:
    HttpRequestParser();
    enum class State { incomplete, complete, error };
    State feed(const char *data, size_t size);
    const HttpRequest &request() const { return request_; }
    const std::string &error() const { return error_; }

private:
    static int on_url(http_parser *parser, const char *at, size_t length);
    static int on_message_complete(http_parser *parser);
    http_parser parser_;
    http_parser_settings settings_;
    HttpRequest request_;
    std::string url_;
    std::string error_;
    size_t received_ = 0;
    bool complete_ = false;
};

// What the daemon answers: GET/HEAD /metrics (Prometheus text), GET/HEAD /healthz ("ok", or 503
// with the reason when `unhealthy` is not empty), 404 for other paths, 405 for other methods.
HttpResponse route_request(const HttpRequest &request, const std::string &metrics_text,
                           const std::string &unhealthy);

// Listens on a loopback (or configured) TCP address and answers each request with `handler`.
class HttpServer {
public:
    using Handler = std::function<HttpResponse(const HttpRequest &)>;
    HttpServer(uv_loop_t *loop, Handler handler);
    ~HttpServer();
    // Returns "" or an error message (address in use, bad address).
    std::string listen(const ListenAddress &address);
    // Stops listening and closes open client connections; handles are freed by libuv callbacks.
    void close();

private:
    struct Client;
    static void on_connection(uv_stream_t *server, int status);
    uv_loop_t *loop_;
    Handler handler_;
    uv_tcp_t *server_ = nullptr;  // owned by libuv callbacks once closed
    std::list<Client *> clients_; // open connections, closed with the server
};
