// Subscriber endpoint URLs: the check that an endpoint is an absolute http://
// or https:// URL, and its parts as the HTTP sender needs them (where to
// connect, what to put in Host and the request line). Parsed with libcurl's
// URL API.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace loophost::loops::http {

struct HttpEndpoint {
  bool tls = false;         // https
  std::string host;         // to resolve: a name or an address, no brackets
  std::string port;         // "80" / "443" when the URL gives none
  std::string host_header;  // the Host field: as in the URL ("[::1]:8080")
  std::string target;       // path and query, "/" at least
  std::string origin;       // scheme://host:port: connections are kept per it
};

// Parses `url`; the error says why it is not an http(s) endpoint (the scheme
// it has instead, no host, credentials, not a URL at all).
absl::StatusOr<HttpEndpoint> ParseHttpUrl(absl::string_view url);

// ParseHttpUrl's verdict alone.
absl::Status CheckHttpUrl(absl::string_view url);

}  // namespace loophost::loops::http
