// go-plugin's handshake: the one stdout line a plugin prints once it serves,
// `CORE|APP|NETWORK|ADDRESS|PROTOCOL|CERT[|MUX]`. ParseHandshakeLine is pure;
// HandshakeWaiter collects a starting plugin's stdout lines (OnStdoutLine is
// thread-safe, called from the output relay thread) until the handshake and
// lets the supervisor wait for it with a deadline and the child's pidfd.
#pragma once

#include <cstddef>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/unique_fd.h"

namespace loophost::host {

inline constexpr int kCoreProtocolVersion = 1;  // go-plugin's core protocol
inline constexpr int kAppProtocolVersion = 1;   // PLUGIN_PROTOCOL_VERSIONS

struct Handshake {
  int core_version = 0;
  int app_version = 0;
  std::string network;   // "unix" or "tcp"
  std::string address;   // socket path or host:port
  std::string protocol;  // always "grpc" once parsed
  std::string cert;      // base64 DER server cert (go-plugin AutoMTLS), or ""
  bool multiplex = false;
};

// Parses one handshake line (trailing whitespace ignored). InvalidArgument
// errors name the reason: field count, core version, "version mismatch: plugin
// speaks app protocol 2, host 1", network, "netrpc plugins are not supported".
absl::StatusOr<Handshake> ParseHandshakeLine(absl::string_view line);

class HandshakeWaiter {
 public:
  // Non-handshake stdout lines tolerated before the handshake.
  static constexpr int kMaxLinesBeforeHandshake = 100;
  static constexpr size_t kMaxBytesBeforeHandshake = 64 * 1024;

  explicit HandshakeWaiter(std::string plugin);
  HandshakeWaiter(const HandshakeWaiter&) = delete;
  HandshakeWaiter& operator=(const HandshakeWaiter&) = delete;

  // Feeds one stdout line. Before the handshake, other lines are logged and
  // counted; a line that starts like a handshake ("<digit>|") settles the
  // outcome. Lines after the outcome is settled are re-logged as the plugin's
  // stdout (RelogPluginLine), so the stream can stay routed here.
  void OnStdoutLine(absl::string_view line);

  // Waits for the outcome: the handshake; the parse error or "no handshake in
  // the first N lines"; FailedPrecondition "exited before the handshake (…)"
  // once pidfd is readable (the child is not reaped: the caller does that); or
  // DeadlineExceeded "no handshake within 5s". pidfd < 0 = no exit watch.
  absl::StatusOr<Handshake> Wait(int pidfd, absl::Duration timeout);

 private:
  const std::string plugin_;
  UniqueFd wake_fd_;  // eventfd, signalled when the outcome is settled

  absl::Mutex mu_;
  std::optional<absl::StatusOr<Handshake>> outcome_ ABSL_GUARDED_BY(mu_);
  int lines_before_ ABSL_GUARDED_BY(mu_) = 0;
  size_t bytes_before_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace loophost::host
