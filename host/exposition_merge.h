// Parsing and merging of Prometheus text expositions (format 0.0.4), so that
// the host's /metrics can serve its own metrics and every plugin's as ONE valid
// exposition: one HELP/TYPE per family, no duplicate series. Pure functions on
// values; thread-compatible.
#pragma once

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"

namespace loophost::host {

struct ExpositionSample {
  std::string name;  // the sample's metric name, e.g. "rpc_seconds_bucket"
  // Label pairs in the order written, values unescaped.
  std::vector<std::pair<std::string, std::string>> labels;
  std::string line;  // the whole line as written (trimmed), re-emitted as is
};

struct ExpositionFamily {
  std::string name;
  std::string help;  // as written after "# HELP <name> " (still escaped)
  bool has_help = false;
  std::string
      type;  // counter|gauge|histogram|summary|untyped; "" = no TYPE line
  std::vector<ExpositionSample> samples;
};

struct ParsedExposition {
  std::vector<ExpositionFamily> families;  // in order of first appearance
  // One entry per line that was skipped, e.g. `line 7: bad sample value "x"`.
  std::vector<std::string> errors;
};

// Never fails as a whole: a malformed line is skipped and reported in `errors`,
// so one bad line from a plugin does not cost the rest of its metrics.
ParsedExposition ParseExposition(absl::string_view text);

struct ExpositionSource {
  std::string name;  // "host" or the plugin name; used in conflict reports
  ParsedExposition exposition;
};

struct TypeConflict {
  std::string family;
  std::string kept_source;
  std::string kept_type;
  std::string dropped_source;
  std::string dropped_type;
};

struct MergedExposition {
  std::string text;
  std::vector<TypeConflict> conflicts;  // families dropped from a later source
  size_t duplicates_dropped = 0;        // samples dropped as duplicate series
};

// Merges families by name across `sources`, in order: the first source that
// declares a family gives its HELP and TYPE; samples are concatenated. A family
// a later source declares with another type is dropped from that source (and
// reported). A series (a sample, or for histograms and summaries a whole
// metric, i.e. its labels without le/quantile) that an earlier source already
// gave is dropped, as is an exact repeat of a sample within one source.
MergedExposition MergeExpositions(const std::vector<ExpositionSource>& sources);

}  // namespace loophost::host
