// The linuxptp log-line scanner: prefix (`process[ts]: [config:sev]`), then the
// message by its first words. Hand-written (no regex, no exceptions, no
// std::stoi) so a reused PtpLogLine costs no allocation; every reason string is
// a literal, so counters keyed by reason stay few.
#include "loops/ptp/ptp_log_parser.h"

#include <array>
#include <bit>
#include <cstdint>
#include <cstring>
#include <limits>

namespace loophost::loops::ptp {

const char* LineKindName(LineKind kind) {
  switch (kind) {
    case LineKind::kOffset:
      return "offset";
    case LineKind::kSummary:
      return "summary";
    case LineKind::kPortEvent:
      return "port_event";
    case LineKind::kProcessStatus:
      return "process_status";
    case LineKind::kClockClass:
      return "clock_class";
    case LineKind::kControl:
      return "control";
    case LineKind::kOther:
      return "other";
    case LineKind::kMalformed:
      return "malformed";
  }
  return "unknown";
}

namespace {

using absl::string_view;

// kOther reasons.
constexpr string_view kEmptyLine = "empty line";
constexpr string_view kProcessNotMonitored = "process not monitored";
constexpr string_view kBestMaster = "best master selection";
constexpr string_view kForeignMaster = "foreign master";
constexpr string_view kGrandMasterRole = "grand master role";
constexpr string_view kPortMessage = "port message";
constexpr string_view kNonNumericPort = "port is a clock identity";
constexpr string_view kSourceTsNotValid = "source ts not valid";
constexpr string_view kUnknownControl = "unknown control command";
constexpr string_view kNotMonitored = "message not monitored";

// kMalformed reasons that are not "<field>: <problem>".
constexpr string_view kNoPrefix = "no process[timestamp]: prefix";
constexpr string_view kBadTimestamp = "bad timestamp";
constexpr string_view kNoColon = "missing ':' after process[timestamp]";
constexpr string_view kUnterminatedTag = "unterminated [config] tag";
constexpr string_view kEmptyTag = "empty [config] tag";
constexpr string_view kTrailingText = "trailing text";

// Problems, for "<field>: <problem>".
constexpr string_view kMissing = "missing";
constexpr string_view kNotANumber = "not a number";
constexpr string_view kOutOfRange = "out of range";

inline bool IsBlank(char c) {
  // ' ', '\t', '\n', '\r' as one bit test.
  constexpr uint64_t kBlanks =
      (1ULL << ' ') | (1ULL << '\t') | (1ULL << '\n') | (1ULL << '\r');
  const auto u = static_cast<unsigned char>(c);
  return u <= ' ' && ((kBlanks >> u) & 1) != 0;
}
inline bool IsDigit(char c) { return c >= '0' && c <= '9'; }
inline bool IsUpperOrUnderscore(char c) {
  return (c >= 'A' && c <= 'Z') || c == '_';
}
// [A-Za-z0-9_.-], as a table: the prefix scan runs once per line.
constexpr auto kProcessChars = [] {
  std::array<bool, 256> t{};
  for (int c = 0; c < 256; ++c) {
    t[c] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.';
  }
  return t;
}();
inline bool IsProcessChar(char c) {
  return kProcessChars[static_cast<unsigned char>(c)];
}

// A state name as linuxptp prints it: LISTENING, GRAND_MASTER, ...
bool IsStateWord(string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!IsUpperOrUnderscore(c)) return false;
  }
  return true;
}

// An event name: RS_SLAVE, FAULT_DETECTED, ... (digits allowed, not first).
bool IsEventWord(string_view s) {
  if (s.empty() || !IsUpperOrUnderscore(s[0])) return false;
  for (char c : s) {
    if (!IsUpperOrUnderscore(c) && !IsDigit(c)) return false;
  }
  return true;
}

// linuxptp's port states (ps_str): a lone one is a cut-off transition.
bool IsPortState(string_view s) {
  return s == "INITIALIZING" || s == "FAULTY" || s == "DISABLED" ||
         s == "LISTENING" || s == "PRE_MASTER" || s == "MASTER" ||
         s == "PASSIVE" || s == "UNCALIBRATED" || s == "SLAVE" ||
         s == "GRAND_MASTER";
}

// Word scanning, 8 bytes at a time where the platform allows (SWAR): log lines
// are mostly runs of padding and short words, and a byte-at-a-time loop pays a
// mispredicted branch at the end of every run.
constexpr uint64_t kOnes = 0x0101010101010101ULL;
constexpr uint64_t kHighBits = 0x8080808080808080ULL;
constexpr bool kSwar = std::endian::native == std::endian::little;

inline uint64_t Load8(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

inline uint32_t Load4(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// a[0, n) == b[0, n) for the short strings a line is made of, without a call
// to memcmp: two overlapping loads for 4-16 bytes.
inline bool Equal(const char* a, const char* b, size_t n) {
  if (n >= 8 && n <= 16) {
    return Load8(a) == Load8(b) && Load8(a + n - 8) == Load8(b + n - 8);
  }
  if (n >= 4 && n < 8) {
    return Load4(a) == Load4(b) && Load4(a + n - 4) == Load4(b + n - 4);
  }
  return std::memcmp(a, b, n) == 0;
}

// First byte at or after `p` that is not blank.
inline const char* SkipBlanks(const char* p, const char* end) {
  for (;;) {
    if constexpr (kSwar) {
      while (end - p >= 8) {
        // High bit set in each byte != ' ' (exact: no carries between bytes).
        const uint64_t y = Load8(p) ^ (kOnes * ' ');
        const uint64_t not_space =
            (((y & ~kHighBits) + ~kHighBits) | y) & kHighBits;
        if (not_space != 0) {
          p += std::countr_zero(not_space) / 8;
          break;
        }
        p += 8;
      }
    }
    if (p < end && IsBlank(*p)) {
      ++p;  // a tab, CR or LF, or a byte of the last < 8
      continue;
    }
    return p;
  }
}

// First blank byte at or after `p` (or `end`).
inline const char* SkipWord(const char* p, const char* end) {
  for (;;) {
    if constexpr (kSwar) {
      while (end - p >= 8) {
        // High bit set in the first byte < 0x21 (bytes after it may be false
        // positives, which countr_zero never looks at).
        const uint64_t x = Load8(p);
        const uint64_t low = (x - kOnes * 0x21) & ~x & kHighBits;
        if (low != 0) {
          p += std::countr_zero(low) / 8;
          break;
        }
        p += 8;
      }
    }
    if (p == end || IsBlank(*p)) return p;
    ++p;  // a control byte that is not blank, or a byte of the last < 8
  }
}

enum class Num { kOk, kEmpty, kBad, kOverflow };

// [+-]digits[.digits] into an int64. With `allow_fraction` the fraction rounds
// half away from zero (printf's %.0f never prints one; be lenient); without,
// any '.' is not a number. Overflow is detected digit by digit.
Num ParseNumber(string_view s, bool allow_fraction, int64_t* out) {
  size_t i = 0;
  bool negative = false;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
    negative = s[i] == '-';
    ++i;
  }
  if (i == s.size() || !IsDigit(s[i])) return Num::kBad;
  constexpr uint64_t kMaxPositive = std::numeric_limits<int64_t>::max();
  const uint64_t limit = negative ? kMaxPositive + 1 : kMaxPositive;
  uint64_t magnitude = 0;
  bool overflow = false;
  // 18 digits never overflow; only further ones are checked.
  for (int digits = 0; i < s.size() && IsDigit(s[i]) && digits < 18;
       ++i, ++digits) {
    magnitude = magnitude * 10 + static_cast<uint64_t>(s[i] - '0');
  }
  for (; i < s.size() && IsDigit(s[i]); ++i) {
    const auto digit = static_cast<uint64_t>(s[i] - '0');
    if (overflow || magnitude > (limit - digit) / 10) {
      overflow = true;
    } else {
      magnitude = magnitude * 10 + digit;
    }
  }
  if (i < s.size()) {
    if (!allow_fraction || s[i] != '.') return Num::kBad;
    ++i;
    const size_t first_fraction_digit = i;
    for (; i < s.size(); ++i) {
      if (!IsDigit(s[i])) return Num::kBad;
    }
    if (i > first_fraction_digit && s[first_fraction_digit] >= '5') {
      if (magnitude == limit) overflow = true;
      ++magnitude;
    }
  }
  if (overflow) return Num::kOverflow;
  *out = negative ? static_cast<int64_t>(0 - magnitude)
                  : static_cast<int64_t>(magnitude);
  return Num::kOk;
}

// Whitespace-separated words of the message, scanned in place. Keyword() and
// Number() read the common case without a separate pass over the word.
class Words {
 public:
  explicit Words(string_view s) : p_(s.data()), end_(s.data() + s.size()) {}

  string_view Next() {
    const char* start = SkipBlanks(p_, end_);
    p_ = SkipWord(start, end_);
    return string_view(start, static_cast<size_t>(p_ - start));
  }
  bool AtEnd() {
    p_ = SkipBlanks(p_, end_);
    return p_ == end_;
  }
  // What is left, from the next word on.
  string_view Rest() {
    AtEnd();
    return string_view(p_, static_cast<size_t>(end_ - p_));
  }
  // Consumes the next word if it is `keyword`; otherwise consumes nothing.
  bool Keyword(string_view keyword) {
    const char* p = SkipBlanks(p_, end_);
    const size_t n = keyword.size();
    if (static_cast<size_t>(end_ - p) < n || !Equal(p, keyword.data(), n) ||
        (p + n != end_ && !IsBlank(p[n]))) {
      return false;
    }
    p_ = p + n;
    return true;
  }
  // Consumes the next word and reads it as ParseNumber does.
  Num Number(bool allow_fraction, int64_t* out) {
    const char* start = SkipBlanks(p_, end_);
    // Fast path: [+-] and up to 18 digits, then a blank or the end.
    const char* p = start;
    const bool negative = p < end_ && *p == '-';
    if (p < end_ && (*p == '-' || *p == '+')) ++p;
    const char* digits = p;
    if constexpr (kSwar) {
      // 1-7 digits and a blank, without a loop: find the first non-digit
      // byte, then combine the digits with three multiplies.
      if (end_ - p >= 8) {
        const uint64_t a = Load8(p) ^ (kOnes * '0');  // digits -> 0..9
        const uint64_t not_digit =
            (((a & ~kHighBits) + kOnes * 0x76) | a) & kHighBits;
        const int n = std::countr_zero(not_digit) / 8;  // 8 if none
        if (n > 0 && n < 8 && IsBlank(p[n])) {
          uint64_t v = a << (8 * (8 - n));
          v = ((v & 0x0F0F0F0F0F0F0F0FULL) * 2561) >> 8;
          v = ((v & 0x00FF00FF00FF00FFULL) * 6553601) >> 16;
          v = ((v & 0x0000FFFF0000FFFFULL) * 42949672960001ULL) >> 32;
          p_ = p + n;
          *out = negative ? -static_cast<int64_t>(v) : static_cast<int64_t>(v);
          return Num::kOk;
        }
      }
    }
    uint64_t magnitude = 0;
    while (p < end_ && IsDigit(*p) && p - digits < 18) {
      magnitude = magnitude * 10 + static_cast<uint64_t>(*p - '0');
      ++p;
    }
    if (p > digits && (p == end_ || IsBlank(*p))) {
      p_ = p;
      *out = negative ? -static_cast<int64_t>(magnitude)
                      : static_cast<int64_t>(magnitude);
      return Num::kOk;
    }
    p_ = SkipWord(start, end_);
    if (p_ == start) return Num::kEmpty;
    return ParseNumber(string_view(start, static_cast<size_t>(p_ - start)),
                       allow_fraction, out);
  }

 private:
  const char* p_;
  const char* end_;
};

// Sets `*dst` to `v`. Most lines repeat the previous line's process, config,
// iface and servo, and a comparison costs less than std::string::assign.
inline void Assign(std::string* dst, string_view v) {
  if (dst->size() != v.size() || !Equal(dst->data(), v.data(), v.size())) {
    dst->assign(v.data(), v.size());
  }
}

class Parser {
 public:
  explicit Parser(PtpLogLine* out) : out_(out) {}

  void Parse(string_view line, string_view default_config);

 private:
  // Sets kind and reason; clears what a partial parse may have filled, so a
  // kOther/kMalformed line carries only process, config and reason.
  void Set(LineKind kind, string_view reason) {
    out_->kind = kind;
    out_->reason.assign(reason.data(), reason.size());
    ClearPayload();
  }
  void ClearPayload() {
    ClearClock();
    ClearValues();
  }
  void ClearClock() {
    out_->iface.clear();
    out_->from.clear();
    out_->servo.clear();
  }
  // Everything but the strings a line sets through Assign(): process, config,
  // iface, from, servo (each kind's success path sets or clears those).
  void ClearValues() {
    out_->offset_ns.reset();
    out_->max_offset_ns.reset();
    out_->freq_adj.reset();
    out_->delay_ns.reset();
    out_->holdover = false;
    out_->port = 0;
    out_->from_state.clear();
    out_->to_state.clear();
    out_->event.clear();
    out_->status.reset();
    out_->clock_class.reset();
  }
  void Other(string_view reason) { Set(LineKind::kOther, reason); }
  void Malformed(string_view reason) { Set(LineKind::kMalformed, reason); }
  void Malformed(string_view field, string_view problem) {
    Set(LineKind::kMalformed, field);
    out_->reason.append(": ");
    out_->reason.append(problem.data(), problem.size());
  }

  // Reads the next word as a number into `*value`; on failure marks the line
  // malformed with `field` in the reason and returns false.
  bool Number(Words& words, string_view field, bool allow_fraction,
              std::optional<int64_t>* value) {
    int64_t v = 0;
    switch (words.Number(allow_fraction, &v)) {
      case Num::kOk:
        *value = v;
        return true;
      case Num::kEmpty:
        Malformed(field, kMissing);
        return false;
      case Num::kBad:
        Malformed(field, kNotANumber);
        return false;
      case Num::kOverflow:
        Malformed(field, kOutOfRange);
        return false;
    }
    return false;
  }
  // The next word must be `keyword`.
  bool Expect(Words& words, string_view keyword, string_view field) {
    if (words.Keyword(keyword)) return true;
    Malformed(field, words.AtEnd() ? kMissing : string_view("unexpected word"));
    return false;
  }
  bool End(Words& words) {
    if (words.AtEnd()) return true;
    Malformed(kTrailingText);
    return false;
  }
  void SetIface(string_view iface, string_view from) {
    Assign(&out_->iface, iface);
    Assign(&out_->from, from);
  }

  void Message(string_view message);
  // `[iface] [master|phc|sys] offset N sK freq F [[path] delay D] [holdover]`,
  // the words after "offset". `strict`: the line said "master/phc/sys offset"
  // so anything off is malformed; otherwise (`<clock> offset ...`, a shape
  // other ts2phc messages share) it is ours only from `N sK` on.
  void Offset(Words& words, bool strict);
  // `[iface] rms R max M freq F +/- S [delay D +/- S]`, the words after "rms".
  void Summary(Words& words);
  // `port N[ (name)]: ...`, the text after "port".
  void Port(string_view rest);
  void ProcessStatus(string_view first_word, Words& words);
  void ClockClass(Words& words);

  PtpLogLine* out_;
};

void Parser::Parse(string_view line, string_view default_config) {
  PtpLogLine& o = *out_;
  o.timestamp_s = 0;
  o.kind = LineKind::kOther;
  o.reason.clear();
  ClearValues();

  size_t begin = 0;
  size_t end = line.size();
  while (begin < end && IsBlank(line[begin])) ++begin;
  while (end > begin && IsBlank(line[end - 1])) --end;
  const string_view s = line.substr(begin, end - begin);
  if (s.empty()) {
    o.process.clear();
    o.config.clear();
    return Other(kEmptyLine);
  }

  if (s.size() > 4 && s.substr(0, 4) == "CMD ") {
    o.process.clear();
    o.config.clear();
    Words words(s.substr(4));
    const string_view command = words.Next();
    if ((command == "RESTART" || command == "LIVE_START") && words.AtEnd()) {
      Set(LineKind::kControl, "");
      o.event.assign(command.data(), command.size());
      return;
    }
    return Other(kUnknownControl);
  }

  // process[timestamp]:
  size_t i = 0;
  while (i < s.size() && IsProcessChar(s[i])) ++i;
  if (i == 0 || i == s.size() || s[i] != '[') {
    o.process.clear();
    o.config.clear();
    return Malformed(kNoPrefix);
  }
  Assign(&o.process, s.substr(0, i));
  Assign(&o.config, default_config);
  ++i;
  {
    // digits[.digits]]
    uint64_t whole = 0;
    int whole_digits = 0;
    for (; i < s.size() && IsDigit(s[i]); ++i, ++whole_digits) {
      whole = whole * 10 + static_cast<uint64_t>(s[i] - '0');
      if (whole_digits > 17) return Malformed(kBadTimestamp);
    }
    if (whole_digits == 0) return Malformed(kBadTimestamp);
    double fraction = 0;
    if (i < s.size() && s[i] == '.') {
      ++i;
      // Up to 9 digits count (ns); more are read and ignored.
      static constexpr double kScale[] = {1,    1e-1, 1e-2, 1e-3, 1e-4,
                                          1e-5, 1e-6, 1e-7, 1e-8, 1e-9};
      uint32_t digits = 0;
      int fraction_digits = 0;
      for (; i < s.size() && IsDigit(s[i]); ++i, ++fraction_digits) {
        if (fraction_digits < 9) {
          digits = digits * 10 + static_cast<uint32_t>(s[i] - '0');
        }
      }
      if (fraction_digits == 0) return Malformed(kBadTimestamp);
      fraction = digits * kScale[fraction_digits < 9 ? fraction_digits : 9];
    }
    if (i == s.size() || s[i] != ']') return Malformed(kBadTimestamp);
    o.timestamp_s = static_cast<double>(whole) + fraction;
    ++i;
  }
  if (i == s.size() || s[i] != ':') return Malformed(kNoColon);
  ++i;
  while (i < s.size() && IsBlank(s[i])) ++i;

  // [config] or [config:severity]
  if (i < s.size() && s[i] == '[') {
    const size_t close = s.find(']', i);
    if (close == string_view::npos) return Malformed(kUnterminatedTag);
    string_view tag = s.substr(i + 1, close - i - 1);
    const size_t colon = tag.find(':');
    if (colon != string_view::npos) tag = tag.substr(0, colon);
    if (tag.empty()) return Malformed(kEmptyTag);
    Assign(&o.config, tag);
    i = close + 1;
  }

  const string_view process = o.process;
  if (process != "ptp4l" && process != "phc2sys" && process != "ts2phc") {
    return Other(kProcessNotMonitored);
  }
  Message(s.substr(i));
}

void Parser::Message(string_view message) {
  Words words(message);
  const string_view w0 = words.Next();
  if (w0.empty()) return Other(kNotMonitored);
  if (w0 == "master") {
    if (words.Next() != "offset") return Other(kNotMonitored);
    SetIface("master", "master");
    return Offset(words, /*strict=*/true);
  }
  if (w0 == "rms") {
    SetIface("master", "master");
    return Summary(words);
  }
  if (w0 == "port") return Port(words.Rest());
  if (w0.substr(0, 18) == "PTP_PROCESS_STATUS") {
    return ProcessStatus(w0, words);
  }
  if (w0 == "CLOCK_CLASS_CHANGE") return ClockClass(words);
  if (w0 == "selected") return Other(kBestMaster);
  if (w0 == "foreign") return Other(kForeignMaster);
  if (w0 == "source" && words.Rest() == "ts not valid") {
    return Other(kSourceTsNotValid);
  }

  const string_view w1 = words.Next();
  if (w1 == "rms") {
    SetIface(w0, "master");
    return Summary(words);
  }
  if (w1 == "master" || w1 == "phc" || w1 == "sys") {
    if (words.Next() != "offset") return Other(kNotMonitored);
    SetIface(w0, w1);
    return Offset(words, /*strict=*/true);
  }
  if (w1 == "offset") {
    SetIface(w0, "master");
    return Offset(words, /*strict=*/false);
  }
  return Other(kNotMonitored);
}

void Parser::Offset(Words& words, bool strict) {
  PtpLogLine& o = *out_;
  auto is_servo = [](string_view w) {
    return w.size() == 2 && w[0] == 's' && IsDigit(w[1]);
  };
  if (!strict) {
    Words ahead = words;
    const string_view offset = ahead.Next();
    const string_view servo = ahead.Next();
    int64_t ignored = 0;
    if (!offset.empty() && !servo.empty() &&
        (ParseNumber(offset, false, &ignored) != Num::kOk ||
         !is_servo(servo))) {
      return Other(kNotMonitored);
    }
  }
  if (!Number(words, "offset", false, &o.offset_ns)) return;
  const string_view servo = words.Next();
  if (servo.empty()) return Malformed("servo", kMissing);
  if (!is_servo(servo)) return Malformed("servo", "expected s0..s9");
  Assign(&o.servo, servo);
  if (!Expect(words, "freq", "freq")) return;
  if (!Number(words, "freq", true, &o.freq_adj)) return;
  if (words.Keyword("path")) {
    if (!words.Keyword("delay")) return Malformed("path delay", kMissing);
    if (!Number(words, "delay", false, &o.delay_ns)) return;
  } else if (words.Keyword("delay")) {
    if (!Number(words, "delay", false, &o.delay_ns)) return;
  }
  if (words.Keyword("holdover")) o.holdover = true;
  if (!End(words)) return;
  o.kind = LineKind::kOffset;
  o.reason.clear();
}

void Parser::Summary(Words& words) {
  PtpLogLine& o = *out_;
  std::optional<int64_t> stddev;
  if (!Number(words, "rms", true, &o.offset_ns)) return;
  if (!Expect(words, "max", "max")) return;
  if (!Number(words, "max", true, &o.max_offset_ns)) return;
  if (!Expect(words, "freq", "freq")) return;
  if (!Number(words, "freq", true, &o.freq_adj)) return;
  if (!Expect(words, "+/-", "freq +/-")) return;
  if (!Number(words, "freq +/-", true, &stddev)) return;
  if (words.Keyword("delay")) {
    if (!Number(words, "delay", true, &o.delay_ns)) return;
    if (!Expect(words, "+/-", "delay +/-")) return;
    if (!Number(words, "delay +/-", true, &stddev)) return;
  }
  if (!End(words)) return;
  o.servo.clear();
  o.kind = LineKind::kSummary;
  o.reason.clear();
}

void Parser::Port(string_view rest) {
  PtpLogLine& o = *out_;
  ClearClock();
  size_t i = 0;
  uint32_t port = 0;
  for (; i < rest.size() && IsDigit(rest[i]); ++i) {
    port = port * 10 + static_cast<uint32_t>(rest[i] - '0');
    if (port > 65535) return Malformed("port", kOutOfRange);
  }
  if (i == 0) {
    // phc2sys/ts2phc: "port 507c6f.fffe.1fb1b9-1 changed state".
    return Other(rest.empty() ? kPortMessage : kNonNumericPort);
  }
  if (i < rest.size() && rest[i] == ' ') {
    while (i < rest.size() && rest[i] == ' ') ++i;
    if (i < rest.size() && rest[i] == '(') {
      const size_t close = rest.find(')', i);
      if (close == string_view::npos) return Malformed("port name", kMissing);
      const string_view name = rest.substr(i + 1, close - i - 1);
      o.iface.assign(name.data(), name.size());
      i = close + 1;
    }
  }
  if (i == rest.size() || rest[i] != ':') {
    return Malformed("port", "expected 'N:' or 'N (name):'");
  }
  o.port = static_cast<int>(port);

  Words words(rest.substr(i + 1));
  const string_view w0 = words.Next();
  if (!IsStateWord(w0)) {
    if (w0 == "new" || w0 == "foreign") return Other(kForeignMaster);
    if (w0 == "assuming") return Other(kGrandMasterRole);
    return Other(kPortMessage);
  }
  const string_view w1 = words.Next();
  if (w1.empty()) {
    // A bare event ("port 1: FAULT_DETECTED"), not a cut-off "SLAVE".
    if (IsPortState(w0)) return Malformed("port event", "no 'to STATE'");
    o.event.assign(w0.data(), w0.size());
  } else {
    if (w1 != "to") return Other(kPortMessage);
    const string_view to = words.Next();
    if (!IsStateWord(to)) {
      return Malformed("port event", to.empty() ? kMissing : "bad state");
    }
    o.from_state.assign(w0.data(), w0.size());
    o.to_state.assign(to.data(), to.size());
    const string_view on = words.Next();
    if (!on.empty()) {
      if (on != "on") return Malformed(kTrailingText);
      const string_view event = words.Next();
      if (!IsEventWord(event)) {
        return Malformed("port event", event.empty() ? kMissing : "bad event");
      }
      o.event.assign(event.data(), event.size());
      // FAULT_DETECTED (FT_UNSPECIFIED): the fault type.
      const string_view detail = words.Next();
      if (!detail.empty() && (detail.size() < 3 || detail.front() != '(' ||
                              detail.back() != ')')) {
        return Malformed(kTrailingText);
      }
    }
  }
  if (!End(words)) return;
  o.kind = LineKind::kPortEvent;
  o.reason.clear();
}

void Parser::ProcessStatus(string_view first_word, Words& words) {
  PtpLogLine& o = *out_;
  string_view value = first_word.substr(18);
  if (!value.empty() && value[0] == ':') value.remove_prefix(1);
  if (value.empty()) {
    value = words.Next();
    if (value.size() > 1 && value[0] == ':') value.remove_prefix(1);
  }
  if (value.empty()) return Malformed("status", kMissing);
  if (value != "0" && value != "1") {
    return Malformed("status", "expected 0 or 1");
  }
  if (!End(words)) return;
  ClearClock();
  o.kind = LineKind::kProcessStatus;
  o.reason.clear();
  o.status = value[0] - '0';
}

void Parser::ClockClass(Words& words) {
  PtpLogLine& o = *out_;
  string_view value = words.Next();
  if (value.empty()) return Malformed("clock class", kMissing);
  // Older daemons print the class with %f: "165.000000".
  const size_t dot = value.find('.');
  if (dot != string_view::npos) {
    const string_view fraction = value.substr(dot + 1);
    if (fraction.empty() ||
        fraction.find_first_not_of('0') != string_view::npos) {
      return Malformed("clock class", "not an integer");
    }
    value = value.substr(0, dot);
  }
  int64_t clock_class = 0;
  if (value.empty() || !IsDigit(value[0])) {
    return Malformed("clock class", kNotANumber);
  }
  switch (ParseNumber(value, false, &clock_class)) {
    case Num::kOk:
      break;
    case Num::kEmpty:
    case Num::kBad:
      return Malformed("clock class", kNotANumber);
    case Num::kOverflow:
      return Malformed("clock class", kOutOfRange);
  }
  if (clock_class > 255) return Malformed("clock class", kOutOfRange);
  if (!End(words)) return;
  ClearClock();
  o.kind = LineKind::kClockClass;
  o.reason.clear();
  o.clock_class = static_cast<int>(clock_class);
}

}  // namespace

void ParsePtpLogLine(absl::string_view line, absl::string_view default_config,
                     PtpLogLine* out) {
  Parser(out).Parse(line, default_config);
}

PtpLogLine ParsePtpLogLine(absl::string_view line,
                           absl::string_view default_config) {
  PtpLogLine out;
  ParsePtpLogLine(line, default_config, &out);
  return out;
}

}  // namespace loophost::loops::ptp
