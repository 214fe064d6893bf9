// Implementation of OperatorServer (operator_server.h) on cpp-httplib, with
// nlohmann-json for the JSON bodies and exposition_merge for /metrics.
#include "host/operator_server.h"

#include <httplib.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <exception>
#include <map>
#include <nlohmann/json.hpp>
#include <system_error>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/logging.h"
#include "host/exposition_merge.h"
#include "host/http_listener.h"
#include "prometheus/text_serializer.h"

namespace loophost::host {
namespace {

using nlohmann::json;

constexpr char kExpositionType[] = "text/plain; version=0.0.4";
constexpr char kTextType[] = "text/plain; charset=utf-8";
constexpr char kJsonType[] = "application/json";
// Handler threads. /metrics fans out one short-lived thread per plugin on top
// of these.
constexpr int kServerThreads = 8;
// A plugin's exposition larger than this is a bug in the plugin; refuse it.
constexpr size_t kMaxScrapeBytes = 32 << 20;
// How many distinct "already logged" keys to remember (conflicts, parse errors,
// failures).
constexpr size_t kMaxLoggedKeys = 1000;

// Plugin-provided strings (errors, names) may hold invalid UTF-8; never throw
// on them.
std::string Dump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

bool Running(PluginState state) {
  return state == PluginState::kStarting || state == PluginState::kServing ||
         state == PluginState::kUnhealthy;
}

json PluginStatusJson(const PluginStatus& p, absl::Time now) {
  json j = {
      {"name", p.name},
      {"version", p.version},
      {"kinds", p.kinds},
      {"in_process", p.in_process},
      {"command", p.command},
      {"state", PluginStateName(p.state)},
      {"pid", p.pid},
      {"restarts", p.restarts},
      {"prometheus_port", p.prometheus_port},
      {"last_error", p.last_error},
      {"checks", p.checks},
  };
  if (p.started_at == absl::InfinitePast()) {
    j["started_at"] = nullptr;
  } else {
    j["started_at"] =
        absl::FormatTime(absl::RFC3339_full, p.started_at, absl::UTCTimeZone());
  }
  if (Running(p.state) && p.started_at != absl::InfinitePast() &&
      now >= p.started_at) {
    j["uptime_seconds"] = absl::ToInt64Seconds(now - p.started_at);
  } else {
    j["uptime_seconds"] = nullptr;
  }
  return j;
}

// "ok <name>" per healthy check, "!  <name>" and the tab-indented error per
// failing one.
std::string HealthText(const std::map<std::string, std::string>& checks) {
  std::string out;
  for (const auto& [name, error] : checks) {
    if (error.empty()) {
      absl::StrAppend(&out, "ok ", name, "\n");
      continue;
    }
    absl::StrAppend(&out, "!  ", name, "\n");
    for (absl::string_view line : absl::StrSplit(error, '\n')) {
      absl::StrAppend(&out, "\t", line, "\n");
    }
  }
  return out;
}

json HealthJson(const std::map<std::string, std::string>& checks,
                bool failing) {
  json by_name = json::object();
  for (const auto& [name, error] : checks) {
    if (error.empty()) {
      by_name[name] = {{"status", "ok"}};
    } else {
      by_name[name] = {{"status", "failing"}, {"error", error}};
    }
  }
  return {{"status", failing ? "failing" : "ok"}, {"checks", by_name}};
}

// Why a scrape got no response, in words (httplib's to_string() gives "Read").
std::string DescribeError(httplib::Error error) {
  switch (error) {
    case httplib::Error::Connection:
      return "cannot connect";
    case httplib::Error::ConnectionTimeout:
      return "connect timed out";
    case httplib::Error::Read:
      return "read failed or timed out";
    case httplib::Error::Write:
      return "write failed or timed out";
    default:
      return httplib::to_string(error);
  }
}

// The listening socket: SO_REUSEADDR only. httplib's default adds SO_REUSEPORT,
// with which a second loophost on the same address would bind silently instead
// of failing.
void ListenSocketOptions(socket_t sock) {
  int yes = 1;
  setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
}

}  // namespace

OperatorServer::OperatorServer(OperatorServerOptions options,
                               const PluginDirectory& plugins,
                               HostMetrics& metrics)
    : options_(std::move(options)), plugins_(plugins), metrics_(metrics) {}

OperatorServer::~OperatorServer() { Stop(); }

uint16_t OperatorServer::port() const { return port_; }

absl::Status OperatorServer::Start() {
  if (server_ != nullptr)
    return absl::FailedPreconditionError("operator server already started");
  auto server = std::make_unique<httplib::Server>();
  server->set_socket_options(ListenSocketOptions);
  // Prometheus keeps connections open between scrapes; a short keep-alive
  // bounds Stop().
  server->set_keep_alive_timeout(1);
  server->set_read_timeout(std::chrono::seconds(5));
  server->set_write_timeout(std::chrono::seconds(5));

  using httplib::Request;
  using httplib::Response;
  server->Get("/metrics", [this](const Request& req, Response& res) {
    HandleMetrics(req, res);
  });
  server->Get("/discovery", [this](const Request& req, Response& res) {
    HandleDiscovery(req, res);
  });
  server->Get(R"(/plugins/([^/]+)/metrics)",
              [this](const Request& req, Response& res) {
                HandlePluginMetrics(req, res);
              });
  server->Get("/plugins",
              [this](const Request&, Response& res) { HandlePlugins(res); });
  server->Get("/health", [this](const Request& req, Response& res) {
    HandleHealth(req, res);
  });
  server->Get("/healthz", [](const Request&, Response& res) {
    res.set_content("ok\n", kTextType);
  });
  server->Get("/readyz",
              [this](const Request&, Response& res) { HandleReadyz(res); });
  server->set_error_handler(httplib::Server::HandlerWithResponse(
      [](const Request& req, Response& res) {
        if (!res.body.empty())
          return httplib::Server::HandlerResponse::Unhandled;
        if (res.status == 404) {
          res.set_content(absl::StrCat("not found: ", req.path, "\n"),
                          kTextType);
          return httplib::Server::HandlerResponse::Handled;
        }
        return httplib::Server::HandlerResponse::Unhandled;
      }));
  server->set_exception_handler([](const Request& req, Response& res,
                                   std::exception_ptr ep) {
    std::string what = "unknown exception";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    LogError("operator endpoint failed", {{"path", req.path}, {"error", what}});
    res.status = 500;
    res.set_content(absl::StrCat("internal error: ", what, "\n"), kTextType);
  });

  auto port = BindAndServe(*server, options_.listen, kServerThreads,
                           "operator endpoints: cannot listen on ", &thread_);
  if (!port.ok()) return port.status();
  server_ = std::move(server);
  port_ = *port;
  const std::string host =
      options_.listen.host.empty() ? "0.0.0.0" : options_.listen.host;
  LogInfo("operator endpoints listening",
          {{"addr", HostPortString(host, port_)}});
  return absl::OkStatus();
}

void OperatorServer::Stop() {
  if (server_ == nullptr) return;
  server_->stop();
  if (thread_.joinable()) thread_.join();
  server_.reset();
}

bool OperatorServer::FirstTime(std::string key) {
  absl::MutexLock lock(&mu_);
  if (logged_.size() >= kMaxLoggedKeys) return false;
  return logged_.insert(std::move(key)).second;
}

absl::StatusOr<OperatorServer::Scrape> OperatorServer::ScrapePlugin(
    uint16_t port) const {
  const std::string url = absl::StrCat("http://127.0.0.1:", port, "/metrics");
  const auto timeout = absl::ToChronoMicroseconds(options_.scrape_timeout);
  httplib::Client client("127.0.0.1", port);
  client.set_connection_timeout(timeout);
  client.set_read_timeout(timeout);
  client.set_write_timeout(timeout);
  // The read timeout is per read; the deadline bounds a plugin that trickles
  // bytes.
  const absl::Time deadline = absl::Now() + options_.scrape_timeout;
  Scrape scrape;
  bool too_slow = false;
  bool too_big = false;
  httplib::Headers headers = {
      {"Accept", "text/plain;version=0.0.4;q=1,*/*;q=0.1"}};
  httplib::Result result =
      client.Get("/metrics", headers, [&](const char* data, size_t length) {
        if (absl::Now() > deadline) {
          too_slow = true;
          return false;
        }
        if (scrape.body.size() + length > kMaxScrapeBytes) {
          too_big = true;
          return false;
        }
        scrape.body.append(data, length);
        return true;
      });
  const std::string limit = absl::FormatDuration(options_.scrape_timeout);
  if (too_slow) {
    return absl::DeadlineExceededError(absl::StrCat(
        "GET ", url, ": not complete within the timeout of ", limit));
  }
  if (too_big) {
    return absl::ResourceExhaustedError(
        absl::StrCat("GET ", url, ": larger than ", kMaxScrapeBytes, " bytes"));
  }
  if (!result) {
    return absl::UnavailableError(absl::StrCat("GET ", url, ": ",
                                               DescribeError(result.error()),
                                               " (timeout ", limit, ")"));
  }
  if (result->status != 200) {
    return absl::UnavailableError(
        absl::StrCat("GET ", url, ": HTTP ", result->status));
  }
  scrape.content_type = result->get_header_value("Content-Type");
  return scrape;
}

void OperatorServer::HandleMetrics(const httplib::Request& req,
                                   httplib::Response& res) {
  bool with_plugins = true;
  if (req.has_param("plugins")) {
    const std::string value = req.get_param_value("plugins");
    if (value == "none") {
      with_plugins = false;
    } else if (value != "all") {
      res.status = 400;
      res.set_content(
          absl::StrCat("plugins=", value, ": want \"none\" or \"all\"\n"),
          kTextType);
      return;
    }
  }

  std::vector<PluginStatus> targets;
  if (with_plugins) {
    for (PluginStatus& p : plugins_.ListPlugins()) {
      // A stopped plugin was stopped on purpose: not answering is not a
      // failure.
      if (p.prometheus_port != 0 && p.state != PluginState::kStopped) {
        targets.push_back(std::move(p));
      }
    }
  }
  std::vector<absl::StatusOr<Scrape>> scrapes(targets.size());
  {
    std::vector<std::thread> threads;
    threads.reserve(targets.size());
    for (size_t i = 0; i < targets.size(); ++i) {
      threads.emplace_back([this, &targets, &scrapes, i] {
        scrapes[i] = ScrapePlugin(targets[i].prometheus_port);
      });
    }
    for (std::thread& t : threads) t.join();
  }
  for (size_t i = 0; i < targets.size(); ++i) {
    if (scrapes[i].ok()) continue;
    metrics_.IncScrapeFailure(targets[i].name);
    const std::string error(scrapes[i].status().message());
    const LogFields fields = {{"plugin", targets[i].name}, {"error", error}};
    if (FirstTime(absl::StrCat("scrape\n", targets[i].name, "\n", error))) {
      LogWarn("plugin metrics left out of /metrics", fields);
    } else {
      LogDebug("plugin metrics left out of /metrics", fields);
    }
  }

  // Serialized after the scrapes, so this response already counts their
  // failures.
  std::string host_text =
      prometheus::TextSerializer().Serialize(metrics_.registry().Collect());
  if (!with_plugins) {
    res.set_content(host_text, kExpositionType);
    return;
  }

  std::vector<ExpositionSource> sources;
  sources.push_back({"host", ParseExposition(host_text)});
  for (size_t i = 0; i < targets.size(); ++i) {
    if (!scrapes[i].ok()) continue;
    ExpositionSource source{targets[i].name, ParseExposition(scrapes[i]->body)};
    for (const std::string& error : source.exposition.errors) {
      if (FirstTime(absl::StrCat("parse\n", source.name, "\n", error))) {
        LogWarn("plugin metrics: skipped a malformed line",
                {{"plugin", source.name}, {"error", error}});
      }
    }
    sources.push_back(std::move(source));
  }
  MergedExposition merged = MergeExpositions(sources);
  for (const TypeConflict& c : merged.conflicts) {
    metrics_.IncMetricConflict(c.dropped_source);
    if (FirstTime(
            absl::StrCat("conflict\n", c.dropped_source, "\n", c.family))) {
      LogWarn("plugin metric family left out of /metrics: type conflict",
              {{"family", c.family},
               {"plugin", c.dropped_source},
               {"type", c.dropped_type},
               {"declared_by", c.kept_source},
               {"declared_type", c.kept_type}});
    }
  }
  res.set_content(merged.text, kExpositionType);
}

void OperatorServer::HandleDiscovery(const httplib::Request& req,
                                     httplib::Response& res) const {
  std::string target = req.get_header_value("Host");
  if (target.empty()) {
    const std::string& host = options_.listen.host;
    target = HostPortString(
        host.empty() || host == "0.0.0.0" ? "127.0.0.1" : host, port_);
  }
  auto labels = [this](json l) {
    if (!options_.node_name.empty()) l["node"] = options_.node_name;
    return l;
  };
  json groups = json::array();
  groups.push_back({{"targets", json::array({target})},
                    {"labels", labels({{"__metrics_path__", "/metrics"},
                                       {"__param_plugins", "none"}})}});
  for (const PluginStatus& p : plugins_.ListPlugins()) {
    if (p.prometheus_port == 0) continue;
    groups.push_back(
        {{"targets", json::array({target})},
         {"labels", labels({{"__metrics_path__",
                             absl::StrCat("/plugins/", p.name, "/metrics")},
                            {"plugin", p.name}})}});
  }
  res.set_content(Dump(groups), kJsonType);
}

void OperatorServer::HandlePluginMetrics(const httplib::Request& req,
                                         httplib::Response& res) {
  const std::string name = req.matches[1];
  for (const PluginStatus& p : plugins_.ListPlugins()) {
    if (p.name != name) continue;
    if (p.prometheus_port == 0) {
      res.status = 404;
      res.set_content(
          absl::StrCat("plugin \"", name, "\" has no metrics port\n"),
          kTextType);
      return;
    }
    absl::StatusOr<Scrape> scrape = ScrapePlugin(p.prometheus_port);
    if (!scrape.ok()) {
      metrics_.IncScrapeFailure(name);
      res.status = 503;
      res.set_content(absl::StrCat(scrape.status().message(), "\n"), kTextType);
      return;
    }
    const std::string type = scrape->content_type.empty()
                                 ? std::string(kExpositionType)
                                 : scrape->content_type;
    res.set_content(scrape->body, type);
    return;
  }
  res.status = 404;
  res.set_content(absl::StrCat("unknown plugin \"", name, "\"\n"), kTextType);
}

void OperatorServer::HandlePlugins(httplib::Response& res) const {
  const absl::Time now = absl::Now();
  json list = json::array();
  for (const PluginStatus& p : plugins_.ListPlugins())
    list.push_back(PluginStatusJson(p, now));
  res.set_content(Dump(list), kJsonType);
}

void OperatorServer::HandleHealth(const httplib::Request& req,
                                  httplib::Response& res) const {
  std::map<std::string, std::string> checks;
  for (const PluginStatus& p : plugins_.ListPlugins()) {
    for (const auto& [name, error] : p.checks) {
      std::string& slot = checks[name];
      if (slot.empty())
        slot = error;  // two reports of one name: the failing one wins
    }
  }
  bool failing = false;
  for (const auto& [name, error] : checks) failing = failing || !error.empty();
  res.status = failing ? 503 : 200;
  if (absl::StrContains(req.get_header_value("Accept"), kJsonType)) {
    res.set_content(Dump(HealthJson(checks, failing)), kJsonType);
  } else {
    res.set_content(HealthText(checks), kTextType);
  }
}

void OperatorServer::HandleReadyz(httplib::Response& res) const {
  std::string not_ready;
  for (const PluginStatus& p : plugins_.ListPlugins()) {
    if (p.state == PluginState::kServing) continue;
    absl::StrAppend(&not_ready, p.name, ": ", PluginStateName(p.state));
    if (!p.last_error.empty()) {
      absl::StrAppend(&not_ready, ": ",
                      absl::StrReplaceAll(p.last_error, {{"\n", " "}}));
    }
    absl::StrAppend(&not_ready, "\n");
  }
  if (not_ready.empty()) {
    res.set_content("ok\n", kTextType);
    return;
  }
  res.status = 503;
  res.set_content(absl::StrCat("not ready:\n", not_ready), kTextType);
}

}  // namespace loophost::host
