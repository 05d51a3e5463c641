// idsyncd's configuration: inih splits the file into settings, this file gives each setting its
// line, checks it, and collects every error instead of stopping at the first.
#include "config.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <iomanip>
#include <map>
#include <set>
#include <sstream>
#include <string_view>

#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ini.h>
#include <libpq-fe.h>

namespace {

enum class SectionKind {
    none,    // before any [section]: settings there are errors
    daemon,  // [idsyncd]
    peer,    // [peer NAME]
    ignored, // a bad or duplicate section, reported once at its header
};

// The state shared by the line reader and the setting handler inih calls in turn.
struct Parse {
    const std::string &text;
    const std::string &name;
    Config &config;
    std::vector<ConfigError> &errors;
    size_t first_error; // errors before this one belong to the caller
    Parse(const std::string &text, const std::string &name, Config &config,
          std::vector<ConfigError> &errors)
        : text(text), name(name), config(config), errors(errors), first_error(errors.size())
    {
    }
    size_t offset = 0;
    int line = 0;                // the physical line inih is working on
    bool usable = true;          // false: too long or holding a NUL, reported, its value unused
    bool indented = false;       // inih reads an indented line as a continuation
    bool expect_setting = false; // inih either hands this line to the handler or rejects it
    bool got_setting = false;
    SectionKind kind = SectionKind::none;
    std::string section; // as written between the brackets
    size_t peer = 0;     // index in config.peers when kind is peer
    int daemon_line = 0;
    std::map<std::string, int> peer_lines;    // peer name -> line of its section
    std::map<std::string, int> setting_lines; // "section\nkey" -> line
    std::set<std::string> peers_with_dsn;
    std::string last_key; // what inih would continue with an indented line
    int last_key_line = 0;
};

void error(Parse &parse, int line, const std::string &message)
{
    parse.errors.push_back({parse.name, line, message});
}

bool has_error_at(const Parse &parse, int line)
{
    return std::any_of(parse.errors.begin() + parse.first_error, parse.errors.end(),
                       [line](const ConfigError &error) { return error.line == line; });
}

std::string in_quotes(const std::string &text)
{
    return "\"" + text + "\"";
}

// Whole-string, locale-independent parses: "5s", "1e3x" or " 5" are not numbers.
bool parse_double(const std::string &text, double &out)
{
    double value = 0;
    auto [end, status] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (status != std::errc() || end != text.data() + text.size() || !std::isfinite(value))
        return false;
    out = value;
    return true;
}

bool parse_int(const std::string &text, long min, long max, int &out)
{
    long value = 0;
    auto [end, status] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (status != std::errc() || end != text.data() + text.size() || value < min || value > max)
        return false;
    out = static_cast<int>(value);
    return true;
}

// Shortest faithful form: 0.5, 30, 1e-06.
std::string format_number(double value)
{
    std::ostringstream out;
    out << std::setprecision(15) << value;
    return out.str();
}

bool is_identifier(const std::string &word)
{
    return !word.empty() && std::all_of(word.begin(), word.end(), [](char c) {
        return isalnum(static_cast<unsigned char>(c)) || c == '_';
    });
}

// Whether the connection string writes `word` as the name of a name=value pair.
bool used_as_keyword(const std::string &dsn, const std::string &word)
{
    for (size_t at = dsn.find(word); at != std::string::npos; at = dsn.find(word, at + 1)) {
        bool starts = at == 0 || isspace(static_cast<unsigned char>(dsn[at - 1])) ||
                      dsn[at - 1] == '?' || dsn[at - 1] == '&';
        size_t next = dsn.find_first_not_of(" \t", at + word.size());
        if (starts && next != std::string::npos && dsn[next] == '=')
            return true;
    }
    return false;
}

// libpq quotes the offending piece of the string in its messages ("missing "=" after "ret"",
// even a whole URI), which may be part of a password: keep only its own punctuation and
// option names the string uses as names; hide the rest.
std::string hide_dsn_text(const std::string &message, const std::string &dsn)
{
    if (dsn.find('"') != std::string::npos) {
        // Quotes in the string make the pieces' boundaries ambiguous: keep only the lead-in.
        std::string lead = message.substr(0, message.find('"'));
        while (!lead.empty() && (lead.back() == ' ' || lead.back() == ':'))
            lead.pop_back();
        return lead + " (details hidden)";
    }
    std::string out;
    size_t at = 0;
    for (size_t open; (open = message.find('"', at)) != std::string::npos;) {
        size_t close = message.find('"', open + 1);
        if (close == std::string::npos)
            break;
        std::string piece = message.substr(open + 1, close - open - 1);
        bool punctuation = piece.size() == 1 && ispunct(static_cast<unsigned char>(piece[0]));
        bool keep = punctuation || (is_identifier(piece) && used_as_keyword(dsn, piece));
        out += message.substr(at, open - at) + in_quotes(keep ? piece : "(hidden)");
        at = close + 1;
    }
    return out + message.substr(at);
}

// libpq's own parser (no connection) decides; returns its reason, or "" for a valid string.
std::string dsn_problem(const std::string &dsn)
{
    char *message = nullptr;
    PQconninfoOption *options = PQconninfoParse(dsn.c_str(), &message);
    if (options) {
        PQconninfoFree(options);
        return "";
    }
    std::string text = message ? message : "out of memory";
    if (message)
        PQfreemem(message);
    while (!text.empty() && isspace(static_cast<unsigned char>(text.back())))
        text.pop_back();
    return hide_dsn_text(text, dsn);
}

std::string check_dsn(const std::string &what, const std::string &purpose, const std::string &dsn)
{
    if (dsn.empty())
        return what + " must not be empty (" + purpose + ")";
    std::string problem = dsn_problem(dsn);
    if (!problem.empty())
        return what + " is not a valid libpq connection string: " + problem;
    return "";
}

std::string set_seconds(const char *name, const std::string &value, double &out)
{
    double seconds = 0;
    if (!parse_double(value, seconds) || seconds <= 0)
        return std::string(name) + " must be a number of seconds > 0 (got " + in_quotes(value) +
               ")";
    out = seconds;
    return "";
}

std::string set_count(const char *name, const std::string &value, long max, int &out)
{
    if (!parse_int(value, 1, max, out))
        return std::string(name) + " must be a whole number from 1 to " + std::to_string(max) +
               " (got " + in_quotes(value) + ")";
    return "";
}

std::string set_ratio(const char *name, const std::string &value, double &out)
{
    double ratio = 0;
    if (!parse_double(value, ratio) || ratio < 0 || ratio > 1)
        return std::string(name) + " must be a number from 0 to 1 (got " + in_quotes(value) + ")";
    out = ratio;
    return "";
}

// One [idsyncd] setting: stores a valid value in the config, or returns why it is not valid.
struct DaemonSetting {
    const char *name;
    std::string (*apply)(Config &config, const std::string &value);
};

const DaemonSetting daemon_settings[] = {
    {"local",
     [](Config &c, const std::string &v) {
         c.local_dsn = v;
         return check_dsn("local", "the local database's libpq connection string", v);
     }},
    {"interval",
     [](Config &c, const std::string &v) { return set_seconds("interval", v, c.interval); }},
    {"per_diff",
     [](Config &c, const std::string &v) { return set_count("per_diff", v, 1000000, c.per_diff); }},
    {"diff_bytes",
     [](Config &c, const std::string &v) {
         return set_count("diff_bytes", v, 64 << 20, c.diff_bytes);
     }},
    {"max_diffs",
     [](Config &c, const std::string &v) {
         return set_count("max_diffs", v, 1000000, c.max_diffs);
     }},
    {"bulk_ratio",
     [](Config &c, const std::string &v) { return set_ratio("bulk_ratio", v, c.bulk_ratio); }},
    {"concurrency",
     [](Config &c, const std::string &v) {
         return set_count("concurrency", v, 1024, c.concurrency);
     }},
    {"node_timeout",
     [](Config &c, const std::string &v) {
         return set_seconds("node_timeout", v, c.node_timeout);
     }},
    {"conn_timeout",
     [](Config &c, const std::string &v) {
         return set_seconds("conn_timeout", v, c.conn_timeout);
     }},
    {"backoff_base",
     [](Config &c, const std::string &v) {
         return set_seconds("backoff_base", v, c.backoff_base);
     }},
    {"backoff_max",
     [](Config &c, const std::string &v) { return set_seconds("backoff_max", v, c.backoff_max); }},
    {"progress_interval",
     [](Config &c, const std::string &v) {
         return set_seconds("progress_interval", v, c.progress_interval);
     }},
    {"metrics_listen",
     [](Config &c, const std::string &v) { return parse_listen(v, c.metrics_listen); }},
};

std::string known_daemon_settings()
{
    std::string out;
    for (const DaemonSetting &setting : daemon_settings)
        out += (out.empty() ? "" : ", ") + std::string(setting.name);
    return out;
}

void apply_daemon_setting(Parse &parse, const std::string &key, const std::string &value)
{
    for (const DaemonSetting &setting : daemon_settings) {
        if (key != setting.name)
            continue;
        std::string problem = setting.apply(parse.config, value);
        if (!problem.empty())
            error(parse, parse.line, problem);
        return;
    }
    error(parse, parse.line,
          "unknown setting " + in_quotes(key) + " in [idsyncd] (known: " + known_daemon_settings() +
              ")");
}

void apply_peer_setting(Parse &parse, const std::string &key, const std::string &value)
{
    PeerConfig &peer = parse.config.peers[parse.peer];
    if (key != "dsn") {
        error(parse, parse.line,
              "unknown setting " + in_quotes(key) + " in [" + parse.section + "] (known: dsn)");
        return;
    }
    parse.peers_with_dsn.insert(peer.name);
    peer.dsn = value;
    std::string problem =
        check_dsn("dsn of [" + parse.section + "]", "the peer's libpq connection string", value);
    if (!problem.empty())
        error(parse, parse.line, problem);
}

bool valid_peer_name(const std::string &name)
{
    return std::all_of(name.begin(), name.end(), [](char c) {
        return isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
    });
}

// Returns whether the section is usable; reports why not otherwise.
bool enter_peer_section(Parse &parse, const std::string &name)
{
    if (name.empty()) {
        error(parse, parse.line, "[peer NAME] needs a name");
        return false;
    }
    if (!valid_peer_name(name)) {
        error(parse, parse.line,
              "peer name " + in_quotes(name) + " may hold only letters, digits, '_', '-' and '.'");
        return false;
    }
    auto first = parse.peer_lines.find(name);
    if (first != parse.peer_lines.end()) {
        error(parse, parse.line,
              "duplicate peer " + in_quotes(name) + " (first at line " +
                  std::to_string(first->second) + ")");
        return false;
    }
    parse.peer_lines[name] = parse.line;
    parse.config.peers.push_back({name, "", parse.line});
    parse.peer = parse.config.peers.size() - 1;
    return true;
}

bool enter_daemon_section(Parse &parse)
{
    if (parse.daemon_line != 0) {
        error(parse, parse.line,
              "duplicate section [idsyncd] (first at line " + std::to_string(parse.daemon_line) +
                  ")");
        return false;
    }
    parse.daemon_line = parse.line;
    return true;
}

// Sections are checked here, at their header, since inih calls no handler for an empty one.
void enter_section(Parse &parse, const std::string &section)
{
    parse.section = section;
    parse.last_key.clear(); // inih forgets its previous key at a header too
    if (section == "idsyncd") {
        parse.kind = enter_daemon_section(parse) ? SectionKind::daemon : SectionKind::ignored;
    } else if (section.rfind("peer ", 0) == 0) {
        bool usable = enter_peer_section(parse, section.substr(5));
        parse.kind = usable ? SectionKind::peer : SectionKind::ignored;
    } else {
        error(parse, parse.line,
              "unknown section [" + section + "] (expected [idsyncd] or [peer NAME])");
        parse.kind = SectionKind::ignored;
    }
}

// Where inih ends a section name: at ']', or at an inline ';' comment (after whitespace).
size_t section_end(std::string_view line, size_t from)
{
    for (size_t at = from; at < line.size(); at++) {
        if (line[at] == ']')
            return at;
        if (line[at] == ';' && isspace(static_cast<unsigned char>(line[at - 1])))
            return std::string_view::npos;
    }
    return std::string_view::npos;
}

// Follows inih's reading of a line: a comment, a continuation, a section header or a setting.
void classify_line(Parse &parse, std::string_view line)
{
    size_t start = line.find_first_not_of(" \t\r\f\v");
    if (start == std::string_view::npos || line[start] == ';' || line[start] == '#')
        return;
    parse.indented = start > 0;
    if (line[start] != '[' || (parse.indented && !parse.last_key.empty())) {
        parse.expect_setting = true;
        return;
    }
    size_t close = section_end(line, start + 1);
    if (close == std::string_view::npos) {
        error(parse, parse.line, "section header needs a closing ']'");
        parse.kind = SectionKind::ignored; // inih stays in the previous section: not ours to guess
        return;
    }
    enter_section(parse, std::string(line.substr(start + 1, close - start - 1)));
}

// inih hands the handler every setting line; one it did not hand over, it could not parse.
void finish_line(Parse &parse)
{
    if (parse.expect_setting && !parse.got_setting && !has_error_at(parse, parse.line))
        error(parse, parse.line,
              "cannot parse this line (expected [section], name = value, or a ; comment)");
    parse.expect_setting = false;
    parse.got_setting = false;
    parse.indented = false;
}

// The next physical line without its "\n" (or "\r\n").
std::string_view next_line(Parse &parse)
{
    std::string_view text = parse.text;
    size_t newline = text.find('\n', parse.offset);
    size_t end = newline == std::string_view::npos ? text.size() : newline;
    std::string_view line = text.substr(parse.offset, end - parse.offset);
    parse.offset = newline == std::string_view::npos ? text.size() : newline + 1;
    if (!line.empty() && line.back() == '\r')
        line.remove_suffix(1);
    return line;
}

// inih's reader: one physical line per call, so that every setting's line is ours to count.
// inih's buffer holds `size` - 1 characters (199 in Debian's build), no more.
char *read_line(char *buffer, int size, void *stream)
{
    Parse &parse = *static_cast<Parse *>(stream);
    finish_line(parse);
    if (parse.offset >= parse.text.size() || size < 2)
        return nullptr;
    std::string_view line = next_line(parse);
    parse.line++;
    size_t room = static_cast<size_t>(size) - 1;
    parse.usable = true;
    if (line.size() > room) {
        error(parse, parse.line, "line too long (at most " + std::to_string(room) + " characters)");
        parse.usable = false;
    } else if (line.find('\0') != std::string_view::npos) {
        error(parse, parse.line, "line holds a NUL byte");
        parse.usable = false;
    }
    // An unusable line still goes to inih, cut short, so that its setting counts as given.
    size_t take = std::min({line.size(), room, line.find('\0')});
    memcpy(buffer, line.data(), take);
    buffer[take] = '\0';
    if (parse.usable)
        classify_line(parse, line);
    else
        parse.indented = line.find_first_not_of(" \t") > 0;
    return buffer;
}

// Returns whether the setting is new; reports a repeated one.
bool note_setting(Parse &parse, const std::string &key)
{
    auto [first, added] = parse.setting_lines.try_emplace(parse.section + "\n" + key, parse.line);
    if (!added && parse.usable)
        error(parse, parse.line,
              "duplicate setting " + in_quotes(key) + " (first at line " +
                  std::to_string(first->second) + ")");
    return added;
}

// inih's handler: the section it passes may be cut at 49 characters, so ours is used instead.
int on_setting(void *user, const char *, const char *key_text, const char *value_text)
{
    Parse &parse = *static_cast<Parse *>(user);
    std::string key = key_text;
    std::string value = value_text ? value_text : "";
    parse.got_setting = true;
    if (parse.indented && !parse.last_key.empty() && key == parse.last_key) {
        if (parse.usable)
            error(parse, parse.line,
                  "indented line continues " + in_quotes(key) + " from line " +
                      std::to_string(parse.last_key_line) +
                      " (write each setting on one line, not indented)");
        return 1;
    }
    parse.last_key = key;
    parse.last_key_line = parse.line;
    if (parse.kind == SectionKind::none) {
        if (parse.usable)
            error(parse, parse.line,
                  in_quotes(key) + " is outside any section (settings go under [idsyncd] or "
                                   "[peer NAME])");
        return 1;
    }
    if (parse.kind == SectionKind::ignored || !note_setting(parse, key))
        return 1;
    if (!parse.usable) {
        if (parse.kind == SectionKind::peer && key == "dsn")
            parse.peers_with_dsn.insert(parse.config.peers[parse.peer].name);
        return 1;
    }
    if (key.empty())
        error(parse, parse.line, "setting name missing before '='");
    else if (parse.kind == SectionKind::daemon)
        apply_daemon_setting(parse, key, value);
    else
        apply_peer_setting(parse, key, value);
    return 1;
}

// Checks that need the whole file: required settings and settings that depend on each other.
void check_whole_file(Parse &parse)
{
    if (parse.setting_lines.count("idsyncd\nlocal") == 0)
        error(parse, 0, "[idsyncd] needs local (the local database's libpq connection string)");
    for (const PeerConfig &peer : parse.config.peers)
        if (parse.peers_with_dsn.count(peer.name) == 0)
            error(parse, peer.line, "[peer " + peer.name + "] needs dsn");
    const Config &config = parse.config;
    if (config.backoff_max < config.backoff_base) {
        auto at = parse.setting_lines.find("idsyncd\nbackoff_max");
        int line = at == parse.setting_lines.end() ? 0 : at->second;
        error(parse, line,
              "backoff_max must be at least backoff_base (got " +
                  format_number(config.backoff_max) + " < " + format_number(config.backoff_base) +
                  ")");
    }
}

bool valid_hostname(const std::string &host)
{
    if (host.empty() || host.front() == '-' || host.front() == '.')
        return false;
    bool dotted_digits = host.find_first_not_of("0123456789.") == std::string::npos;
    in_addr address;
    if (dotted_digits) // looks like IPv4, so it must be one ("999.1.1.1" is not a name)
        return inet_pton(AF_INET, host.c_str(), &address) == 1;
    return std::all_of(host.begin(), host.end(), [](char c) {
        return isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.';
    });
}

// Splits "host:port" or "[v6]:port"; the host must be an address or a hostname.
bool split_listen(const std::string &text, std::string &host, std::string &port)
{
    if (!text.empty() && text.front() == '[') {
        size_t close = text.find(']');
        if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':')
            return false;
        host = text.substr(1, close - 1);
        port = text.substr(close + 2);
        in6_addr address;
        return inet_pton(AF_INET6, host.c_str(), &address) == 1;
    }
    size_t colon = text.rfind(':');
    if (colon == std::string::npos)
        return false;
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    return valid_hostname(host); // a bare IPv6 address, colons and all, fails here
}

// The whole file, or an errno.
int read_file(const std::string &path, std::string &out)
{
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno;
    char buffer[65536];
    ssize_t got;
    while ((got = read(fd, buffer, sizeof buffer)) != 0) {
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            int saved = errno;
            close(fd);
            return saved;
        }
        out.append(buffer, static_cast<size_t>(got));
    }
    close(fd);
    return 0;
}

// A conninfo value as libpq reads it back: quoted when empty or holding spaces, quotes or '\'.
std::string conninfo_value(const std::string &value)
{
    bool plain = !value.empty() && std::none_of(value.begin(), value.end(), [](char c) {
        return isspace(static_cast<unsigned char>(c)) || c == '\'' || c == '\\';
    });
    if (plain)
        return value;
    std::string out = "'";
    for (char c : value) {
        if (c == '\'' || c == '\\')
            out += '\\';
        out += c;
    }
    return out + "'";
}

// Where a connection string leads (host, port, dbname, user), never its password.
std::string describe_dsn(const std::string &dsn)
{
    char *message = nullptr;
    PQconninfoOption *options = PQconninfoParse(dsn.c_str(), &message);
    if (!options) {
        PQfreemem(message);
        return "(not a valid connection string)";
    }
    std::map<std::string, std::string> given;
    for (PQconninfoOption *option = options; option->keyword; option++)
        if (option->val && *option->val)
            given[option->keyword] = option->val;
    PQconninfoFree(options);
    std::string out;
    for (const char *keyword : {"host", "port", "dbname", "user"})
        if (given.count(keyword))
            out += (out.empty() ? "" : " ") + std::string(keyword) + "=" +
                   conninfo_value(given[keyword]);
    if (out.empty())
        out = "(libpq defaults)";
    if (given.count("password"))
        out += " (password in DSN; prefer ~/.pgpass or PGPASSFILE)";
    return out;
}

std::string describe_listen(const ListenAddress &listen)
{
    if (!listen.enabled)
        return "off";
    bool v6 = listen.host.find(':') != std::string::npos;
    std::string host = v6 ? "[" + listen.host + "]" : listen.host;
    return host + ":" + std::to_string(listen.port);
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
    if (text == "off") {
        out.enabled = false;
        return "";
    }
    std::string host;
    std::string port_text;
    if (!split_listen(text, host, port_text))
        return "metrics_listen must be host:port, [v6addr]:port or off (got " + in_quotes(text) +
               ")";
    int port = 0;
    if (!parse_int(port_text, 1, 65535, port))
        return "metrics_listen port must be a number from 1 to 65535 (got " + in_quotes(text) + ")";
    out.enabled = true;
    out.host = host;
    out.port = port;
    return "";
}

bool parse_config(const std::string &text, const std::string &name, Config &config,
                  std::vector<ConfigError> &errors)
{
    // A UTF-8 byte order mark would hide the first header from our line classification.
    const std::string bom = "\xEF\xBB\xBF";
    std::string body = text.rfind(bom, 0) == 0 ? text.substr(bom.size()) : text;
    Parse parse(body, name, config, errors);
    int result = ini_parse_stream(read_line, &parse, on_setting, &parse);
    finish_line(parse);
    // Lines inih rejected are reported as we read; this is a safety net for any we missed.
    if (result > 0 && !has_error_at(parse, result))
        error(parse, result,
              "cannot parse this line (expected [section], name = value, or a ; "
              "comment)");
    else if (result < 0)
        error(parse, 0, "cannot parse (out of memory)");
    check_whole_file(parse);
    return errors.size() == parse.first_error;
}

bool dsn_has_password(const std::string &dsn)
{
    char *message = nullptr;
    PQconninfoOption *options = PQconninfoParse(dsn.c_str(), &message);
    if (!options) {
        PQfreemem(message);
        return false;
    }
    bool found = false;
    for (PQconninfoOption *option = options; option->keyword; option++)
        if (strcmp(option->keyword, "password") == 0 && option->val && *option->val)
            found = true;
    PQconninfoFree(options);
    return found;
}

std::string check_file_mode(unsigned mode, bool holds_password)
{
    if (!holds_password || (mode & 077) == 0)
        return "";
    char octal[8];
    snprintf(octal, sizeof octal, "%04o", mode & 07777);
    return std::string("holds a password, and group or others have access to it (mode ") + octal +
           "): chmod 600 it, or keep the password in ~/.pgpass";
}

bool load_config(const std::string &path, Config &config, std::vector<ConfigError> &errors)
{
    std::string text;
    int problem = read_file(path, text);
    if (problem != 0) {
        errors.push_back({path, 0, std::string("cannot read: ") + strerror(problem)});
        return false;
    }
    config.path = path;
    if (!parse_config(text, path, config, errors))
        return false;
    // As libpq refuses a .pgpass that others can read: a password here is as secret.
    bool holds_password = dsn_has_password(config.local_dsn);
    for (const PeerConfig &peer : config.peers)
        holds_password = holds_password || dsn_has_password(peer.dsn);
    struct stat info;
    if (stat(path.c_str(), &info) == 0) {
        std::string refused = check_file_mode(info.st_mode, holds_password);
        if (!refused.empty()) {
            errors.push_back({path, 0, refused});
            return false;
        }
    }
    return true;
}

std::string describe_config(const Config &config)
{
    std::ostringstream out;
    out << "local: " << describe_dsn(config.local_dsn) << "\n";
    for (const PeerConfig &peer : config.peers)
        out << "peer " << peer.name << ": " << describe_dsn(peer.dsn) << "\n";
    if (config.peers.empty())
        out << "no peers (this node alone)\n";
    out << "interval=" << format_number(config.interval) << " per_diff=" << config.per_diff
        << " max_diffs=" << config.max_diffs << " diff_bytes=" << config.diff_bytes
        << " bulk_ratio=" << format_number(config.bulk_ratio)
        << " concurrency=" << config.concurrency << "\n";
    out << "node_timeout=" << format_number(config.node_timeout)
        << " conn_timeout=" << format_number(config.conn_timeout)
        << " backoff_base=" << format_number(config.backoff_base)
        << " backoff_max=" << format_number(config.backoff_max)
        << " progress_interval=" << format_number(config.progress_interval) << "\n";
    out << "metrics_listen=" << describe_listen(config.metrics_listen) << "\n";
    return out.str();
}

bool load_config_or_report(const std::string &path, Config &config, const char *program)
{
    std::vector<ConfigError> errors;
    if (load_config(path, config, errors))
        return true;
    for (const ConfigError &error : errors)
        fprintf(stderr, "%s: %s\n", program, error.str().c_str());
    return false;
}
