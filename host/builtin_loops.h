// The loops compiled into loophost, which run in-process unless
// <NAME>_PLUGIN_CMD is set.
#pragma once

#include <vector>

#include "host/plugin_config.h"

namespace loophost::host {

std::vector<BuiltinLoop> BuiltinLoops();

}  // namespace loophost::host
