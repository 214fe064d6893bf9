// Implementation of LoopRegistry (see loop_registry.h for the reservation
// scheme).
#include "registry/loop_registry.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace loophost::registry {
namespace {

bool ValidName(absl::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
      return false;
  }
  return true;
}

// True when nothing on the machine holds 127.0.0.1:port (or a wildcard bind of
// it).
bool PortIsFree(uint16_t port) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return ::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) ==
         0;
}

}  // namespace

std::string LoopRegistryOptions::DefaultPortLockDir() {
  return absl::StrCat("/tmp/loophost-ports-", ::getuid());
}

LoopRegistry::LoopRegistry(LoopRegistryOptions options)
    : options_(std::move(options)) {}

LoopRegistry::~LoopRegistry() = default;

absl::StatusOr<std::pair<uint16_t, UniqueFd>> LoopRegistry::ReservePort() {
  if (::mkdir(options_.lock_dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return absl::FailedPreconditionError(absl::StrCat(
        "port lock directory ", options_.lock_dir, ": ", std::strerror(errno)));
  }
  int held_elsewhere = 0;
  int bound_elsewhere = 0;
  for (uint32_t p = options_.ports.first; p <= options_.ports.last; ++p) {
    const auto port = static_cast<uint16_t>(p);
    bool ours = false;
    for (const auto& [name, entry] : loops_)
      ours |= entry.loop.prometheus_port == port;
    if (ours) continue;
    std::string path = absl::StrCat(options_.lock_dir, "/", port, ".lock");
    UniqueFd lock(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    if (!lock.valid()) {
      return absl::FailedPreconditionError(
          absl::StrCat("port lock ", path, ": ", std::strerror(errno)));
    }
    if (::flock(lock.get(), LOCK_EX | LOCK_NB) != 0) {
      ++held_elsewhere;
      continue;
    }
    if (!PortIsFree(port)) {
      ++bound_elsewhere;
      continue;
    }
    return std::make_pair(port, std::move(lock));
  }
  return absl::ResourceExhaustedError(absl::StrCat(
      "no free Prometheus port in ", options_.ports.first, "-",
      options_.ports.last, " (", loops_.size(), " held by this host, ",
      held_elsewhere, " by other loophost instances, ", bound_elsewhere,
      " bound by other processes); widen LOOPHOST_PROMETHEUS_PORTS"));
}

absl::StatusOr<RegisteredLoop> LoopRegistry::Register(
    absl::string_view name, std::map<std::string, std::string> extra_env) {
  if (!ValidName(name)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "loop name \"", name, "\": use 1-64 characters of a-z, 0-9 and _"));
  }
  absl::MutexLock lock(&mu_);
  if (loops_.find(name) != loops_.end()) {
    return absl::AlreadyExistsError(
        absl::StrCat("loop \"", name, "\" is already registered"));
  }
  auto reserved = ReservePort();
  if (!reserved.ok()) {
    return absl::Status(reserved.status().code(),
                        absl::StrCat("registering loop \"", name,
                                     "\": ", reserved.status().message()));
  }
  Entry entry;
  entry.loop.name = std::string(name);
  entry.loop.prometheus_port = reserved->first;
  entry.port_lock = std::move(reserved->second);
  entry.loop.env = std::move(extra_env);
  entry.loop.env["LOOP_NAME"] = entry.loop.name;
  entry.loop.env["LOOP_PROMETHEUS_PORT"] =
      absl::StrCat(entry.loop.prometheus_port);
  RegisteredLoop out = entry.loop;
  loops_.emplace(out.name, std::move(entry));
  return out;
}

absl::Status LoopRegistry::Unregister(absl::string_view name) {
  absl::MutexLock lock(&mu_);
  auto it = loops_.find(name);
  if (it == loops_.end()) {
    return absl::NotFoundError(
        absl::StrCat("loop \"", name, "\" is not registered"));
  }
  loops_.erase(it);  // closes the lock file: the port is free again
  return absl::OkStatus();
}

absl::StatusOr<RegisteredLoop> LoopRegistry::Get(absl::string_view name) const {
  absl::MutexLock lock(&mu_);
  auto it = loops_.find(name);
  if (it == loops_.end()) {
    return absl::NotFoundError(
        absl::StrCat("loop \"", name, "\" is not registered"));
  }
  return it->second.loop;
}

std::vector<RegisteredLoop> LoopRegistry::List() const {
  absl::MutexLock lock(&mu_);
  std::vector<RegisteredLoop> out;
  out.reserve(loops_.size());
  for (const auto& [name, entry] : loops_) out.push_back(entry.loop);
  return out;  // std::map keeps them sorted by name
}

}  // namespace loophost::registry
