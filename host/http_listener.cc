// Implementation of http_listener.h.
#include "host/http_listener.h"

#include <cerrno>
#include <memory>
#include <system_error>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"

namespace loophost::host {

std::string HostPortString(absl::string_view host, uint16_t port) {
  if (absl::StrContains(host, ':')) return absl::StrCat("[", host, "]:", port);
  return absl::StrCat(host, ":", port);
}

absl::StatusOr<uint16_t> BindAndServe(httplib::Server& server,
                                      const HostPort& listen, size_t threads,
                                      absl::string_view what,
                                      std::thread* thread) {
  // httplib calls new_task_queue() once listen_after_bind() is running, which
  // is after the point where stop() takes effect: waiting for it makes an early
  // stop() safe.
  auto listening = std::make_shared<absl::Notification>();
  server.new_task_queue = [listening, threads] {
    listening->Notify();
    return new httplib::ThreadPool(threads);
  };
  const std::string host = listen.host.empty() ? "0.0.0.0" : listen.host;
  errno = 0;
  int port = -1;
  if (listen.port == 0) {
    port = server.bind_to_any_port(host);
  } else if (server.bind_to_port(host, listen.port)) {
    port = listen.port;
  }
  if (port <= 0) {
    const int err = errno;
    return absl::UnavailableError(absl::StrCat(
        what, HostPortString(host, listen.port), ": ",
        err != 0 ? std::error_code(err, std::generic_category()).message()
                 : "cannot resolve the address"));
  }
  *thread = std::thread([&server, listening] {
    server.listen_after_bind();
    if (!listening->HasBeenNotified()) listening->Notify();
  });
  listening->WaitForNotification();
  return static_cast<uint16_t>(port);
}

}  // namespace loophost::host
