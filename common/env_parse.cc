// Implementation of env_parse.h.
#include "common/env_parse.h"

#include <cstdlib>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace loophost {
namespace {

absl::Status Invalid(absl::string_view name, absl::string_view value,
                     absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(name, "=", value, ": ", why));
}

}  // namespace

absl::StatusOr<bool> ParseBoolValue(absl::string_view name,
                                    absl::string_view value) {
  std::string v = absl::AsciiStrToLower(absl::StripAsciiWhitespace(value));
  if (v == "true" || v == "1" || v == "yes" || v == "on") return true;
  if (v == "false" || v == "0" || v == "no" || v == "off") return false;
  return Invalid(name, value, "not a boolean (use true or false)");
}

absl::StatusOr<int64_t> ParseIntValue(absl::string_view name,
                                      absl::string_view value, int64_t min,
                                      int64_t max) {
  int64_t n = 0;
  if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(value), &n)) {
    return Invalid(name, value, "not an integer");
  }
  if (n < min || n > max) {
    return Invalid(name, value,
                   absl::StrCat("out of range [", min, ", ", max, "]"));
  }
  return n;
}

absl::StatusOr<absl::Duration> ParseDurationValue(absl::string_view name,
                                                  absl::string_view value) {
  absl::Duration d;
  if (!absl::ParseDuration(absl::StripAsciiWhitespace(value), &d)) {
    return Invalid(name, value, "not a duration (e.g. 500ms, 2s, 1m)");
  }
  if (d <= absl::ZeroDuration())
    return Invalid(name, value, "must be greater than zero");
  return d;
}

absl::StatusOr<HostPort> ParseHostPortValue(absl::string_view name,
                                            absl::string_view value) {
  absl::string_view v = absl::StripAsciiWhitespace(value);
  size_t colon = v.rfind(':');
  if (colon == absl::string_view::npos)
    return Invalid(name, value, "expected host:port");
  HostPort out;
  absl::string_view host = v.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != absl::string_view::npos) {
    return Invalid(name, value,
                   "an IPv6 host must be in brackets, e.g. [::1]:9091");
  }
  out.host = host.empty() ? "0.0.0.0" : std::string(host);
  int port = 0;
  if (!absl::SimpleAtoi(v.substr(colon + 1), &port) || port < 0 ||
      port > 65535) {
    return Invalid(name, value, "port must be a number in 0..65535");
  }
  out.port = static_cast<uint16_t>(port);
  return out;
}

absl::StatusOr<PortRange> ParsePortRangeValue(absl::string_view name,
                                              absl::string_view value) {
  std::vector<absl::string_view> parts =
      absl::StrSplit(absl::StripAsciiWhitespace(value), '-');
  int first = 0;
  int last = 0;
  if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &first) ||
      !absl::SimpleAtoi(parts[1], &last)) {
    return Invalid(name, value, "expected FIRST-LAST, e.g. 20000-20999");
  }
  if (first < 1 || last > 65535 || first > last) {
    return Invalid(name, value, "need 1 <= FIRST <= LAST <= 65535");
  }
  return PortRange{static_cast<uint16_t>(first), static_cast<uint16_t>(last)};
}

std::string GetEnvOr(const char* name, absl::string_view fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return std::string(fallback);
  return v;
}

}  // namespace loophost
