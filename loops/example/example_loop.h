// ExampleLoop: the smallest complete loop, and the SDK's documentation by
// example. It serves loophost.v1.Echo, reports one health check
// ("example.echo") and counts requests (loop_example_echo_requests_total).
// The benchmarks use it as the C++ peer of a go-plugin plugin.
#pragma once

#include <memory>

#include "loops/sdk/loop.h"

namespace loophost::loops::example {

std::unique_ptr<sdk::Loop> MakeExampleLoop();

}  // namespace loophost::loops::example
