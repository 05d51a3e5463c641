#include "http.hpp"

#include <list>
#include <sstream>

#include "log.hpp"

namespace {

constexpr size_t max_request_bytes = 8192;
constexpr uint64_t idle_client_ms = 10000; // a client that sends nothing useful is dropped

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
    case 413:
        return "Payload Too Large";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    }
    return "Unknown";
}

} // namespace

std::string HttpResponse::serialize() const
{
    std::ostringstream out;
    out << "HTTP/1.1 " << status << " " << reason(status) << "\r\n"
        << "Content-Type: " << content_type << "\r\n"
        << "Content-Length: " << body.size() << "\r\n";
    if (status == 405)
        out << "Allow: GET, HEAD\r\n";
    out << "Connection: close\r\n\r\n";
    if (!head_only)
        out << body;
    return out.str();
}

HttpRequestParser::HttpRequestParser()
{
    http_parser_init(&parser_, HTTP_REQUEST);
    http_parser_settings_init(&settings_);
    settings_.on_url = on_url;
    settings_.on_message_complete = on_message_complete;
    parser_.data = this;
}

int HttpRequestParser::on_url(http_parser *parser, const char *at, size_t length)
{
    static_cast<HttpRequestParser *>(parser->data)->url_.append(at, length);
    return 0;
}

int HttpRequestParser::on_message_complete(http_parser *parser)
{
    auto *self = static_cast<HttpRequestParser *>(parser->data);
    self->complete_ = true;
    http_parser_pause(parser, 1); // one request per connection; ignore what follows
    return 0;
}

HttpRequestParser::State HttpRequestParser::feed(const char *data, size_t size)
{
    if (complete_)
        return State::complete;
    if (!error_.empty())
        return State::error;
    received_ += size;
    http_parser_execute(&parser_, &settings_, data, size);
    enum http_errno code = HTTP_PARSER_ERRNO(&parser_);
    if (complete_) {
        http_parser_url url;
        http_parser_url_init(&url);
        if (http_parser_parse_url(url_.data(), url_.size(), 0, &url) != 0 ||
            !(url.field_set & (1 << UF_PATH))) {
            error_ = "bad URL";
            return State::error;
        }
        request_.path = url_.substr(url.field_data[UF_PATH].off, url.field_data[UF_PATH].len);
        request_.method = http_method_str(static_cast<http_method>(parser_.method));
        return State::complete;
    }
    if (code != HPE_OK) {
        error_ = http_errno_description(code);
        return State::error;
    }
    if (received_ > max_request_bytes) {
        error_ = "request too large";
        return State::error;
    }
    return State::incomplete;
}

HttpResponse route_request(const HttpRequest &request, const std::string &metrics_text,
                           const std::string &unhealthy)
{
    HttpResponse response;
    bool head = request.method == "HEAD";
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

// One accepted connection: read a request, answer, close. Freed in its close callback.
struct HttpServer::Client {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_write_t write;
    HttpServer *server;
    HttpRequestParser parser;
    std::string response;
    char buffer[2048];
    bool closing = false;
    int open_handles = 2;
    std::list<Client *>::iterator position;

    void close()
    {
        if (closing)
            return;
        closing = true;
        if (server)
            server->clients_.erase(position);
        server = nullptr;
        auto done = [](uv_handle_t *handle) {
            auto *client = static_cast<Client *>(handle->data);
            if (--client->open_handles == 0)
                delete client;
        };
        uv_close(reinterpret_cast<uv_handle_t *>(&timer), done);
        uv_close(reinterpret_cast<uv_handle_t *>(&tcp), done);
    }

    void answer(const HttpResponse &reply)
    {
        uv_read_stop(reinterpret_cast<uv_stream_t *>(&tcp));
        response = reply.serialize();
        uv_buf_t buf = uv_buf_init(response.data(), static_cast<unsigned>(response.size()));
        write.data = this;
        if (uv_write(&write, reinterpret_cast<uv_stream_t *>(&tcp), &buf, 1,
                     [](uv_write_t *request, int) {
                         static_cast<Client *>(request->data)->close();
                     }) != 0)
            close();
    }
};

HttpServer::HttpServer(uv_loop_t *loop, Handler handler) : loop_(loop), handler_(std::move(handler))
{
}

HttpServer::~HttpServer()
{
    close();
}

std::string HttpServer::listen(const ListenAddress &address)
{
    std::string host = address.host == "localhost" ? "127.0.0.1" : address.host;
    std::string where = address.host + ":" + std::to_string(address.port);
    sockaddr_storage storage;
    if (uv_ip4_addr(host.c_str(), address.port, reinterpret_cast<sockaddr_in *>(&storage)) != 0 &&
        uv_ip6_addr(host.c_str(), address.port, reinterpret_cast<sockaddr_in6 *>(&storage)) != 0)
        return "cannot listen on " + where + ": not an IP address";
    server_ = new uv_tcp_t;
    uv_tcp_init(loop_, server_);
    server_->data = this;
    int rc = uv_tcp_bind(server_, reinterpret_cast<sockaddr *>(&storage), 0);
    if (rc == 0)
        rc = uv_listen(reinterpret_cast<uv_stream_t *>(server_), 64, on_connection);
    if (rc != 0) {
        close();
        return "cannot listen on " + where + ": " + uv_strerror(rc);
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
    uv_close(reinterpret_cast<uv_handle_t *>(server_),
             [](uv_handle_t *handle) { delete reinterpret_cast<uv_tcp_t *>(handle); });
    server_ = nullptr;
}

void HttpServer::on_connection(uv_stream_t *listener, int status)
{
    auto *self = static_cast<HttpServer *>(listener->data);
    if (!self || status < 0)
        return;
    auto *client = new Client;
    client->server = self;
    uv_tcp_init(self->loop_, &client->tcp);
    uv_timer_init(self->loop_, &client->timer);
    client->tcp.data = client;
    client->timer.data = client;
    client->position = self->clients_.insert(self->clients_.end(), client);
    if (uv_accept(listener, reinterpret_cast<uv_stream_t *>(&client->tcp)) != 0) {
        client->close();
        return;
    }
    uv_timer_start(
        &client->timer, [](uv_timer_t *timer) { static_cast<Client *>(timer->data)->close(); },
        idle_client_ms, 0);
    uv_read_start(
        reinterpret_cast<uv_stream_t *>(&client->tcp),
        [](uv_handle_t *handle, size_t, uv_buf_t *buf) {
            auto *c = static_cast<Client *>(handle->data);
            *buf = uv_buf_init(c->buffer, sizeof c->buffer);
        },
        [](uv_stream_t *stream, ssize_t size, const uv_buf_t *buf) {
            auto *c = static_cast<Client *>(stream->data);
            if (size < 0 || !c->server) {
                c->close();
                return;
            }
            HttpRequestParser::State state = c->parser.feed(buf->base, static_cast<size_t>(size));
            if (state == HttpRequestParser::State::incomplete)
                return;
            HttpResponse reply;
            if (state == HttpRequestParser::State::error) {
                reply.status = 400;
                reply.body = c->parser.error() + "\n";
            } else {
                try {
                    reply = c->server->handler_(c->parser.request());
                } catch (const std::exception &e) {
                    reply.status = 500;
                    reply.body = "internal error\n";
                    log_error(std::string("metrics endpoint: ") + e.what());
                }
            }
            c->answer(reply);
        });
}
