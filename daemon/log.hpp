// idsyncd's log: one line per event on stderr (journald adds its own metadata under systemd).
// Never pass a DSN or a password here.
#pragma once

#include <string>

void log_set_verbose(bool verbose);
bool log_verbose();
void log_info(const std::string &message);
void log_warning(const std::string &message);
void log_error(const std::string &message);
void log_debug(const std::string &message); // only with --verbose

// printf into a std::string.
std::string strprintf(const char *format, ...) __attribute__((format(printf, 1, 2)));

// A message as it is logged: control characters (error text from a server may hold any) as
// \xNN, and every newline followed by an indent, so that no text can forge a log line.
std::string escape_log_text(const std::string &text);
