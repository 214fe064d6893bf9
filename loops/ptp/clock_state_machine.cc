// Implementation of clock_state_machine.h. The rules (issue #3, O-RAN Table
// 37) in one place:
//  - a servo reading s2/s3 with min < offset < max is LOCKED, else FREERUN;
//    ts2phc's "holdover" is HOLDOVER;
//  - a port that was SLAVE going FAULTY/MASTER/LISTENING/UNCALIBRATED puts its
//    config's ptp4l servo in HOLDOVER with a timer: FREERUN when it expires,
//    LOCKED again if a LOCKED in-range reading comes first. A port event older
//    than the servo's latest line (a stale replay) changes nothing;
//  - lock-state is the worst PTP servo (ptp4l, ts2phc); os-clock-sync-state
//    is the worst phc2sys CLOCK_REALTIME servo, made no better than lock-state;
//    sync-state is the worst of the two;
//  - a process reported down takes its servos to FREERUN.
#include "loops/ptp/clock_state_machine.h"

#include <algorithm>
#include <exception>

#include "absl/strings/str_cat.h"
#include "loops/ptp/explain.h"

namespace loophost::loops::ptp {
namespace {

constexpr char kRealtime[] = "CLOCK_REALTIME";

int Rank(SyncState s) {
  switch (s) {
    case SyncState::kLocked:
      return 0;
    case SyncState::kHoldover:
      return 1;
    case SyncState::kFreerun:
      return 2;
  }
  return 2;
}

std::string ClockKey(absl::string_view process, absl::string_view config,
                     absl::string_view iface) {
  return absl::StrCat(process, "\x1f", config, "\x1f", iface);
}

bool IsLockedServo(absl::string_view servo) {
  return servo == "s2" || servo == "s3";
}

bool LosesSlave(const PtpLogLine& line, PortRole role) {
  absl::string_view to = line.to_state;
  if (to.empty()) return role == PortRole::kFaulty;
  return to == "FAULTY" || to == "MASTER" || to == "GRAND_MASTER" ||
         to == "LISTENING" || to == "UNCALIBRATED";
}

std::string Describe(const ServoClock& clock) {
  return absl::StrCat(clock.process, " ", clock.config, " ",
                      clock.display_iface);
}

int64_t TimeToJson(absl::Time t) {
  if (t == absl::InfiniteFuture()) return INT64_MAX;
  if (t == absl::InfinitePast()) return INT64_MIN;
  return absl::ToUnixNanos(t);
}

absl::Time TimeFromJson(int64_t n) {
  if (n == INT64_MAX) return absl::InfiniteFuture();
  if (n == INT64_MIN) return absl::InfinitePast();
  return absl::FromUnixNanos(n);
}

}  // namespace

const char* SyncStateName(SyncState state) {
  switch (state) {
    case SyncState::kFreerun:
      return "FREERUN";
    case SyncState::kLocked:
      return "LOCKED";
    case SyncState::kHoldover:
      return "HOLDOVER";
  }
  return "FREERUN";
}

SyncState WorstOf(SyncState a, SyncState b) {
  return Rank(a) >= Rank(b) ? a : b;
}

PortRole PortRoleFromName(absl::string_view name) {
  if (name == "PASSIVE") return PortRole::kPassive;
  if (name == "SLAVE") return PortRole::kSlave;
  if (name == "MASTER" || name == "GRAND_MASTER") return PortRole::kMaster;
  if (name == "FAULTY") return PortRole::kFaulty;
  if (name == "LISTENING") return PortRole::kListening;
  return PortRole::kUnknown;
}

PtpClockStateMachine::PtpClockStateMachine(PtpThresholds thresholds)
    : thresholds_(thresholds) {}

ConfigState& PtpClockStateMachine::Config(absl::string_view config) {
  auto it = configs_.find(std::string(config));
  if (it != configs_.end()) return it->second;
  return configs_[std::string(config)];
}

ServoClock& PtpClockStateMachine::FindOrAddClock(absl::string_view process,
                                                 absl::string_view config,
                                                 absl::string_view iface) {
  // Most lines come from the servo the previous line came from.
  if (cached_clock_ != nullptr && cached_clock_->iface == iface &&
      cached_clock_->config == config && cached_clock_->process == process) {
    return *cached_clock_;
  }
  std::string key = ClockKey(process, config, iface);
  auto it = clock_index_.find(key);
  if (it != clock_index_.end()) {
    cached_clock_ = &clocks_[it->second];
    return *cached_clock_;
  }
  ServoClock& clock = clocks_.emplace_back();
  clock.id = static_cast<uint32_t>(clocks_.size() - 1);
  clock.process = std::string(process);
  clock.config = std::string(config);
  clock.iface = std::string(iface);
  clock.display_iface = clock.iface;
  clock.os_clock = iface == kRealtime;
  clock_index_.emplace(std::move(key), clock.id);
  cached_clock_ = &clock;
  ++epoch_;
  UpdateDisplayIface(config);
  return clock;
}

void PtpClockStateMachine::Apply(const PtpLogLine& line, absl::Time now,
                                 std::vector<StateChange>* changes) {
  if (now < now_) now = now_;
  if (now >= next_deadline_) AdvanceTo(now, changes);
  now_ = now;
  last_clock_ = nullptr;
  switch (line.kind) {
    case LineKind::kOffset:
      ApplyOffset(line, now, changes);
      break;
    case LineKind::kSummary:
      ApplySummary(line, now, changes);
      break;
    case LineKind::kPortEvent:
      ApplyPortEvent(line, now, changes);
      break;
    case LineKind::kProcessStatus:
      ApplyProcessStatus(line, now, changes);
      break;
    case LineKind::kClockClass:
      ApplyClockClass(line, now, changes);
      break;
    default:
      break;
  }
}

void PtpClockStateMachine::AdvanceTo(absl::Time now,
                                     std::vector<StateChange>* changes) {
  while (next_deadline_ <= now) {
    absl::Time deadline = next_deadline_;
    std::string why;
    for (ServoClock& clock : clocks_) {
      if (clock.holdover_deadline > deadline) continue;
      clock.holdover_deadline = absl::InfiniteFuture();
      SetClockState(clock, SyncState::kFreerun);
      absl::StrAppend(&why, why.empty() ? "" : ", ", "holdover of ",
                      Describe(clock), " timed out");
    }
    RecomputeDeadline();
    if (deadline > now_) now_ = deadline;
    Publish(deadline, why, changes);
  }
  if (now > now_) now_ = now;
}

void PtpClockStateMachine::RecomputeDeadline() {
  next_deadline_ = absl::InfiniteFuture();
  for (const ServoClock& clock : clocks_)
    next_deadline_ = std::min(next_deadline_, clock.holdover_deadline);
}

void PtpClockStateMachine::SetClockState(ServoClock& clock, SyncState state) {
  if (clock.known && clock.state == state) return;
  clock.known = true;
  clock.state = state;
  ++epoch_;
}

void PtpClockStateMachine::UpdateServo(ServoClock& clock, SyncState reading,
                                       int64_t offset_ns, absl::Time now,
                                       const std::string& why,
                                       std::vector<StateChange>* changes) {
  clock.has_offset = true;
  clock.offset_ns = offset_ns;
  SyncState next = reading;
  if (clock.holdover_deadline != absl::InfiniteFuture()) {
    // A lost slave port's holdover: only a LOCKED reading ends it early.
    if (reading == SyncState::kLocked) {
      clock.holdover_deadline = absl::InfiniteFuture();
      RecomputeDeadline();
    } else {
      next = SyncState::kHoldover;
    }
  }
  if (clock.known && clock.state == next) return;
  SetClockState(clock, next);
  Publish(now, why, changes);
}

void PtpClockStateMachine::ApplyOffset(const PtpLogLine& line, absl::Time now,
                                       std::vector<StateChange>* changes) {
  if (!line.offset_ns.has_value()) return;
  // phc2sys syncing one PHC to another says nothing about the node's clocks.
  if (line.process == "phc2sys" && line.iface != kRealtime) return;
  ServoClock& clock = FindOrAddClock(line.process, line.config, line.iface);
  last_clock_ = &clock;
  if (line.timestamp_s > clock.last_line_ts)
    clock.last_line_ts = line.timestamp_s;
  int64_t offset = *line.offset_ns;
  SyncState reading = SyncState::kFreerun;
  if (line.holdover) {
    reading = SyncState::kHoldover;
  } else if (IsLockedServo(line.servo) && InRange(offset)) {
    reading = SyncState::kLocked;
  }
  if (clock.known && clock.state == reading &&
      clock.holdover_deadline == absl::InfiniteFuture()) {
    clock.has_offset = true;  // the hot path: nothing but the offset changed
    clock.offset_ns = offset;
    return;
  }
  UpdateServo(clock, reading, offset, now,
              absl::StrCat("offset ", offset, " ", line.servo,
                           line.holdover ? " holdover" : "", " (",
                           Describe(clock), ")"),
              changes);
}

void PtpClockStateMachine::ApplySummary(const PtpLogLine& line, absl::Time now,
                                        std::vector<StateChange>* changes) {
  if (!line.offset_ns.has_value()) return;
  if (line.process == "phc2sys" && line.iface != kRealtime) return;
  ServoClock& clock = FindOrAddClock(line.process, line.config, line.iface);
  last_clock_ = &clock;
  if (line.timestamp_s > clock.last_line_ts)
    clock.last_line_ts = line.timestamp_s;
  // A summary has no servo state: its rms in range counts as LOCKED, for
  // ptp4l only while a port of the config is SLAVE (or no port is known).
  int64_t rms = *line.offset_ns;
  bool slave = true;
  if (line.process == "ptp4l") {
    auto it = configs_.find(line.config);
    if (it != configs_.end() && !it->second.ports.empty()) {
      slave = false;
      for (const auto& [number, port] : it->second.ports)
        slave = slave || port.role == PortRole::kSlave;
    }
  }
  SyncState reading =
      slave && InRange(rms) ? SyncState::kLocked : SyncState::kFreerun;
  if (clock.known && clock.state == reading &&
      clock.holdover_deadline == absl::InfiniteFuture()) {
    clock.has_offset = true;
    clock.offset_ns = rms;
    return;
  }
  UpdateServo(clock, reading, rms, now,
              absl::StrCat("rms ", rms, slave ? "" : " (no SLAVE port)", " (",
                           Describe(clock), ")"),
              changes);
}

void PtpClockStateMachine::ApplyPortEvent(const PtpLogLine& line,
                                          absl::Time now,
                                          std::vector<StateChange>* changes) {
  if (line.port <= 0) return;  // the management port
  ServoClock* servo = nullptr;
  if (auto it =
          clock_index_.find(ClockKey(line.process, line.config, "master"));
      it != clock_index_.end()) {
    servo = &clocks_[it->second];
  }
  if (servo != nullptr && line.timestamp_s > 0 &&
      line.timestamp_s < servo->last_line_ts) {
    return;  // older than what the offsets already said: a stale replay
  }
  if (servo != nullptr && line.timestamp_s > servo->last_line_ts)
    servo->last_line_ts = line.timestamp_s;

  ConfigState& config = Config(line.config);
  PortState& port = config.ports[line.port];
  PortRole previous = port.role;
  PortRole role = PortRoleFromName(PortRoleForTransition(line));
  bool was_slave = line.from_state.empty() ? previous == PortRole::kSlave
                                           : line.from_state == "SLAVE";
  if (port.role != role || (!line.iface.empty() && port.name != line.iface)) {
    port.role = role;
    if (!line.iface.empty()) port.name = line.iface;
    ++epoch_;
    UpdateDisplayIface(line.config);
  }
  if (!was_slave || !LosesSlave(line, role)) return;

  ServoClock& clock = servo != nullptr
                          ? *servo
                          : FindOrAddClock(line.process, line.config, "master");
  if (line.timestamp_s > clock.last_line_ts)
    clock.last_line_ts = line.timestamp_s;
  if (clock.holdover_deadline == absl::InfiniteFuture()) {
    clock.holdover_deadline = now + thresholds_.holdover_timeout;
    RecomputeDeadline();
  }
  if (!clock.known || clock.state != SyncState::kHoldover) {
    SetClockState(clock, SyncState::kHoldover);
    std::string from = line.from_state.empty() ? "SLAVE" : line.from_state;
    std::string to = line.to_state.empty() ? line.event : line.to_state;
    Publish(now,
            absl::StrCat("port ", line.port, " ", from, " to ", to, " (",
                         Describe(clock), ")"),
            changes);
  }
  AdvanceTo(now, changes);  // a zero timeout ends it at once
}

void PtpClockStateMachine::ApplyProcessStatus(
    const PtpLogLine& line, absl::Time now, std::vector<StateChange>* changes) {
  if (!line.status.has_value() || line.process.empty()) return;
  int status = *line.status != 0 ? 1 : 0;
  ProcessState& process = Config(line.config).processes[line.process];
  if (process.status != status) {
    if (process.status == 0 && status == 1) ++process.restarts;
    process.status = status;
    ++epoch_;
  }
  if (status == 1) return;  // up: its next readings tell the state

  bool any = false;
  bool changed = false;
  for (ServoClock& clock : clocks_) {
    if (clock.process != line.process || clock.config != line.config) continue;
    any = true;
    if (clock.holdover_deadline != absl::InfiniteFuture()) {
      clock.holdover_deadline = absl::InfiniteFuture();
      RecomputeDeadline();
    }
    if (!clock.known || clock.state != SyncState::kFreerun) {
      SetClockState(clock, SyncState::kFreerun);
      changed = true;
    }
  }
  if (!any && (line.process == "ptp4l" || line.process == "phc2sys")) {
    ServoClock& clock =
        FindOrAddClock(line.process, line.config,
                       line.process == "ptp4l" ? "master" : kRealtime);
    SetClockState(clock, SyncState::kFreerun);
    changed = true;
  }
  if (changed) {
    Publish(now, absl::StrCat(line.process, " ", line.config, " is down"),
            changes);
  }
}

void PtpClockStateMachine::ApplyClockClass(const PtpLogLine& line,
                                           absl::Time now,
                                           std::vector<StateChange>* changes) {
  if (!line.clock_class.has_value() || *line.clock_class <= 0) return;
  int clock_class = *line.clock_class;
  ConfigState& config = Config(line.config);
  if (config.clock_class != clock_class) {
    config.clock_class = clock_class;
    ++epoch_;
  }
  PublishedState& published =
      published_[static_cast<int>(PtpResource::kClockClass)];
  if (published.known && published.clock_class == clock_class) return;
  published.known = true;
  published.clock_class = clock_class;
  published.time = now;
  changes->push_back(
      {PtpResource::kClockClass, published,
       absl::StrCat("clock class ", clock_class, " (", line.config, ")")});
}

void PtpClockStateMachine::UpdateDisplayIface(absl::string_view config) {
  auto cit = configs_.find(std::string(config));
  if (cit == configs_.end()) return;
  const std::string* name = nullptr;
  for (const auto& [number, port] : cit->second.ports) {
    if (port.role == PortRole::kSlave && !port.name.empty()) {
      name = &port.name;
      break;
    }
  }
  if (name == nullptr) return;
  for (ServoClock& clock : clocks_) {
    if (clock.config != config || clock.iface != "master" ||
        clock.display_iface == *name) {
      continue;
    }
    clock.display_iface = *name;
    ++epoch_;
  }
}

bool PtpClockStateMachine::CurrentOffset(PtpResource resource,
                                         int64_t* offset_ns) const {
  bool os = resource == PtpResource::kOsClockSyncState;
  if (!os && resource != PtpResource::kLockState) return false;
  const ServoClock* best = nullptr;
  for (const ServoClock& clock : clocks_) {
    if (!clock.known || clock.os_clock != os || !clock.has_offset) continue;
    if (best == nullptr || Rank(clock.state) > Rank(best->state)) best = &clock;
  }
  if (best == nullptr) return false;
  *offset_ns = best->offset_ns;
  return true;
}

void PtpClockStateMachine::Publish(absl::Time now, const std::string& why,
                                   std::vector<StateChange>* changes) {
  // The worst servo of each kind, and the one that makes it so (its offset
  // goes with the event).
  const ServoClock* ptp = nullptr;
  const ServoClock* os = nullptr;
  for (const ServoClock& clock : clocks_) {
    if (!clock.known) continue;
    const ServoClock*& worst = clock.os_clock ? os : ptp;
    if (worst == nullptr || Rank(clock.state) > Rank(worst->state) ||
        (Rank(clock.state) == Rank(worst->state) && !worst->has_offset &&
         clock.has_offset)) {
      worst = &clock;
    }
  }
  auto update = [&](PtpResource resource, const ServoClock* source,
                    SyncState state) {
    PublishedState& p = published_[static_cast<int>(resource)];
    if (p.known && p.state == state) return;
    p.known = true;
    p.state = state;
    p.time = now;
    p.has_offset = false;
    p.offset_ns = 0;
    if (source != nullptr && source->has_offset &&
        resource != PtpResource::kSyncState) {
      p.has_offset = true;
      p.offset_ns = source->offset_ns;
    }
    changes->push_back({resource, p, why});
  };
  if (ptp != nullptr) update(PtpResource::kLockState, ptp, ptp->state);
  if (os != nullptr) {
    // O-RAN Table 37: the OS clock is no better than the PTP clock it
    // follows.
    SyncState state =
        ptp != nullptr ? WorstOf(os->state, ptp->state) : os->state;
    update(PtpResource::kOsClockSyncState, os, state);
  }
  if (ptp != nullptr || os != nullptr) {
    SyncState state = ptp != nullptr ? ptp->state : os->state;
    if (os != nullptr) state = WorstOf(state, os->state);
    update(PtpResource::kSyncState, nullptr, state);
  }
}

nlohmann::json PtpClockStateMachine::Snapshot() const {
  nlohmann::json clocks = nlohmann::json::array();
  for (const ServoClock& c : clocks_) {
    clocks.push_back({{"process", c.process},
                      {"config", c.config},
                      {"iface", c.iface},
                      {"display_iface", c.display_iface},
                      {"known", c.known},
                      {"state", static_cast<int>(c.state)},
                      {"has_offset", c.has_offset},
                      {"offset_ns", c.offset_ns},
                      {"holdover_deadline", TimeToJson(c.holdover_deadline)},
                      {"last_line_ts", c.last_line_ts}});
  }
  nlohmann::json configs = nlohmann::json::object();
  for (const auto& [name, config] : configs_) {
    nlohmann::json ports = nlohmann::json::array();
    for (const auto& [number, port] : config.ports) {
      ports.push_back({{"port", number},
                       {"role", static_cast<int>(port.role)},
                       {"name", port.name}});
    }
    nlohmann::json processes = nlohmann::json::object();
    for (const auto& [process, state] : config.processes) {
      processes[process] = {{"status", state.status},
                            {"restarts", state.restarts}};
    }
    configs[name] = {{"ports", ports},
                     {"processes", processes},
                     {"clock_class", config.clock_class}};
  }
  nlohmann::json published = nlohmann::json::array();
  for (const PublishedState& p : published_) {
    published.push_back({{"known", p.known},
                         {"state", static_cast<int>(p.state)},
                         {"clock_class", p.clock_class},
                         {"has_offset", p.has_offset},
                         {"offset_ns", p.offset_ns},
                         {"time", TimeToJson(p.time)}});
  }
  return {{"version", 1},
          {"clocks", clocks},
          {"configs", configs},
          {"published", published},
          {"now", TimeToJson(now_)}};
}

absl::Status PtpClockStateMachine::Restore(const nlohmann::json& snapshot) {
  auto state_of = [](int v) {
    if (v < 0 || v > 2) throw std::out_of_range("bad state");
    return static_cast<SyncState>(v);
  };
  try {
    if (snapshot.at("version").get<int>() != 1)
      return absl::InvalidArgumentError("unknown state version");
    PtpClockStateMachine m(thresholds_);
    for (const nlohmann::json& j : snapshot.at("clocks")) {
      ServoClock& c = m.FindOrAddClock(j.at("process").get<std::string>(),
                                       j.at("config").get<std::string>(),
                                       j.at("iface").get<std::string>());
      c.display_iface = j.at("display_iface").get<std::string>();
      c.known = j.at("known").get<bool>();
      c.state = state_of(j.at("state").get<int>());
      c.has_offset = j.at("has_offset").get<bool>();
      c.offset_ns = j.at("offset_ns").get<int64_t>();
      c.holdover_deadline =
          TimeFromJson(j.at("holdover_deadline").get<int64_t>());
      c.last_line_ts = j.at("last_line_ts").get<double>();
    }
    for (const auto& [name, j] : snapshot.at("configs").items()) {
      ConfigState& config = m.configs_[name];
      config.clock_class = j.at("clock_class").get<int>();
      for (const nlohmann::json& p : j.at("ports")) {
        int role = p.at("role").get<int>();
        if (role < 0 || role > 5) throw std::out_of_range("bad role");
        PortState& port = config.ports[p.at("port").get<int>()];
        port.role = static_cast<PortRole>(role);
        port.name = p.at("name").get<std::string>();
      }
      for (const auto& [process, s] : j.at("processes").items()) {
        ProcessState& ps = config.processes[process];
        ps.status = s.at("status").get<int>();
        ps.restarts = s.at("restarts").get<uint64_t>();
      }
    }
    const nlohmann::json& published = snapshot.at("published");
    if (published.size() != kPtpResourceCount)
      return absl::InvalidArgumentError("bad published states");
    for (int i = 0; i < kPtpResourceCount; ++i) {
      const nlohmann::json& j = published[i];
      PublishedState& p = m.published_[i];
      p.known = j.at("known").get<bool>();
      p.state = state_of(j.at("state").get<int>());
      p.clock_class = j.at("clock_class").get<int>();
      p.has_offset = j.at("has_offset").get<bool>();
      p.offset_ns = j.at("offset_ns").get<int64_t>();
      p.time = TimeFromJson(j.at("time").get<int64_t>());
    }
    m.now_ = TimeFromJson(snapshot.at("now").get<int64_t>());
    m.RecomputeDeadline();
    clocks_ = std::move(m.clocks_);
    clock_index_ = std::move(m.clock_index_);
    configs_ = std::move(m.configs_);
    for (int i = 0; i < kPtpResourceCount; ++i) published_[i] = m.published_[i];
    now_ = m.now_;
    next_deadline_ = m.next_deadline_;
    last_clock_ = nullptr;
    cached_clock_ = nullptr;
    ++epoch_;
    return absl::OkStatus();
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("bad state: ", e.what()));
  }
}

}  // namespace loophost::loops::ptp
