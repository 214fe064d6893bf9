// RefusingPort: a TCP socket bound to 127.0.0.1:0 for the HTTP transport's
// tests. Not listening, connecting to it is refused, and nothing else can take
// its port while it is open; Listen() turns it into a peer that completes
// handshakes into its backlog and never reads (a hung subscriber), or into the
// listener of a hand-written server.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

#include "absl/strings/str_cat.h"

namespace loophost::loops::http {

class RefusingPort {
 public:
  RefusingPort() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), len) == 0 &&
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      port_ = ntohs(addr.sin_port);
    }
  }
  ~RefusingPort() { ::close(fd_); }
  RefusingPort(const RefusingPort&) = delete;
  RefusingPort& operator=(const RefusingPort&) = delete;

  // False when the socket could not be bound or listen failed.
  bool Listen() { return port_ != 0 && ::listen(fd_, 64) == 0; }
  std::string Url() const { return absl::StrCat("http://127.0.0.1:", port_); }
  int port() const { return port_; }
  int fd() const { return fd_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

}  // namespace loophost::loops::http
