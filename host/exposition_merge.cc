// Implementation of ParseExposition and MergeExpositions (exposition_merge.h).
#include "host/exposition_merge.h"

#include <algorithm>
#include <map>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace loophost::host {
namespace {

bool IsNameStart(char c) {
  return absl::ascii_isalpha(c) || c == '_' || c == ':';
}
bool IsNameChar(char c) { return IsNameStart(c) || absl::ascii_isdigit(c); }
bool IsLabelStart(char c) { return absl::ascii_isalpha(c) || c == '_'; }
bool IsLabelChar(char c) { return IsLabelStart(c) || absl::ascii_isdigit(c); }
bool IsBlank(char c) { return c == ' ' || c == '\t'; }

void SkipBlanks(absl::string_view& s) {
  while (!s.empty() && IsBlank(s.front())) s.remove_prefix(1);
}

// Consumes a metric name from the front of `s`; empty if there is none.
absl::string_view ConsumeMetricName(absl::string_view& s) {
  size_t n = 0;
  if (!s.empty() && IsNameStart(s[0])) {
    while (n < s.size() && IsNameChar(s[n])) ++n;
  }
  absl::string_view name = s.substr(0, n);
  s.remove_prefix(n);
  return name;
}

bool IsKnownType(absl::string_view type) {
  return type == "counter" || type == "gauge" || type == "histogram" ||
         type == "summary" || type == "untyped";
}

absl::string_view EffectiveType(absl::string_view type) {
  return type.empty() ? absl::string_view("untyped") : type;
}

bool IsValidValue(absl::string_view token) {
  if (token == "+Inf" || token == "-Inf" || token == "Inf" || token == "NaN")
    return true;
  double unused;
  return absl::SimpleAtod(token, &unused);
}

// Parses `{a="1",b="2"}` from the front of `s` into `labels`; returns an error
// message, empty on success.
std::string ConsumeLabels(
    absl::string_view& s,
    std::vector<std::pair<std::string, std::string>>& labels) {
  s.remove_prefix(1);  // '{'
  for (;;) {
    SkipBlanks(s);
    if (s.empty()) return "unterminated label set";
    if (s.front() == '}') {
      s.remove_prefix(1);
      return "";
    }
    size_t n = 0;
    if (!IsLabelStart(s[0])) return "bad label name";
    while (n < s.size() && IsLabelChar(s[n])) ++n;
    std::string label(s.substr(0, n));
    s.remove_prefix(n);
    SkipBlanks(s);
    if (!absl::ConsumePrefix(&s, "="))
      return absl::StrCat("no '=' after label ", label);
    SkipBlanks(s);
    if (!absl::ConsumePrefix(&s, "\""))
      return absl::StrCat("label ", label, " value not quoted");
    std::string value;
    bool closed = false;
    while (!s.empty()) {
      char c = s.front();
      s.remove_prefix(1);
      if (c == '"') {
        closed = true;
        break;
      }
      if (c == '\\') {
        if (s.empty()) break;
        char e = s.front();
        s.remove_prefix(1);
        if (e == 'n') {
          value.push_back('\n');
        } else if (e == '\\' || e == '"') {
          value.push_back(e);
        } else {
          return absl::StrCat("label ", label, ": bad escape \\",
                              std::string(1, e));
        }
        continue;
      }
      value.push_back(c);
    }
    if (!closed) return absl::StrCat("label ", label, ": unterminated value");
    labels.emplace_back(std::move(label), std::move(value));
    SkipBlanks(s);
    if (absl::ConsumePrefix(&s, ",")) continue;
    if (!s.empty() && s.front() == '}') continue;
    return "expected ',' or '}' in label set";
  }
}

class Parser {
 public:
  ParsedExposition Parse(absl::string_view text) {
    int line_number = 0;
    for (absl::string_view line : absl::StrSplit(text, '\n')) {
      ++line_number;
      line = absl::StripAsciiWhitespace(line);
      if (line.empty()) continue;
      std::string error =
          line.front() == '#' ? ParseComment(line) : ParseSample(line);
      if (!error.empty())
        out_.errors.push_back(absl::StrCat("line ", line_number, ": ", error));
    }
    return std::move(out_);
  }

 private:
  ExpositionFamily& FamilyFor(absl::string_view name) {
    auto [it, inserted] =
        index_.emplace(std::string(name), out_.families.size());
    if (inserted) {
      out_.families.emplace_back();
      out_.families.back().name = std::string(name);
    }
    return out_.families[it->second];
  }

  // The family a sample called `name` belongs to: its own, or a histogram's or
  // summary's by suffix, or a new untyped one.
  ExpositionFamily& FamilyForSample(absl::string_view name) {
    if (auto it = index_.find(std::string(name)); it != index_.end()) {
      return out_.families[it->second];
    }
    struct Suffix {
      absl::string_view suffix;
      bool histogram;
      bool summary;
    };
    for (const Suffix& s :
         {Suffix{"_bucket", true, false}, Suffix{"_sum", true, true},
          Suffix{"_count", true, true}}) {
      absl::string_view base = name;
      if (!absl::ConsumeSuffix(&base, s.suffix)) continue;
      auto it = index_.find(std::string(base));
      if (it == index_.end()) continue;
      ExpositionFamily& f = out_.families[it->second];
      if ((s.histogram && f.type == "histogram") ||
          (s.summary && f.type == "summary"))
        return f;
    }
    return FamilyFor(name);
  }

  std::string ParseComment(absl::string_view line) {
    line.remove_prefix(1);  // '#'
    SkipBlanks(line);
    const bool help = absl::StartsWith(line, "HELP");
    const bool type = absl::StartsWith(line, "TYPE");
    if (!help && !type) return "";  // a plain comment
    line.remove_prefix(4);
    if (line.empty() || !IsBlank(line.front()))
      return "";  // e.g. "# HELPER", a comment
    SkipBlanks(line);
    absl::string_view name = ConsumeMetricName(line);
    if (name.empty())
      return absl::StrCat(help ? "HELP" : "TYPE", " without a metric name");
    if (!line.empty() && !IsBlank(line.front())) return "bad metric name";
    if (!line.empty()) line.remove_prefix(1);
    ExpositionFamily& f = FamilyFor(name);
    if (help) {
      if (f.has_help) return absl::StrCat("second HELP for ", name);
      f.help = std::string(line);
      f.has_help = true;
      return "";
    }
    absl::string_view type_name = absl::StripAsciiWhitespace(line);
    if (!IsKnownType(type_name)) {
      return absl::StrCat("unknown type \"", type_name, "\" for ", name);
    }
    if (!f.type.empty()) return absl::StrCat("second TYPE for ", name);
    if (!f.samples.empty())
      return absl::StrCat("TYPE for ", name, " after its samples");
    f.type = std::string(type_name);
    return "";
  }

  std::string ParseSample(absl::string_view line) {
    ExpositionSample sample;
    sample.line = std::string(line);
    absl::string_view rest = line;
    absl::string_view name = ConsumeMetricName(rest);
    if (name.empty()) return "bad metric name";
    sample.name = std::string(name);
    SkipBlanks(rest);
    if (!rest.empty() && rest.front() == '{') {
      std::string error = ConsumeLabels(rest, sample.labels);
      if (!error.empty()) return absl::StrCat(name, ": ", error);
    }
    std::vector<absl::string_view> tokens =
        absl::StrSplit(rest, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    if (tokens.empty()) return absl::StrCat(name, ": no value");
    if (tokens.size() > 2)
      return absl::StrCat(name, ": trailing text after the timestamp");
    if (!IsValidValue(tokens[0]))
      return absl::StrCat(name, ": bad value \"", tokens[0], "\"");
    int64_t timestamp;
    if (tokens.size() == 2 && !absl::SimpleAtoi(tokens[1], &timestamp)) {
      return absl::StrCat(name, ": bad timestamp \"", tokens[1], "\"");
    }
    FamilyForSample(name).samples.push_back(std::move(sample));
    return "";
  }

  ParsedExposition out_;
  std::map<std::string, size_t> index_;
};

constexpr char kSep = '\xff';

// Label pairs sorted by name, empty values left out (Prometheus treats them as
// absent), minus `skip` (le or quantile).
std::string LabelKey(
    const std::vector<std::pair<std::string, std::string>>& labels,
    absl::string_view skip) {
  std::vector<const std::pair<std::string, std::string>*> sorted;
  for (const auto& l : labels) {
    if (!l.second.empty() && l.first != skip) sorted.push_back(&l);
  }
  std::sort(sorted.begin(), sorted.end(),
            [](const auto* a, const auto* b) { return *a < *b; });
  std::string key;
  for (const auto* l : sorted)
    absl::StrAppend(&key, l->first, "=", l->second, "\xfe");
  return key;
}

// What identifies one metric of a family: for histograms and summaries all of
// its samples (buckets or quantiles, _sum, _count) share it.
std::string MetricKey(const ExpositionFamily& family,
                      const ExpositionSample& sample) {
  if (family.type == "histogram") return LabelKey(sample.labels, "le");
  if (family.type == "summary") return LabelKey(sample.labels, "quantile");
  return absl::StrCat(sample.name, std::string(1, kSep),
                      LabelKey(sample.labels, ""));
}

struct OutFamily {
  const ExpositionFamily* first;  // gives the name
  std::string source;             // the source that declared it first
  const std::string* help = nullptr;
  const std::string* type = nullptr;
  std::vector<const ExpositionSample*> samples;
};

}  // namespace

ParsedExposition ParseExposition(absl::string_view text) {
  return Parser().Parse(text);
}

MergedExposition MergeExpositions(
    const std::vector<ExpositionSource>& sources) {
  MergedExposition merged;
  std::vector<OutFamily> families;
  std::map<std::string, size_t> index;
  std::map<std::string, size_t>
      metric_owner;                   // family + metric key -> source index
  std::set<std::string> sample_keys;  // sample name + labels, over all families

  for (size_t s = 0; s < sources.size(); ++s) {
    const ExpositionSource& source = sources[s];
    for (const ExpositionFamily& family : source.exposition.families) {
      auto [it, inserted] = index.emplace(family.name, families.size());
      if (inserted) {
        families.push_back(
            OutFamily{&family,
                      source.name,
                      family.has_help ? &family.help : nullptr,
                      family.type.empty() ? nullptr : &family.type,
                      {}});
      }
      OutFamily& out = families[it->second];
      const absl::string_view out_type = out.type != nullptr
                                             ? absl::string_view(*out.type)
                                             : absl::string_view("untyped");
      if (out_type != EffectiveType(family.type)) {
        merged.conflicts.push_back(
            TypeConflict{family.name, out.source, std::string(out_type),
                         source.name, std::string(EffectiveType(family.type))});
        continue;
      }
      if (out.help == nullptr && family.has_help) out.help = &family.help;
      if (out.type == nullptr && !family.type.empty()) out.type = &family.type;

      for (const ExpositionSample& sample : family.samples) {
        std::string owner_key = absl::StrCat(family.name, std::string(1, kSep),
                                             MetricKey(family, sample));
        auto [owner, first] = metric_owner.emplace(std::move(owner_key), s);
        if (!first && owner->second != s) {
          ++merged.duplicates_dropped;
          continue;
        }
        std::string sample_key = absl::StrCat(sample.name, std::string(1, kSep),
                                              LabelKey(sample.labels, ""));
        if (!sample_keys.insert(std::move(sample_key)).second) {
          ++merged.duplicates_dropped;
          continue;
        }
        out.samples.push_back(&sample);
      }
    }
  }

  for (const OutFamily& f : families) {
    if (f.help != nullptr)
      absl::StrAppend(&merged.text, "# HELP ", f.first->name, " ", *f.help,
                      "\n");
    if (f.type != nullptr)
      absl::StrAppend(&merged.text, "# TYPE ", f.first->name, " ", *f.type,
                      "\n");
    for (const ExpositionSample* sample : f.samples)
      absl::StrAppend(&merged.text, sample->line, "\n");
  }
  return merged;
}

}  // namespace loophost::host
