// ParseHttpUrl (see http_url.h) over libcurl's URL API (CURLU).
#include "loops/http/http_url.h"

#include <curl/curl.h>

#include <memory>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace loophost::loops::http {
namespace {

using UrlHandle = std::unique_ptr<CURLU, void (*)(CURLU*)>;

// One part of the URL; "" when it has none. `flags`: curl_url_get's.
std::string Part(CURLU* u, CURLUPart part, unsigned int flags = 0) {
  char* text = nullptr;
  if (curl_url_get(u, part, &text, flags) != CURLUE_OK || text == nullptr) {
    return "";
  }
  std::string out(text);
  curl_free(text);
  return out;
}

}  // namespace

absl::StatusOr<HttpEndpoint> ParseHttpUrl(absl::string_view url) {
  UrlHandle u(curl_url(), curl_url_cleanup);
  if (u == nullptr) return absl::ResourceExhaustedError("curl_url: no memory");
  const std::string text(url);
  if (CURLUcode rc = curl_url_set(u.get(), CURLUPART_URL, text.c_str(),
                                  CURLU_NON_SUPPORT_SCHEME);
      rc != CURLUE_OK) {
    return absl::InvalidArgumentError(
        absl::StrCat("not a URL (", curl_url_strerror(rc), ")"));
  }
  const std::string scheme =
      absl::AsciiStrToLower(Part(u.get(), CURLUPART_SCHEME));
  if (scheme.empty()) return absl::InvalidArgumentError("no scheme");
  if (scheme != "http" && scheme != "https") {
    return absl::InvalidArgumentError(
        absl::StrCat("scheme \"", scheme, "\" is not http or https"));
  }
  HttpEndpoint endpoint;
  endpoint.tls = scheme == "https";
  const std::string host = Part(u.get(), CURLUPART_HOST);
  if (host.empty()) return absl::InvalidArgumentError("no host");
  if (!Part(u.get(), CURLUPART_USER).empty()) {
    return absl::InvalidArgumentError(
        "credentials in the URL are not supported");
  }
  endpoint.host =
      std::string(absl::StripSuffix(absl::StripPrefix(host, "["), "]"));
  endpoint.port = Part(u.get(), CURLUPART_PORT, CURLU_DEFAULT_PORT);
  const std::string given_port = Part(u.get(), CURLUPART_PORT);
  endpoint.host_header =
      given_port.empty() ? host : absl::StrCat(host, ":", given_port);
  endpoint.target = Part(u.get(), CURLUPART_PATH);
  if (endpoint.target.empty()) endpoint.target = "/";
  if (std::string query = Part(u.get(), CURLUPART_QUERY); !query.empty()) {
    absl::StrAppend(&endpoint.target, "?", query);
  }
  endpoint.origin = absl::StrCat(scheme, "://", host, ":", endpoint.port);
  return endpoint;
}

absl::Status CheckHttpUrl(absl::string_view url) {
  return ParseHttpUrl(url).status();
}

}  // namespace loophost::loops::http
