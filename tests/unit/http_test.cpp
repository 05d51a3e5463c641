// The metrics endpoint: request parsing, routing, response text, and a real server on libuv.
#include <algorithm>
#include <stdexcept>
#include <string>

#include <unistd.h>

#include "http.hpp"
#include "suites.hpp"

namespace {

using State = HttpRequestParser::State;

State feed(HttpRequestParser &parser, const std::string &text)
{
    return parser.feed(text.data(), text.size());
}

HttpRequest get(const std::string &path)
{
    return HttpRequest{"GET", path};
}

bool has_text(const std::string &text, const std::string &part)
{
    return text.find(part) != std::string::npos;
}

// A port of our own: Check runs the tests as separate processes, maybe several suites at once.
int test_port(int attempt)
{
    return 19000 + static_cast<int>((getpid() + attempt * 97) % 1000);
}

// Listens on 127.0.0.1 at the first free test port; returns the port.
int listen_somewhere(HttpServer &server)
{
    std::string error;
    for (int attempt = 0; attempt < 20; attempt++) {
        error = server.listen(ListenAddress{true, "127.0.0.1", test_port(attempt)});
        if (error.empty())
            return test_port(attempt);
    }
    ck_abort_msg("cannot listen: %s", error.c_str());
    return -1;
}

// A client in the server's own loop: connects, writes `request`, reads until EOF, then closes the
// server so that the loop runs dry.
struct Exchange {
    HttpServer *server = nullptr;
    std::string request;
    bool half_close = false; // shut down our side after writing (an unfinished request)
    std::string response;
    int read_error = 0;
    uv_tcp_t tcp;
    uv_connect_t connect;
    uv_write_t write;
    uv_shutdown_t shutdown;
    char buffer[1024];

    void start(uv_loop_t *loop, int port)
    {
        sockaddr_in address;
        uv_ip4_addr("127.0.0.1", port, &address);
        uv_tcp_init(loop, &tcp);
        tcp.data = this;
        connect.data = this;
        ck_assert_int_eq(
            uv_tcp_connect(&connect, &tcp, reinterpret_cast<sockaddr *>(&address), on_connect), 0);
    }

    static void on_connect(uv_connect_t *request, int status)
    {
        auto *self = static_cast<Exchange *>(request->data);
        ck_assert_int_eq(status, 0);
        auto *stream = reinterpret_cast<uv_stream_t *>(&self->tcp);
        uv_buf_t buf = uv_buf_init(self->request.data(), self->request.size());
        self->write.data = self;
        ck_assert_int_eq(uv_write(&self->write, stream, &buf, 1, on_written), 0);
        uv_read_start(stream, on_alloc, on_read);
    }

    static void on_written(uv_write_t *request, int)
    {
        auto *self = static_cast<Exchange *>(request->data);
        if (self->half_close)
            uv_shutdown(&self->shutdown, reinterpret_cast<uv_stream_t *>(&self->tcp), nullptr);
    }

    static void on_alloc(uv_handle_t *handle, size_t, uv_buf_t *buf)
    {
        auto *self = static_cast<Exchange *>(handle->data);
        *buf = uv_buf_init(self->buffer, sizeof self->buffer);
    }

    static void on_read(uv_stream_t *stream, ssize_t size, const uv_buf_t *buf)
    {
        auto *self = static_cast<Exchange *>(stream->data);
        if (size > 0)
            self->response.append(buf->base, size);
        if (size >= 0)
            return;
        if (size != UV_EOF)
            self->read_error = static_cast<int>(size);
        uv_close(reinterpret_cast<uv_handle_t *>(stream), nullptr);
        self->server->close();
    }
};

// One request over TCP to a server answering with `handler`; returns the raw response.
std::string exchange(const std::string &request, HttpServer::Handler handler,
                     bool half_close = false)
{
    uv_loop_t loop;
    ck_assert_int_eq(uv_loop_init(&loop), 0);
    Exchange client;
    {
        HttpServer server(&loop, std::move(handler));
        client.server = &server;
        client.request = request;
        client.half_close = half_close;
        client.start(&loop, listen_somewhere(server));
        ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
    }
    ck_assert_int_eq(client.read_error, 0);
    ck_assert_int_eq(uv_loop_close(&loop), 0); // every handle closed and freed
    return client.response;
}

HttpResponse healthy(const HttpRequest &request)
{
    return route_request(request, "idsyncd_local_up 1\n", "");
}

} // namespace

START_TEST(parses_a_get_in_one_piece)
{
    HttpRequestParser parser;
    ck_assert(feed(parser, "GET /metrics HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n\r\n") ==
              State::complete);
    ck_assert_str_eq(parser.request().method.c_str(), "GET");
    ck_assert_str_eq(parser.request().path.c_str(), "/metrics");
    ck_assert_str_eq(parser.error().c_str(), "");
    // One request per connection: whatever follows does not change it.
    ck_assert(feed(parser, "POST /other HTTP/1.1\r\n\r\n") == State::complete);
    ck_assert_str_eq(parser.request().path.c_str(), "/metrics");
}
END_TEST

START_TEST(parses_a_request_byte_by_byte)
{
    std::string text = "HEAD /healthz HTTP/1.0\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc";
    HttpRequestParser parser;
    for (size_t i = 0; i + 1 < text.size(); i++)
        ck_assert_msg(parser.feed(&text[i], 1) == State::incomplete, "at byte %zu", i);
    ck_assert(parser.feed(nullptr, 0) == State::incomplete); // no data is not the end
    ck_assert(parser.feed(&text.back(), 1) == State::complete);
    ck_assert_str_eq(parser.request().method.c_str(), "HEAD");
    ck_assert_str_eq(parser.request().path.c_str(), "/healthz");
}
END_TEST

START_TEST(path_leaves_out_the_query_string)
{
    HttpRequestParser parser;
    ck_assert(feed(parser, "GET /metrics?name[]=x&y=1#frag HTTP/1.1\r\n\r\n") == State::complete);
    ck_assert_str_eq(parser.request().path.c_str(), "/metrics");
    HttpRequestParser absolute;
    ck_assert(feed(absolute, "GET http://host:9187/healthz?x HTTP/1.1\r\n\r\n") == State::complete);
    ck_assert_str_eq(absolute.request().path.c_str(), "/healthz");
}
END_TEST

START_TEST(garbage_is_an_error)
{
    HttpRequestParser parser;
    ck_assert(feed(parser, "\x16\x03\x01\x02\x00 hello\r\n\r\n") == State::error);
    ck_assert_str_ne(parser.error().c_str(), "");
    // It stays an error.
    ck_assert(feed(parser, "GET / HTTP/1.1\r\n\r\n") == State::error);
    HttpRequestParser bad_version;
    ck_assert(feed(bad_version, "GET / HTTP/x\r\n\r\n") == State::error);
}
END_TEST

START_TEST(oversized_request_is_an_error)
{
    std::string head = "GET /metrics HTTP/1.1\r\nX-Pad: ";
    std::string tail = "\r\n\r\n";
    // Exactly 8192 bytes are allowed...
    std::string fits = head + std::string(8192 - head.size() - tail.size(), 'a') + tail;
    HttpRequestParser parser;
    ck_assert(feed(parser, fits) == State::complete);
    // ...one more is not, whether in one piece or in many.
    std::string big = head + std::string(8193 - head.size() - tail.size(), 'a') + tail;
    HttpRequestParser whole;
    ck_assert(feed(whole, big) == State::error);
    ck_assert_str_eq(whole.error().c_str(), "request too large");
    HttpRequestParser pieces;
    State state = State::incomplete;
    for (size_t i = 0; i < big.size() && state == State::incomplete; i += 100)
        state = pieces.feed(big.data() + i, std::min<size_t>(100, big.size() - i));
    ck_assert(state == State::error);
    ck_assert_str_eq(pieces.error().c_str(), "request too large");
}
END_TEST

START_TEST(routes_metrics)
{
    HttpResponse response = route_request(get("/metrics"), "idsyncd_local_up 1\n", "stopping");
    ck_assert_int_eq(response.status, 200);
    ck_assert_str_eq(response.content_type.c_str(), "text/plain; version=0.0.4; charset=utf-8");
    ck_assert_str_eq(response.body.c_str(), "idsyncd_local_up 1\n");
    ck_assert(!response.head_only);
}
END_TEST

START_TEST(routes_healthz)
{
    HttpResponse ok = route_request(get("/healthz"), "m", "");
    ck_assert_int_eq(ok.status, 200);
    ck_assert_str_eq(ok.body.c_str(), "ok\n");
    HttpResponse sick = route_request(get("/healthz"), "m", "local database unreachable");
    ck_assert_int_eq(sick.status, 503);
    ck_assert_str_eq(sick.body.c_str(), "local database unreachable\n");
    ck_assert(has_text(sick.serialize(), "HTTP/1.1 503 Service Unavailable\r\n"));
}
END_TEST

START_TEST(unknown_path_is_404)
{
    for (const char *path : {"/", "/metrics/", "/Metrics", "/healthz/x", ""}) {
        HttpResponse response = route_request(get(path), "m", "");
        ck_assert_int_eq(response.status, 404);
        ck_assert_str_eq(response.body.c_str(), "not found\n");
    }
}
END_TEST

START_TEST(other_methods_are_405_with_allow)
{
    for (const char *method : {"POST", "PUT", "DELETE", "OPTIONS"}) {
        HttpResponse response = route_request(HttpRequest{method, "/metrics"}, "m", "");
        ck_assert_int_eq(response.status, 405);
        std::string text = response.serialize();
        ck_assert(has_text(text, "HTTP/1.1 405 Method Not Allowed\r\n"));
        ck_assert(has_text(text, "\r\nAllow: GET, HEAD\r\n"));
    }
    ck_assert(!has_text(route_request(get("/metrics"), "m", "").serialize(), "Allow:"));
}
END_TEST

START_TEST(head_has_a_length_but_no_body)
{
    HttpResponse response = route_request(HttpRequest{"HEAD", "/metrics"}, "0123456789", "");
    ck_assert_int_eq(response.status, 200);
    ck_assert(response.head_only);
    std::string text = response.serialize();
    ck_assert(has_text(text, "\r\nContent-Length: 10\r\n"));
    ck_assert(text.size() >= 4 && text.compare(text.size() - 4, 4, "\r\n\r\n") == 0);
    ck_assert(!has_text(text, "0123456789"));
}
END_TEST

START_TEST(serialize_writes_status_headers_and_body)
{
    HttpResponse response;
    response.body = "ok\n";
    std::string text = response.serialize(); // ck_assert_str_eq keeps only the pointer
    ck_assert_str_eq(text.c_str(), "HTTP/1.1 200 OK\r\n"
                                   "Content-Type: text/plain; charset=utf-8\r\n"
                                   "Content-Length: 3\r\n"
                                   "Connection: close\r\n"
                                   "\r\n"
                                   "ok\n");
    response.status = 400;
    response.body = "";
    ck_assert(has_text(response.serialize(), "HTTP/1.1 400 Bad Request\r\n"));
    ck_assert(has_text(response.serialize(), "\r\nContent-Length: 0\r\n"));
    response.status = 500;
    ck_assert(has_text(response.serialize(), "HTTP/1.1 500 Internal Server Error\r\n"));
}
END_TEST

START_TEST(server_answers_healthz)
{
    std::string response = exchange("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", healthy);
    ck_assert_str_eq(response.c_str(), "HTTP/1.1 200 OK\r\n"
                                       "Content-Type: text/plain; charset=utf-8\r\n"
                                       "Content-Length: 3\r\n"
                                       "Connection: close\r\n"
                                       "\r\n"
                                       "ok\n");
}
END_TEST

START_TEST(server_answers_garbage_with_400)
{
    std::string response = exchange("BREW /pot HTCPCP/1.0\r\n\r\n", healthy);
    ck_assert_msg(response.rfind("HTTP/1.1 400 Bad Request\r\n", 0) == 0, "%s", response.c_str());
}
END_TEST

START_TEST(server_answers_500_when_the_handler_throws)
{
    auto broken = [](const HttpRequest &) -> HttpResponse {
        throw std::runtime_error("metrics are broken");
    };
    std::string response = exchange("GET /metrics HTTP/1.1\r\n\r\n", broken);
    ck_assert(response.rfind("HTTP/1.1 500 Internal Server Error\r\n", 0) == 0);
    ck_assert(has_text(response, "\r\n\r\ninternal error\n"));
}
END_TEST

START_TEST(server_drops_an_unfinished_request)
{
    std::string response = exchange("GET /healthz HTTP/1.1\r\nHost:", healthy, true);
    ck_assert_str_eq(response.c_str(), "");
}
END_TEST

START_TEST(listen_reports_bad_addresses)
{
    uv_loop_t loop;
    ck_assert_int_eq(uv_loop_init(&loop), 0);
    {
        HttpServer server(&loop, healthy);
        std::string error = server.listen(ListenAddress{true, "example.com", 9187});
        ck_assert_str_eq(error.c_str(), "cannot listen on example.com:9187: not an IP address "
                                        "(use localhost or an IPv4/IPv6 literal)");
        HttpServer first(&loop, healthy);
        int port = listen_somewhere(first);
        error = server.listen(ListenAddress{true, "localhost", port});
        std::string expected =
            "cannot listen on localhost:" + std::to_string(port) + ": address already in use";
        ck_assert_str_eq(error.c_str(), expected.c_str());
    }
    ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
    ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

// The daemon may stop its loop right after close(): what is half closed must still be freed when
// the loop runs again, and a second close() must do nothing.
struct StopAfterClose {
    HttpServer *server;
    uv_loop_t *loop;
};

START_TEST(close_twice_with_a_client_half_way)
{
    uv_loop_t loop;
    ck_assert_int_eq(uv_loop_init(&loop), 0);
    Exchange client;
    uv_timer_t timer;
    {
        HttpServer server(&loop, healthy);
        client.server = &server;
        client.request = "GET /metrics HTTP/1.1\r\n"; // never finished
        client.start(&loop, listen_somewhere(server));
        StopAfterClose stop{&server, &loop};
        uv_timer_init(&loop, &timer);
        timer.data = &stop;
        // Long enough for the server to accept and read the partial request.
        uv_timer_start(
            &timer,
            [](uv_timer_t *handle) {
                auto *stop = static_cast<StopAfterClose *>(handle->data);
                stop->server->close();
                uv_close(reinterpret_cast<uv_handle_t *>(handle), nullptr);
                uv_stop(stop->loop);
            },
            100, 0);
        uv_run(&loop, UV_RUN_DEFAULT);
        server.close();
        ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
    } // the destructor closes a third time
    ck_assert_str_eq(client.response.c_str(), "");
    ck_assert_int_eq(client.read_error, 0); // an EOF: the server had accepted, then closed
    ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

Suite *http_suite()
{
    Suite *suite = suite_create("http");
    TCase *parse = tcase_create("parse");
    tcase_add_test(parse, parses_a_get_in_one_piece);
    tcase_add_test(parse, parses_a_request_byte_by_byte);
    tcase_add_test(parse, path_leaves_out_the_query_string);
    tcase_add_test(parse, garbage_is_an_error);
    tcase_add_test(parse, oversized_request_is_an_error);
    suite_add_tcase(suite, parse);
    TCase *route = tcase_create("route");
    tcase_add_test(route, routes_metrics);
    tcase_add_test(route, routes_healthz);
    tcase_add_test(route, unknown_path_is_404);
    tcase_add_test(route, other_methods_are_405_with_allow);
    tcase_add_test(route, head_has_a_length_but_no_body);
    tcase_add_test(route, serialize_writes_status_headers_and_body);
    suite_add_tcase(suite, route);
    TCase *server = tcase_create("server");
    tcase_add_test(server, server_answers_healthz);
    tcase_add_test(server, server_answers_garbage_with_400);
    tcase_add_test(server, server_answers_500_when_the_handler_throws);
    tcase_add_test(server, server_drops_an_unfinished_request);
    tcase_add_test(server, listen_reports_bad_addresses);
    tcase_add_test(server, close_twice_with_a_client_half_way);
    suite_add_tcase(suite, server);
    return suite;
}
