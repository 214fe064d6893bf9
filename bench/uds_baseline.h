// The machine's floor for a process-to-process round trip: a bare unix-socket
// ping-pong with a forked child (no gRPC, no HTTP/2, no protobuf), the same
// call pattern as the Echo measurement. Compares with the go-plugin peer's
// baseline_uds line. Runs on the calling thread; not reentrant.
#pragma once

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"

namespace loophost::bench {

// Round-trip latencies in us, summarized (stats.h), of `calls` sequential
// `payload`-byte ping-pongs after `warm_calls` unmeasured ones.
absl::StatusOr<nlohmann::json> UdsPingPong(int payload, int warm_calls,
                                           int calls);

}  // namespace loophost::bench
