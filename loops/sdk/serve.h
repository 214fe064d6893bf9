// ServeLoop: the whole main() of a plugin binary. It runs one Loop as a child
// of loophost (or of any hashicorp/go-plugin host): checks the magic cookie
// and protocol version, serves a LoopServer on a unix socket, prints the
// go-plugin handshake line `1|1|unix|<path>|grpc|` on stdout, and runs until
// the Shutdown RPC, SIGTERM/SIGINT, or the death of its parent. Logs go to
// stderr, one line each (LOOP_LOG_LEVEL sets the level).
#pragma once

#include <memory>

#include "loops/sdk/loop.h"

namespace loophost::sdk {

// The cookie go-plugin hosts put in the plugin's environment.
inline constexpr char kCookieKey[] = "LOOPHOST_PLUGIN_COOKIE";
inline constexpr char kCookieValue[] = "d2a4c6e8-loophost-v1";

// Returns the process exit code: 0 after a clean stop, 1 when it cannot start
// (not started by a host, bad environment, Loop::Start failed).
int ServeLoop(std::unique_ptr<Loop> loop);

// Also understands `--help` and `--version` (exit code 0) and rejects any
// other argument (exit code 2).
int ServeLoop(int argc, char** argv, std::unique_ptr<Loop> loop);

}  // namespace loophost::sdk
