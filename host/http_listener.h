// Binding and serving a cpp-httplib server on its own thread, shared by the
// operator endpoints and the REST API: bind (port 0 = the kernel picks), start
// listen_after_bind() on `thread`, and return once it listens, so that an early
// stop() takes effect.
#pragma once

#include <httplib.h>

#include <cstdint>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/env_parse.h"

namespace loophost::host {

// "host:port", with IPv6 hosts in brackets.
std::string HostPortString(absl::string_view host, uint16_t port);

// Returns the bound port. An error names `what` (e.g. "REST API: cannot listen
// on LOOPHOST_API_ADDR=") followed by the address and the reason.
absl::StatusOr<uint16_t> BindAndServe(httplib::Server& server,
                                      const HostPort& listen, size_t threads,
                                      absl::string_view what,
                                      std::thread* thread);

}  // namespace loophost::host
