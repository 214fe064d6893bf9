// Implementation of the stderr logger declared in logging.h.
#include "common/logging.h"

#include <unistd.h>

#include <atomic>
#include <cctype>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"

namespace loophost {
namespace {

std::atomic<int> min_level{static_cast<int>(LogLevel::kInfo)};
std::atomic<LogFormat> log_format{LogFormat::kText};

// Quotes a field value when it holds spaces, quotes or control characters.
void AppendValue(std::string& out, absl::string_view value) {
  bool needs_quotes = value.empty();
  for (char c : value) {
    if (c == ' ' || c == '"' || c == '=' ||
        static_cast<unsigned char>(c) < 0x20) {
      needs_quotes = true;
      break;
    }
  }
  if (!needs_quotes) {
    out.append(value.data(), value.size());
    return;
  }
  out.push_back('"');
  for (char c : value) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (c == '\n') {
      out.append("\\n");
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out.push_back('?');
    } else {
      out.push_back(c);
    }
  }
  out.push_back('"');
}

}  // namespace

bool ParseLogLevel(absl::string_view text, LogLevel* level) {
  std::string lower = absl::AsciiStrToLower(text);
  if (lower == "trace")
    *level = LogLevel::kTrace;
  else if (lower == "debug")
    *level = LogLevel::kDebug;
  else if (lower == "info")
    *level = LogLevel::kInfo;
  else if (lower == "warn" || lower == "warning")
    *level = LogLevel::kWarn;
  else if (lower == "error" || lower == "err")
    *level = LogLevel::kError;
  else
    return false;
  return true;
}

absl::string_view LogLevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kTrace:
      return "TRACE";
    case LogLevel::kDebug:
      return "DEBUG";
    case LogLevel::kInfo:
      return "INFO";
    case LogLevel::kWarn:
      return "WARN";
    case LogLevel::kError:
      return "ERROR";
  }
  return "INFO";
}

void SetLogFormat(LogFormat format) { log_format.store(format); }

void SetMinLogLevel(LogLevel level) {
  min_level.store(static_cast<int>(level));
}
LogLevel MinLogLevel() { return static_cast<LogLevel>(min_level.load()); }

namespace {

std::string FormatText(LogLevel level, absl::string_view message,
                       const LogFields& fields) {
  std::string line = absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(),
                                      absl::UTCTimeZone());
  absl::StrAppend(
      &line, " ", LogLevelName(level),
      level == LogLevel::kInfo || level == LogLevel::kWarn ? "  " : " ");
  for (char c : message) line.push_back(c == '\n' ? ' ' : c);
  for (const auto& [key, value] : fields) {
    absl::StrAppend(&line, " ", key, "=");
    AppendValue(line, value);
  }
  line.push_back('\n');
  return line;
}

std::string FormatHclogJson(LogLevel level, absl::string_view message,
                            const LogFields& fields) {
  nlohmann::json line = nlohmann::json::object();
  line["@level"] = absl::AsciiStrToLower(LogLevelName(level));
  line["@message"] = std::string(message);
  line["@timestamp"] = absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ", absl::Now(),
                                        absl::UTCTimeZone());
  for (const auto& [key, value] : fields) line[std::string(key)] = value;
  return line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) +
         "\n";
}

void WriteLine(const std::string& line) {
  // One write per line; a short write to a pipe under PIPE_BUF cannot
  // interleave.
  const char* data = line.data();
  size_t left = line.size();
  while (left > 0) {
    ssize_t n = ::write(STDERR_FILENO, data, left);
    if (n <= 0) break;
    data += n;
    left -= static_cast<size_t>(n);
  }
}

}  // namespace

void Log(LogLevel level, absl::string_view message, const LogFields& fields) {
  if (static_cast<int>(level) < min_level.load(std::memory_order_relaxed))
    return;
  WriteLine(log_format.load(std::memory_order_relaxed) == LogFormat::kHclogJson
                ? FormatHclogJson(level, message, fields)
                : FormatText(level, message, fields));
}

}  // namespace loophost
