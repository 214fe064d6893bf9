// loopctl: the operator CLI. Asks a running loophost's operator endpoints (GET
// /plugins, GET /health) and prints what they say. Exit 0 ok, 1 failing or
// unreachable, 2 bad usage.
#include <httplib.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <iostream>
#include <sstream>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "cmd/loopctl/status_table.h"
#include "common/env_parse.h"

namespace {

using loophost::loopctl::FormatPluginsTable;
using loophost::loopctl::FormatStatusTable;
using loophost::loopctl::ParsePluginList;

struct Reply {
  int status = 0;
  std::string body;
};

std::string Describe(httplib::Error error) {
  switch (error) {
    case httplib::Error::Connection:
      return "connection refused or unreachable";
    case httplib::Error::ConnectionTimeout:
      return "connect timed out";
    case httplib::Error::Read:
      return "no answer";
    default:
      return httplib::to_string(error);
  }
}

// One GET against the host; an unreachable host is an Unavailable error that
// says so.
absl::StatusOr<Reply> Get(const loophost::HostPort& addr,
                          const std::string& path) {
  // A wildcard listen address is reached on loopback.
  std::string host = addr.host;
  if (host.empty() || host == "0.0.0.0") host = "127.0.0.1";
  if (host == "::") host = "::1";
  httplib::Client client(host, addr.port);
  client.set_connection_timeout(std::chrono::seconds(5));
  client.set_read_timeout(std::chrono::seconds(10));
  httplib::Result res = client.Get(path);
  if (!res) {
    return absl::UnavailableError(
        absl::StrCat("cannot reach loophost at ", host, ":", addr.port,
                     " (GET ", path, ": ", Describe(res.error()),
                     "); is it running, and do --addr / LOOPHOST_METRICS_ADDR "
                     "match its address?"));
  }
  return Reply{res->status, res->body};
}

int Fail(const std::string& message) {
  std::cerr << "loopctl: " << message << "\n";
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "loopctl: show the plugins of a running loophost, from its operator "
      "endpoints (LOOPHOST_METRICS_ADDR)."};
  app.footer(
      "Exit status: 0 ok; 1 loophost unreachable or, for health, a check "
      "failing; 2 bad usage.");
  std::string addr_text =
      loophost::GetEnvOr("LOOPHOST_METRICS_ADDR", "127.0.0.1:9091");
  app.add_option("--addr", addr_text,
                 "loophost operator address HOST:PORT "
                 "(default: $LOOPHOST_METRICS_ADDR, else 127.0.0.1:9091)")
      ->type_name("HOST:PORT")
      ->capture_default_str();
  app.require_subcommand(1);
  CLI::App* status = app.add_subcommand(
      "status", "one line per plugin: PID, state, uptime, restarts, health");
  CLI::App* health = app.add_subcommand(
      "health", "every health check (ok / !); exits 1 when any fails");
  CLI::App* plugins =
      app.add_subcommand("plugins",
                         "each plugin's version, kinds, metrics port and mode "
                         "(in-process or child)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    std::ostringstream out, err;
    if (app.exit(e, out, err) == 0) {
      std::cout << out.str();
      return 0;
    }
    std::cerr << err.str();
    return 2;
  }
  absl::StatusOr<loophost::HostPort> addr =
      loophost::ParseHostPortValue("--addr", addr_text);
  if (!addr.ok()) {
    std::cerr << "loopctl: " << addr.status().message() << "\n";
    return 2;
  }

  if (health->parsed()) {
    absl::StatusOr<Reply> reply = Get(*addr, "/health");
    if (!reply.ok()) return Fail(std::string(reply.status().message()));
    if (reply->status != 200 && reply->status != 503) {
      return Fail(
          absl::StrCat("GET /health: HTTP ", reply->status, ": ", reply->body));
    }
    std::cout << (reply->body.empty() ? "no health checks reported\n"
                                      : reply->body);
    return reply->status == 200 ? 0 : 1;
  }

  absl::StatusOr<Reply> reply = Get(*addr, "/plugins");
  if (!reply.ok()) return Fail(std::string(reply.status().message()));
  if (reply->status != 200) {
    return Fail(
        absl::StrCat("GET /plugins: HTTP ", reply->status, ": ", reply->body));
  }
  auto rows = ParsePluginList(reply->body);
  if (!rows.ok()) return Fail(std::string(rows.status().message()));
  if (status->parsed()) std::cout << FormatStatusTable(*rows);
  if (plugins->parsed()) std::cout << FormatPluginsTable(*rows);
  return 0;
}
