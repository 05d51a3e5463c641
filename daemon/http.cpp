#include "http.hpp"

#include <algorithm>

#include "log.hpp"

namespace {

constexpr size_t max_request_bytes = 8192;
constexpr int listen_backlog = 64;
// From accept to close, whatever the client does: a slowloris trickling bytes is cut off too.
constexpr uint64_t client_deadline_ms = 10000;

const char *reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    }
    return "Unknown";
}

uv_handle_t *as_handle(void *handle)
{
    return static_cast<uv_handle_t *>(handle);
}

uv_stream_t *as_stream(uv_tcp_t *tcp)
{
    return reinterpret_cast<uv_stream_t *>(tcp);
}

// "127.0.0.1:9187" or "[::1]:9187", for messages.
std::string display(const ListenAddress &address)
{
    bool v6 = address.host.find(':') != std::string::npos;
    std::string host = v6 ? "[" + address.host + "]" : address.host;
    return host + ":" + std::to_string(address.port);
}

// An IP literal (or "localhost") into a socket address; no name lookup, so no blocking.
bool resolve(const ListenAddress &address, sockaddr_storage &out)
{
    std::string host = address.host == "localhost" ? "127.0.0.1" : address.host;
    return uv_ip4_addr(host.c_str(), address.port, reinterpret_cast<sockaddr_in *>(&out)) == 0 ||
           uv_ip6_addr(host.c_str(), address.port, reinterpret_cast<sockaddr_in6 *>(&out)) == 0;
}

} // namespace

std::string HttpResponse::serialize() const
{
    std::string out = "HTTP/1.1 " + std::to_string(status) + " " + reason(status) + "\r\n";
    out += "Content-Type: " + content_type + "\r\n";
    out += "Content-Length: " + std::to_string(body.size()) + "\r\n";
    if (status == 405) // RFC 9110 requires Allow on every 405
        out += "Allow: GET, HEAD\r\n";
    out += "Connection: close\r\n\r\n";
    if (!head_only)
        out += body;
    return out;
}

HttpRequestParser::HttpRequestParser()
{
    http_parser_init(&parser_, HTTP_REQUEST);
    http_parser_settings_init(&settings_);
    settings_.on_url = on_url;
    settings_.on_message_complete = on_message_complete;
    parser_.data = this;
}

// http_parser is C: an exception must not unwind through it, so failures become a non-zero
// return, which stops the parser with an error.
int HttpRequestParser::on_url(http_parser *parser, const char *at, size_t length)
{
    try {
        static_cast<HttpRequestParser *>(parser->data)->url_.append(at, length);
        return 0;
    } catch (...) {
        return 1;
    }
}

int HttpRequestParser::on_message_complete(http_parser *parser)
{
    auto *self = static_cast<HttpRequestParser *>(parser->data);
    try {
        http_parser_url url;
        http_parser_url_init(&url);
        if (http_parser_parse_url(self->url_.data(), self->url_.size(),
                                  parser->method == HTTP_CONNECT, &url) != 0) {
            self->error_ = "bad URL";
            return 1;
        }
        // An absolute URL without a path ("http://host") asks for the root.
        self->request_.path = "/";
        if (url.field_set & (1 << UF_PATH))
            self->request_.path =
                self->url_.substr(url.field_data[UF_PATH].off, url.field_data[UF_PATH].len);
        self->request_.method = http_method_str(static_cast<http_method>(parser->method));
        self->complete_ = true;
    } catch (...) {
        return 1;
    }
    http_parser_pause(parser, 1); // one request per connection: ignore whatever follows
    return 0;
}

HttpRequestParser::State HttpRequestParser::feed(const char *data, size_t size)
{
    if (!error_.empty())
        return State::error;
    if (complete_)
        return State::complete;
    // Never hand http_parser more than the limit allows, and never zero bytes: it reads those
    // as the end of the stream.
    size_t take = std::min(size, max_request_bytes - received_);
    if (take > 0) {
        received_ += take;
        http_parser_execute(&parser_, &settings_, data, take);
    }
    if (!error_.empty())
        return State::error;
    if (complete_)
        return State::complete;
    if (HTTP_PARSER_ERRNO(&parser_) != HPE_OK)
        error_ = http_errno_description(HTTP_PARSER_ERRNO(&parser_));
    else if (take < size)
        error_ = "request too large";
    return error_.empty() ? State::incomplete : State::error;
}

HttpResponse route_request(const HttpRequest &request, const std::string &metrics_text,
                           const std::string &unhealthy)
{
    HttpResponse response;
    bool head = request.method == "HEAD";
    // An unknown path is 404 whatever the method; 405 is for the paths we serve.
    if (request.path != "/metrics" && request.path != "/healthz") {
        response.status = 404;
        response.body = "not found\n";
    } else if (request.method != "GET" && !head) {
        response.status = 405;
        response.body = "method not allowed\n";
    } else if (request.path == "/metrics") {
        response.content_type = "text/plain; version=0.0.4; charset=utf-8";
        response.body = metrics_text;
    } else if (unhealthy.empty()) {
        response.body = "ok\n";
    } else {
        response.status = 503;
        response.body = unhealthy + "\n";
    }
    response.head_only = head;
    return response;
}

// One accepted connection: read a request, answer, close. Both handles live inside it; it deletes
// itself once libuv has closed both.
struct HttpServer::Client {
    explicit Client(HttpServer *owner) : server(owner) {}

    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_write_t write;
    HttpServer *server; // null once closing: the server may be gone by then
    HttpRequestParser parser;
    std::string response; // must outlive the write
    char buffer[4096];
    int open_handles = 2;
    bool closing = false;
    std::list<Client *>::iterator position;

    void start();
    void close();
    HttpResponse reply(HttpRequestParser::State state);
    void respond(HttpRequestParser::State state);

    static void on_alloc(uv_handle_t *handle, size_t, uv_buf_t *buf);
    static void on_read(uv_stream_t *stream, ssize_t size, const uv_buf_t *buf);
    static void on_write(uv_write_t *request, int status);
    static void on_deadline(uv_timer_t *timer);
    static void on_closed(uv_handle_t *handle);
};

void HttpServer::Client::start()
{
    uv_timer_start(&timer, on_deadline, client_deadline_ms, 0);
    if (uv_read_start(as_stream(&tcp), on_alloc, on_read) != 0)
        close();
}

void HttpServer::Client::close()
{
    if (closing)
        return;
    closing = true;
    if (server)
        server->clients_.erase(position);
    server = nullptr;
    uv_close(as_handle(&timer), on_closed);
    uv_close(as_handle(&tcp), on_closed);
}

// 400 for what the parser rejected, the handler's answer otherwise, 500 if it threw.
HttpResponse HttpServer::Client::reply(HttpRequestParser::State state)
{
    HttpResponse response;
    if (state == HttpRequestParser::State::error) {
        response.status = 400;
        response.body = parser.error() + "\n";
        return response;
    }
    try {
        return server->handler_(parser.request());
    } catch (const std::exception &e) {
        log_error(std::string("metrics endpoint: ") + e.what());
    } catch (...) {
        log_error("metrics endpoint: unknown exception");
    }
    response.status = 500;
    response.body = "internal error\n";
    return response;
}

void HttpServer::Client::respond(HttpRequestParser::State state)
{
    uv_read_stop(as_stream(&tcp));
    response = reply(state).serialize();
    uv_buf_t buf = uv_buf_init(response.data(), static_cast<unsigned>(response.size()));
    write.data = this;
    if (uv_write(&write, as_stream(&tcp), &buf, 1, on_write) != 0)
        close();
}

void HttpServer::Client::on_alloc(uv_handle_t *handle, size_t, uv_buf_t *buf)
{
    auto *client = static_cast<Client *>(handle->data);
    *buf = uv_buf_init(client->buffer, sizeof client->buffer);
}

void HttpServer::Client::on_read(uv_stream_t *stream, ssize_t size, const uv_buf_t *buf)
{
    auto *client = static_cast<Client *>(stream->data);
    if (size < 0 || client->closing) { // EOF or error before a whole request: nothing to answer
        client->close();
        return;
    }
    HttpRequestParser::State state = client->parser.feed(buf->base, static_cast<size_t>(size));
    if (state == HttpRequestParser::State::incomplete)
        return;
    try {
        client->respond(state);
    } catch (...) { // out of memory: drop the connection rather than unwind through libuv
        client->close();
    }
}

void HttpServer::Client::on_write(uv_write_t *request, int)
{
    static_cast<Client *>(request->data)->close();
}

void HttpServer::Client::on_deadline(uv_timer_t *timer)
{
    static_cast<Client *>(timer->data)->close();
}

void HttpServer::Client::on_closed(uv_handle_t *handle)
{
    auto *client = static_cast<Client *>(handle->data);
    if (--client->open_handles == 0)
        delete client;
}

HttpServer::HttpServer(uv_loop_t *loop, Handler handler) : loop_(loop), handler_(std::move(handler))
{
}

HttpServer::~HttpServer()
{
    close();
}

std::string HttpServer::listen(const ListenAddress &address)
{
    std::string prefix = "cannot listen on " + display(address) + ": ";
    if (server_)
        return prefix + "already listening";
    if (address.port < 0 || address.port > 65535)
        return prefix + "port out of range";
    sockaddr_storage storage{};
    if (!resolve(address, storage))
        return prefix + "not an IP address (use localhost or an IPv4/IPv6 literal)";
    server_ = new uv_tcp_t;
    uv_tcp_init(loop_, server_);
    server_->data = this;
    int rc = uv_tcp_bind(server_, reinterpret_cast<sockaddr *>(&storage), 0);
    if (rc == 0) // libuv may report a bind error only here
        rc = uv_listen(as_stream(server_), listen_backlog, on_connection);
    if (rc != 0) {
        close();
        return prefix + uv_strerror(rc);
    }
    return "";
}

void HttpServer::close()
{
    while (!clients_.empty())
        clients_.front()->close();
    if (!server_)
        return;
    server_->data = nullptr;
    uv_close(as_handle(server_),
             [](uv_handle_t *handle) { delete reinterpret_cast<uv_tcp_t *>(handle); });
    server_ = nullptr;
}

void HttpServer::on_connection(uv_stream_t *listener, int status)
{
    auto *self = static_cast<HttpServer *>(listener->data);
    if (!self || status < 0)
        return;
    Client *client = nullptr;
    try { // allocate before any handle exists, so a failure leaves nothing to close
        client = new Client(self);
        client->position = self->clients_.insert(self->clients_.end(), client);
    } catch (...) {
        delete client;
        return;
    }
    uv_tcp_init(self->loop_, &client->tcp);
    uv_timer_init(self->loop_, &client->timer);
    client->tcp.data = client;
    client->timer.data = client;
    if (uv_accept(listener, as_stream(&client->tcp)) != 0) {
        client->close();
        return;
    }
    client->start();
}
