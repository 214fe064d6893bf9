// The process-wide logger: one line per event on stderr, as
// `2026-11-22T03:49:42.123Z INFO  message key=value ...`. Thread-safe; a line
// is written with one write(2) so lines from threads never interleave.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"

namespace loophost {

enum class LogLevel { kTrace = 0, kDebug, kInfo, kWarn, kError };

// Parses "trace|debug|info|warn|warning|error" (any case).
bool ParseLogLevel(absl::string_view text, LogLevel* level);
absl::string_view LogLevelName(LogLevel level);

// kText for people (loophost's own log); kHclogJson is hashicorp/hclog's JSON
// line
// ({"@level","@message","@timestamp",fields...}), which plugins write so that
// loophost and go-plugin hosts alike re-log them with their levels and fields.
enum class LogFormat { kText, kHclogJson };
void SetLogFormat(LogFormat format);

// Lines below this level are dropped. Default kInfo.
void SetMinLogLevel(LogLevel level);
LogLevel MinLogLevel();

using LogFields = std::vector<std::pair<absl::string_view, std::string>>;

void Log(LogLevel level, absl::string_view message,
         const LogFields& fields = {});

inline void LogDebug(absl::string_view m, const LogFields& f = {}) {
  Log(LogLevel::kDebug, m, f);
}
inline void LogInfo(absl::string_view m, const LogFields& f = {}) {
  Log(LogLevel::kInfo, m, f);
}
inline void LogWarn(absl::string_view m, const LogFields& f = {}) {
  Log(LogLevel::kWarn, m, f);
}
inline void LogError(absl::string_view m, const LogFields& f = {}) {
  Log(LogLevel::kError, m, f);
}

}  // namespace loophost
