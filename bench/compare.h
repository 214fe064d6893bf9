// Compares a loophost-bench run with a go-plugin peer run (both JSON lines
// files) and renders the ratio table of issue #2's goals (ours / go-plugin,
// lower is better) plus informational rows. Pure: reads two files, returns
// text; thread-safe.
#pragma once

#include <string>

#include "absl/status/statusor.h"

namespace loophost::bench {

// A Markdown table. NotFound names the file and phase a number is missing
// from.
absl::StatusOr<std::string> CompareRuns(const std::string& ours_path,
                                        const std::string& peer_path);

}  // namespace loophost::bench
