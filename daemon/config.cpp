#include "config.hpp"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>

#include <arpa/inet.h>
#include <ini.h>
#include <libpq-fe.h>

namespace {

// inih hands its reader one physical line at a time (a line longer than its buffer, INI_MAX_LINE
// in Debian's build, arrives in pieces): counting the calls gives every key its line number.
struct Parse {
    const std::string *text;
    size_t offset = 0;
    int line = 0;
    bool mid_line = false; // the last piece did not end the line
    std::string name;
    Config *config;
    std::vector<ConfigError> *errors;
    std::map<std::string, int> seen;       // "section\nkey" -> line
    std::map<std::string, int> peer_lines; // peer name -> line of its section
    std::string last_section;
    int backoff_max_line = 0;
};

void error(Parse &parse, int line, const std::string &message)
{
    parse.errors->push_back({parse.name, line, message});
}

void enter_section(Parse &parse, const std::string &section);

char *read_line(char *buffer, int size, void *stream)
{
    auto &parse = *static_cast<Parse *>(stream);
    const std::string &text = *parse.text;
    if (parse.offset >= text.size() || size < 2)
        return nullptr;
    size_t end = text.find('\n', parse.offset);
    size_t line_end = end == std::string::npos ? text.size() : end + 1;
    size_t take = std::min(line_end - parse.offset, static_cast<size_t>(size - 1));
    memcpy(buffer, text.data() + parse.offset, take);
    buffer[take] = '\0';
    if (!parse.mid_line)
        parse.line++;
    // Sections are noticed here, since inih calls no handler for a section without keys.
    if (!parse.mid_line) {
        size_t start = text.find_first_not_of(" \t", parse.offset);
        if (start < line_end && text[start] == '[') {
            size_t close = text.find(']', start);
            if (close != std::string::npos && close < line_end)
                enter_section(parse, text.substr(start + 1, close - start - 1));
        }
    }
    bool whole = parse.offset + take == line_end;
    if (!whole && !parse.mid_line)
        error(parse, parse.line,
              "line too long (at most " + std::to_string(size - 2) + " characters)");
    parse.mid_line = !whole;
    parse.offset += take;
    return buffer;
}

bool parse_number(const std::string &text, double &out)
{
    if (text.empty())
        return false;
    char *end = nullptr;
    errno = 0;
    double value = strtod(text.c_str(), &end);
    if (errno != 0 || *end != '\0' || !std::isfinite(value))
        return false;
    out = value;
    return true;
}

bool parse_integer(const std::string &text, long min, long max, int &out)
{
    if (text.empty())
        return false;
    char *end = nullptr;
    errno = 0;
    long value = strtol(text.c_str(), &end, 10);
    if (errno != 0 || *end != '\0' || value < min || value > max)
        return false;
    out = static_cast<int>(value);
    return true;
}

// libpq's own parser decides whether a connection string is valid; its message never quotes
// the string back, but the string itself is never put in ours.
std::string check_dsn(const std::string &dsn)
{
    char *message = nullptr;
    PQconninfoOption *options = PQconninfoParse(dsn.c_str(), &message);
    if (options) {
        PQconninfoFree(options);
        return "";
    }
    std::string text = message ? message : "invalid connection string";
    if (message)
        PQfreemem(message);
    while (!text.empty() && (text.back() == '\n' || text.back() == ' '))
        text.pop_back();
    return text;
}

const char *known_settings = "local, interval, per_diff, max_diffs, bulk_ratio, concurrency, "
                             "node_timeout, conn_timeout, backoff_base, backoff_max, "
                             "progress_interval, metrics_listen";

void set_seconds(Parse &parse, const std::string &key, const std::string &value, double &out,
                 bool allow_zero = false)
{
    double number;
    if (!parse_number(value, number) || number < 0 || (!allow_zero && number == 0))
        error(parse, parse.line, key + " must be a number of seconds > 0 (got \"" + value + "\")");
    else
        out = number;
}

void set_integer(Parse &parse, const std::string &key, const std::string &value, long max, int &out)
{
    if (!parse_integer(value, 1, max, out))
        error(parse, parse.line,
              key + " must be a whole number from 1 to " + std::to_string(max) + " (got \"" +
                  value + "\")");
}

void set_daemon_key(Parse &parse, const std::string &key, const std::string &value)
{
    Config &config = *parse.config;
    if (key == "local") {
        std::string problem = check_dsn(value);
        if (!problem.empty())
            error(parse, parse.line, "local is not a valid connection string: " + problem);
        config.local_dsn = value;
    } else if (key == "interval") {
        set_seconds(parse, key, value, config.interval);
    } else if (key == "per_diff") {
        set_integer(parse, key, value, 1000000, config.per_diff);
    } else if (key == "max_diffs") {
        set_integer(parse, key, value, 1000000, config.max_diffs);
    } else if (key == "bulk_ratio") {
        double ratio;
        if (!parse_number(value, ratio) || ratio < 0 || ratio > 1)
            error(parse, parse.line,
                  "bulk_ratio must be a number from 0 to 1 (got \"" + value + "\")");
        else
            config.bulk_ratio = ratio;
    } else if (key == "concurrency") {
        set_integer(parse, key, value, 1024, config.concurrency);
    } else if (key == "node_timeout") {
        set_seconds(parse, key, value, config.node_timeout);
    } else if (key == "conn_timeout") {
        set_seconds(parse, key, value, config.conn_timeout);
    } else if (key == "backoff_base") {
        set_seconds(parse, key, value, config.backoff_base);
    } else if (key == "backoff_max") {
        set_seconds(parse, key, value, config.backoff_max);
        parse.backoff_max_line = parse.line;
    } else if (key == "progress_interval") {
        set_seconds(parse, key, value, config.progress_interval);
    } else if (key == "metrics_listen") {
        std::string problem = parse_listen(value, config.metrics_listen);
        if (!problem.empty())
            error(parse, parse.line, problem);
    } else {
        error(parse, parse.line,
              "unknown setting \"" + key + "\" in [idsyncd] (known: " + known_settings + ")");
    }
}

bool valid_peer_name(const std::string &name)
{
    if (name.empty())
        return false;
    for (char c : name)
        if (!isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-' && c != '.')
            return false;
    return true;
}

// A new section: [idsyncd] or [peer NAME]; checked once, at its first key.
void enter_section(Parse &parse, const std::string &section)
{
    parse.last_section = section;
    if (section == "idsyncd")
        return;
    if (section.rfind("peer ", 0) != 0) {
        error(parse, parse.line,
              "unknown section [" + section + "] (expected [idsyncd] or [peer NAME])");
        return;
    }
    std::string name = section.substr(5);
    if (!valid_peer_name(name)) {
        error(parse, parse.line,
              "peer name \"" + name + "\" may hold only letters, digits, '_', '-' and '.'");
        return;
    }
    auto found = parse.peer_lines.find(name);
    if (found != parse.peer_lines.end()) {
        error(parse, parse.line,
              "duplicate peer \"" + name + "\" (first at line " + std::to_string(found->second) +
                  ")");
        return;
    }
    parse.peer_lines[name] = parse.line;
    parse.config->peers.push_back({name, "", parse.line});
}

int on_key(void *user, const char *section_text, const char *key_text, const char *value_text)
{
    auto &parse = *static_cast<Parse *>(user);
    std::string section = section_text;
    std::string key = key_text;
    std::string value = value_text ? value_text : "";
    if (section.empty()) {
        error(parse, parse.line, "\"" + key + "\" outside of any section (put it under [idsyncd])");
        return 1;
    }
    if (section != parse.last_section)
        enter_section(parse, section);
    std::string seen_key = section + "\n" + key;
    auto seen = parse.seen.find(seen_key);
    if (seen != parse.seen.end()) {
        error(parse, parse.line,
              "duplicate setting \"" + key + "\" (first at line " + std::to_string(seen->second) +
                  ")");
        return 1;
    }
    parse.seen[seen_key] = parse.line;
    if (value.empty()) {
        error(parse, parse.line, key + " has no value");
        return 1;
    }
    if (section == "idsyncd") {
        set_daemon_key(parse, key, value);
        return 1;
    }
    if (section.rfind("peer ", 0) != 0)
        return 1; // reported with the section
    std::string name = section.substr(5);
    if (parse.peer_lines.count(name) == 0)
        return 1; // a bad or duplicate name, reported already
    PeerConfig *peer = nullptr;
    for (PeerConfig &candidate : parse.config->peers)
        if (candidate.name == name)
            peer = &candidate;
    if (peer && peer->line != parse.peer_lines[name])
        return 1; // a duplicate section's keys
    if (key != "dsn") {
        error(parse, parse.line,
              "unknown setting \"" + key + "\" in [" + section + "] (known: dsn)");
        return 1;
    }
    std::string problem = check_dsn(value);
    if (!problem.empty())
        error(parse, parse.line,
              "dsn of peer " + name + " is not a valid connection string: " + problem);
    if (peer)
        peer->dsn = value;
    return 1;
}

} // namespace

std::string ConfigError::str() const
{
    if (line > 0)
        return file + ":" + std::to_string(line) + ": " + message;
    return file + ": " + message;
}

std::string parse_listen(const std::string &text, ListenAddress &out)
{
    std::string usage =
        "metrics_listen must be host:port, [v6addr]:port or off (got \"" + text + "\")";
    if (text == "off") {
        out.enabled = false;
        return "";
    }
    std::string host;
    std::string port_text;
    if (!text.empty() && text[0] == '[') {
        size_t close = text.find(']');
        if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':')
            return usage;
        host = text.substr(1, close - 1);
        port_text = text.substr(close + 2);
        in6_addr address;
        if (inet_pton(AF_INET6, host.c_str(), &address) != 1)
            return usage;
    } else {
        size_t colon = text.rfind(':');
        if (colon == std::string::npos || colon == 0)
            return usage;
        host = text.substr(0, colon);
        port_text = text.substr(colon + 1);
        if (host.find(':') != std::string::npos)
            return usage; // a bare IPv6 address needs brackets
    }
    int port;
    if (!parse_integer(port_text, 1, 65535, port))
        return usage;
    out.enabled = true;
    out.host = host;
    out.port = port;
    return "";
}

bool parse_config(const std::string &text, const std::string &name, Config &config,
                  std::vector<ConfigError> &errors)
{
    size_t before = errors.size();
    Parse parse;
    parse.text = &text;
    parse.name = name;
    parse.config = &config;
    parse.errors = &errors;
    int result = ini_parse_stream(read_line, &parse, on_key, &parse);
    if (result > 0 && errors.size() == before)
        error(parse, result, "not an INI line (expected [section] or key = value)");
    else if (result < 0)
        error(parse, 0, "cannot parse");
    if (config.local_dsn.empty())
        error(parse, 0, "[idsyncd] needs local (the local database's libpq connection string)");
    for (const PeerConfig &peer : config.peers)
        if (peer.dsn.empty())
            error(parse, peer.line, "[peer " + peer.name + "] needs dsn");
    if (config.backoff_max < config.backoff_base)
        error(parse, parse.backoff_max_line, "backoff_max must be at least backoff_base");
    return errors.size() == before;
}

bool load_config(const std::string &path, Config &config, std::vector<ConfigError> &errors)
{
    std::ifstream in(path);
    if (!in) {
        errors.push_back({path, 0, std::string("cannot read: ") + strerror(errno)});
        return false;
    }
    std::stringstream text;
    text << in.rdbuf();
    config.path = path;
    return parse_config(text.str(), path, config, errors);
}

namespace {

// host, port, dbname and user of a connection string, and whether it holds a password.
std::string summarize_dsn(const std::string &dsn)
{
    char *message = nullptr;
    PQconninfoOption *options = PQconninfoParse(dsn.c_str(), &message);
    if (!options) {
        if (message)
            PQfreemem(message);
        return "(invalid)";
    }
    std::string out;
    bool password = false;
    for (PQconninfoOption *option = options; option->keyword; option++) {
        if (!option->val || !*option->val)
            continue;
        std::string keyword = option->keyword;
        if (keyword == "password")
            password = true;
        else if (keyword == "host" || keyword == "hostaddr" || keyword == "port" ||
                 keyword == "dbname" || keyword == "user" || keyword == "sslmode")
            out += (out.empty() ? "" : " ") + keyword + "=" + option->val;
    }
    PQconninfoFree(options);
    if (out.empty())
        out = "(libpq defaults)";
    if (password)
        out += " (password in DSN; prefer ~/.pgpass or PGPASSFILE)";
    return out;
}

} // namespace

std::string describe_config(const Config &config)
{
    std::ostringstream out;
    out << "local: " << summarize_dsn(config.local_dsn) << "\n";
    for (const PeerConfig &peer : config.peers)
        out << "peer " << peer.name << ": " << summarize_dsn(peer.dsn) << "\n";
    if (config.peers.empty())
        out << "no peers\n";
    out << "interval " << config.interval << " s, per_diff " << config.per_diff << ", max_diffs "
        << config.max_diffs << ", bulk_ratio " << config.bulk_ratio << ", concurrency "
        << config.concurrency << "\n"
        << "node_timeout " << config.node_timeout << " s, conn_timeout " << config.conn_timeout
        << " s, backoff " << config.backoff_base << " to " << config.backoff_max
        << " s, progress every " << config.progress_interval << " s\n"
        << "metrics: ";
    if (config.metrics_listen.enabled)
        out << config.metrics_listen.host << ":" << config.metrics_listen.port << "\n";
    else
        out << "off\n";
    return out.str();
}
