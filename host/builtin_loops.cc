// The table of built-in loops (builtin_loops.h).
#include "host/builtin_loops.h"

#include "loops/example/example_loop.h"

namespace loophost::host {

std::vector<BuiltinLoop> BuiltinLoops() {
  return {
      {"example",
       "the SDK's example loop (an echo service), EXAMPLE_PLUGIN=true",
       loops::example::MakeExampleLoop},
  };
}

}  // namespace loophost::host
