#include "log.hpp"

#include <cstdarg>
#include <cstdio>
#include <ctime>
#include <sys/time.h>

namespace {

bool verbose_enabled = false;

} // namespace

std::string escape_log_text(const std::string &text)
{
    std::string out;
    out.reserve(text.size());
    for (unsigned char c : text) {
        if (c == '\n') {
            out += "\n    "; // a continuation line: nobody can forge a line of its own
        } else if (c < 0x20 || c == 0x7f) {
            char hex[8];
            snprintf(hex, sizeof hex, "\\x%02x", c);
            out += hex;
        } else {
            out += static_cast<char>(c);
        }
    }
    while (!out.empty() && (out.back() == ' ' || out.back() == '\n'))
        out.pop_back();
    return out;
}

namespace {

void write_line(const char *level, const std::string &message)
{
    timeval now;
    gettimeofday(&now, nullptr);
    tm local;
    localtime_r(&now.tv_sec, &local);
    char stamp[32];
    strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S", &local);
    fprintf(stderr, "%s.%03d idsyncd %s: %s\n", stamp, static_cast<int>(now.tv_usec / 1000), level,
            escape_log_text(message).c_str());
    fflush(stderr);
}

} // namespace

void log_set_verbose(bool verbose)
{
    verbose_enabled = verbose;
}

bool log_verbose()
{
    return verbose_enabled;
}

void log_info(const std::string &message)
{
    write_line("INFO", message);
}

void log_warning(const std::string &message)
{
    write_line("WARNING", message);
}

void log_error(const std::string &message)
{
    write_line("ERROR", message);
}

void log_debug(const std::string &message)
{
    if (verbose_enabled)
        write_line("DEBUG", message);
}

std::string strprintf(const char *format, ...)
{
    va_list args;
    va_start(args, format);
    va_list copy;
    va_copy(copy, args);
    int size = vsnprintf(nullptr, 0, format, copy);
    va_end(copy);
    std::string out(size > 0 ? size : 0, '\0');
    if (size > 0)
        vsnprintf(out.data(), out.size() + 1, format, args);
    va_end(args);
    return out;
}
