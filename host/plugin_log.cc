// Implementation of plugin_log.h.
#include "host/plugin_log.h"

#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace loophost::host {
namespace {

using nlohmann::json;

// The log levels plugins write, in any case: ours plus common synonyms.
bool ParsePluginLevel(absl::string_view word, LogLevel* level) {
  if (ParseLogLevel(word, level)) return true;
  std::string lower = absl::AsciiStrToLower(word);
  if (lower == "fatal" || lower == "critical" || lower == "crit" ||
      lower == "panic" || lower == "dpanic") {
    *level = LogLevel::kError;
    return true;
  }
  if (lower == "notice") {
    *level = LogLevel::kInfo;
    return true;
  }
  return false;
}

std::string JsonValueText(const json& value) {
  if (value.is_string()) return value.get<std::string>();
  return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

// Keys the host adds itself; a plugin's own are renamed so they cannot pose as
// the host's tags.
bool IsHostKey(absl::string_view key) {
  return key == "plugin" || key == "stream";
}

bool ParseHclogJson(absl::string_view line, PluginLogLine* out) {
  if (line.empty() || line.front() != '{') return false;
  json doc = json::parse(line.begin(), line.end(), nullptr,
                         /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) return false;
  if (!doc.contains("@message") && !doc.contains("@level")) return false;
  PluginLogLine parsed;
  for (const auto& [key, value] : doc.items()) {
    if (key == "@level") {
      if (!value.is_string() ||
          !ParsePluginLevel(value.get<std::string>(), &parsed.level)) {
        parsed.level = LogLevel::kInfo;
      }
    } else if (key == "@message") {
      parsed.message = JsonValueText(value);
    } else if (key == "@timestamp") {
      // The host's logger stamps the line itself.
    } else {
      absl::string_view name = key;
      if (absl::StartsWith(name, "@")) name.remove_prefix(1);
      std::string field =
          IsHostKey(name) ? absl::StrCat("log.", name) : std::string(name);
      parsed.fields.emplace_back(std::move(field), JsonValueText(value));
    }
  }
  *out = std::move(parsed);
  return true;
}

// "[LEVEL] rest": true with the level and rest (leading spaces trimmed).
bool ParseBracketLevel(absl::string_view text, LogLevel* level,
                       absl::string_view* rest) {
  if (text.empty() || text.front() != '[') return false;
  size_t close = text.find(']');
  if (close == absl::string_view::npos || close > 12) return false;
  if (!ParsePluginLevel(text.substr(1, close - 1), level)) return false;
  *rest = absl::StripLeadingAsciiWhitespace(text.substr(close + 1));
  return true;
}

// "LEVEL: rest" / "LEVEL:rest" (Python's "WARNING:root:msg").
bool ParseColonLevel(absl::string_view text, LogLevel* level,
                     absl::string_view* rest) {
  size_t colon = text.find(':');
  if (colon == 0 || colon == absl::string_view::npos || colon > 8) {
    return false;
  }
  absl::string_view word = text.substr(0, colon);
  for (char c : word) {
    if (!absl::ascii_isalpha(c)) return false;
  }
  if (!ParsePluginLevel(word, level)) return false;
  *rest = absl::StripLeadingAsciiWhitespace(text.substr(colon + 1));
  return true;
}

}  // namespace

PluginLogLine ParsePluginLogLine(absl::string_view line) {
  line = absl::StripAsciiWhitespace(line);
  PluginLogLine parsed;
  if (ParseHclogJson(line, &parsed)) return parsed;
  absl::string_view rest;
  // hclog's text format: "2023-05-01T10:00:00.000Z [INFO]  message".
  if (!line.empty() && absl::ascii_isdigit(line.front())) {
    size_t space = line.find(' ');
    if (space != absl::string_view::npos &&
        ParseBracketLevel(
            absl::StripLeadingAsciiWhitespace(line.substr(space + 1)),
            &parsed.level, &rest)) {
      parsed.message = std::string(rest);
      return parsed;
    }
  }
  if (ParseBracketLevel(line, &parsed.level, &rest) ||
      ParseColonLevel(line, &parsed.level, &rest)) {
    parsed.message = std::string(rest);
    return parsed;
  }
  parsed.level = LogLevel::kInfo;
  parsed.message = std::string(line);
  return parsed;
}

void RelogPluginLine(absl::string_view plugin, absl::string_view stream,
                     absl::string_view line) {
  PluginLogLine parsed = ParsePluginLogLine(line);
  if (parsed.message.empty() && parsed.fields.empty()) return;
  LogFields fields;
  fields.reserve(parsed.fields.size() + 2);
  fields.emplace_back("plugin", std::string(plugin));
  if (stream != "stderr") fields.emplace_back("stream", std::string(stream));
  for (const auto& [key, value] : parsed.fields) {
    fields.emplace_back(key, value);
  }
  Log(parsed.level, parsed.message, fields);
}

}  // namespace loophost::host
