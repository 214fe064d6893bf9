// Implementation of ptp_metrics.h.
#include "loops/ptp/ptp_metrics.h"

#include <exception>

#include "absl/strings/str_cat.h"
#include "common/logging.h"

namespace loophost::loops::ptp {
namespace {

using prometheus::BuildCounter;
using prometheus::BuildGauge;

constexpr const char* kKindNames[] = {
    "offset",      "summary", "port_event", "process_status",
    "clock_class", "control", "other",      "malformed"};

}  // namespace

absl::StatusOr<std::unique_ptr<PtpMetrics>> PtpMetrics::Create(
    prometheus::Registry& registry, std::string node,
    const PtpThresholds& thresholds, std::string profile) {
  try {
    std::unique_ptr<PtpMetrics> m(
        new PtpMetrics(registry, std::move(node), std::move(profile)));
    auto threshold = [&](const char* name, double value) {
      m->threshold_
          .Add({{"threshold", name},
                {"node", m->node_},
                {"profile", m->profile_}})
          .Set(value);
    };
    threshold("MaxOffsetThreshold",
              static_cast<double>(thresholds.max_offset_ns));
    threshold("MinOffsetThreshold",
              static_cast<double>(thresholds.min_offset_ns));
    threshold("HoldOverTimeout",
              absl::ToDoubleSeconds(thresholds.holdover_timeout));
    for (size_t i = 0; i < m->lines_by_kind_.size(); ++i)
      m->lines_by_kind_[i] = &m->lines_.Add({{"kind", kKindNames[i]}});
    for (PtpResource r : kAllPtpResources) {
      static constexpr const char* kNames[] = {
          "lock-state", "os-clock-sync-state", "clock-class", "sync-state"};
      m->events_by_resource_[static_cast<int>(r)] =
          &m->events_.Add({{"resource", kNames[static_cast<int>(r)]}});
    }
    return m;
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("ptp metrics: ", e.what()));
  }
}

PtpMetrics::PtpMetrics(prometheus::Registry& registry, std::string node,
                       std::string profile)
    : node_(std::move(node)),
      profile_(std::move(profile)),
      offset_(BuildGauge()
                  .Name("openshift_ptp_offset_ns")
                  .Help("Offset from the time source in nanoseconds, as the "
                        "latest log line reported it (rms on summary lines).")
                  .Register(registry)),
      max_offset_(
          BuildGauge()
              .Name("openshift_ptp_max_offset_ns")
              .Help("Largest offset from the time source in the latest "
                    "summary interval in nanoseconds (the offset itself "
                    "on per-sample lines).")
              .Register(registry)),
      freq_(BuildGauge()
                .Name("openshift_ptp_frequency_adjustment_ns")
                .Help("Frequency adjustment the servo applied, as logged "
                      "(parts per billion).")
                .Register(registry)),
      delay_(BuildGauge()
                 .Name("openshift_ptp_delay_ns")
                 .Help("Mean path delay to the time source in nanoseconds (0 "
                       "when the line has none).")
                 .Register(registry)),
      clock_state_(BuildGauge()
                       .Name("openshift_ptp_clock_state")
                       .Help("0 = FREERUN, 1 = LOCKED, 2 = HOLDOVER")
                       .Register(registry)),
      clock_class_(BuildGauge()
                       .Name("openshift_ptp_clock_class")
                       .Help("6 = Locked, 7 = PRC unlocked in-spec, 52/187 = "
                             "PRC unlocked out-of-spec, 135 = T-BC holdover "
                             "in-spec, 165 = T-BC holdover out-of-spec, 248 = "
                             "Default, 255 = Slave Only Clock")
                       .Register(registry)),
      interface_role_(BuildGauge()
                          .Name("openshift_ptp_interface_role")
                          .Help("0 = PASSIVE, 1 = SLAVE, 2 = MASTER, 3 = "
                                "FAULTY, 4 = UNKNOWN, 5 = LISTENING")
                          .Register(registry)),
      process_status_(BuildGauge()
                          .Name("openshift_ptp_process_status")
                          .Help("0 = DOWN, 1 = UP")
                          .Register(registry)),
      restart_count_(BuildCounter()
                         .Name("openshift_ptp_process_restart_count")
                         .Help("Times the process was reported up again after "
                               "it was down.")
                         .Register(registry)),
      threshold_(BuildGauge()
                     .Name("openshift_ptp_threshold")
                     .Help("Thresholds in force: MaxOffsetThreshold and "
                           "MinOffsetThreshold in nanoseconds, "
                           "HoldOverTimeout in seconds.")
                     .Register(registry)),
      lines_(BuildCounter()
                 .Name("loop_ptp_lines_total")
                 .Help("Log lines read, by what the parser made of them.")
                 .Register(registry)),
      skipped_(BuildCounter()
                   .Name("loop_ptp_skipped_lines_total")
                   .Help("Lines the monitor could not use (kinds other and "
                         "malformed), by reason.")
                   .Register(registry)),
      events_(BuildCounter()
                  .Name("loop_ptp_events_total")
                  .Help("Events published, by resource.")
                  .Register(registry)),
      held_events_(BuildGauge()
                       .Name("loop_ptp_held_events")
                       .Help("Events held until the host acknowledges them.")
                       .Register(registry)
                       .Add({})),
      dropped_events_(BuildCounter()
                          .Name("loop_ptp_dropped_events_total")
                          .Help("Held events dropped unacknowledged because "
                                "the held-event log was full.")
                          .Register(registry)
                          .Add({})) {}

void PtpMetrics::Update(const PtpLogLine& line,
                        const PtpClockStateMachine& machine) {
  size_t kind = static_cast<size_t>(line.kind);
  if (kind < pending_lines_.size()) ++pending_lines_[kind];
  try {
    if (line.kind == LineKind::kOther || line.kind == LineKind::kMalformed) {
      const std::string& reason =
          line.reason.empty() ? std::string("unknown") : line.reason;
      auto it = skipped_by_reason_.find(reason);
      if (it == skipped_by_reason_.end()) {
        it = skipped_by_reason_
                 .emplace(reason, &skipped_.Add({{"reason", reason}}))
                 .first;
      }
      it->second->Increment();
    }
    const ServoClock* clock = machine.last_clock();
    if (clock != nullptr && line.offset_ns.has_value()) {
      // phc2sys summaries say "master"; cloud-event-proxy labels them phc.
      const std::string& from =
          (line.process == "phc2sys" && line.from == "master") ||
                  line.from.empty()
              ? (line.process == "phc2sys" ? std::string("phc")
                                           : std::string("master"))
              : line.from;
      ServoSeries& s = Series(*clock, from);
      double offset = static_cast<double>(*line.offset_ns);
      s.offset_value = offset;
      s.max_offset_value = line.max_offset_ns.has_value()
                               ? static_cast<double>(*line.max_offset_ns)
                               : offset;
      s.freq_value = static_cast<double>(line.freq_adj.value_or(0));
      s.delay_value = static_cast<double>(line.delay_ns.value_or(0));
      if (!s.dirty) {
        s.dirty = true;
        dirty_servos_.push_back(clock->id);
      }
    }
  } catch (const std::exception& e) {
    LogWarn("ptp metrics", {{"error", e.what()}});
  }
  if (machine.epoch() != synced_epoch_) {
    Flush();
    Sync(machine);
  }
}

void PtpMetrics::Flush() {
  for (size_t i = 0; i < pending_lines_.size(); ++i) {
    if (pending_lines_[i] == 0) continue;
    lines_by_kind_[i]->Increment(static_cast<double>(pending_lines_[i]));
    pending_lines_[i] = 0;
  }
  for (uint32_t id : dirty_servos_) {
    ServoSeries& s = servos_[id];
    s.dirty = false;
    if (s.offset == nullptr) continue;  // dropped by a rename meanwhile
    s.offset->Set(s.offset_value);
    s.max_offset->Set(s.max_offset_value);
    s.freq->Set(s.freq_value);
    s.delay->Set(s.delay_value);
  }
  dirty_servos_.clear();
}

PtpMetrics::ServoSeries& PtpMetrics::Series(const ServoClock& clock,
                                            const std::string& from) {
  if (clock.id >= servos_.size()) servos_.resize(clock.id + 1);
  ServoSeries& s = servos_[clock.id];
  if (s.offset != nullptr && s.iface == clock.display_iface && s.from == from)
    return s;
  if (s.state != nullptr && s.iface != clock.display_iface) {
    clock_state_.Remove(s.state);
    s.state = nullptr;
  }
  DropSeries(s);
  s.iface = clock.display_iface;
  s.from = from;
  prometheus::Labels labels{{"from", from},
                            {"process", clock.process},
                            {"node", node_},
                            {"iface", clock.display_iface}};
  s.offset = &offset_.Add(labels);
  s.max_offset = &max_offset_.Add(labels);
  s.freq = &freq_.Add(labels);
  s.delay = &delay_.Add(labels);
  return s;
}

void PtpMetrics::DropSeries(ServoSeries& s) {
  if (s.offset != nullptr) offset_.Remove(s.offset);
  if (s.max_offset != nullptr) max_offset_.Remove(s.max_offset);
  if (s.freq != nullptr) freq_.Remove(s.freq);
  if (s.delay != nullptr) delay_.Remove(s.delay);
  s.offset = s.max_offset = s.freq = s.delay = nullptr;
}

std::string PtpMetrics::PortIface(const std::string& config, int port,
                                  const PortState& state) const {
  if (!state.name.empty()) return state.name;
  if (config == profile_ || config.empty()) return absl::StrCat("port", port);
  return absl::StrCat(config, "/port", port);
}

void PtpMetrics::Sync(const PtpClockStateMachine& machine) {
  synced_epoch_ = machine.epoch();
  try {
    for (const ServoClock& clock : machine.clocks()) {
      if (!clock.known) continue;
      if (clock.id >= servos_.size()) servos_.resize(clock.id + 1);
      ServoSeries& s = servos_[clock.id];
      if (s.iface != clock.display_iface) {
        // Renamed (its config's slave port got a name): new series.
        if (s.state != nullptr) clock_state_.Remove(s.state);
        s.state = nullptr;
        DropSeries(s);
        s.iface = clock.display_iface;
      }
      if (s.state == nullptr) {
        s.state = &clock_state_.Add({{"process", clock.process},
                                     {"node", node_},
                                     {"iface", clock.display_iface}});
      }
      s.state->Set(static_cast<double>(clock.state));
    }
    for (const auto& [config, state] : machine.configs()) {
      for (const auto& [number, port] : state.ports) {
        std::string iface = PortIface(config, number, port);
        auto& [label, gauge] = roles_[{config, number}];
        if (gauge != nullptr && label != iface) {
          interface_role_.Remove(gauge);
          gauge = nullptr;
        }
        if (gauge == nullptr) {
          label = iface;
          gauge = &interface_role_.Add(
              {{"process", "ptp4l"}, {"node", node_}, {"iface", iface}});
        }
        gauge->Set(static_cast<double>(port.role));
      }
      for (const auto& [process, ps] : state.processes) {
        if (ps.status < 0 || process.empty() || config.empty()) continue;
        prometheus::Labels labels{
            {"process", process}, {"node", node_}, {"config", config}};
        prometheus::Gauge*& status = statuses_[{process, config}];
        if (status == nullptr) status = &process_status_.Add(labels);
        status->Set(ps.status);
        auto& [counter, seen] = restarts_[{process, config}];
        if (counter == nullptr) counter = &restart_count_.Add(labels);
        if (ps.restarts > seen) {
          counter->Increment(static_cast<double>(ps.restarts - seen));
          seen = ps.restarts;
        }
      }
      if (state.clock_class > 0 && !config.empty()) {
        prometheus::Gauge*& gauge = classes_[config];
        if (gauge == nullptr) {
          gauge = &clock_class_.Add(
              {{"process", "ptp4l"}, {"config", config}, {"node", node_}});
        }
        gauge->Set(state.clock_class);
      }
    }
  } catch (const std::exception& e) {
    LogWarn("ptp metrics", {{"error", e.what()}});
  }
}

void PtpMetrics::CountEvent(PtpResource resource) {
  events_by_resource_[static_cast<int>(resource)]->Increment();
}

void PtpMetrics::SetHeldEvents(uint64_t held) {
  held_events_.Set(static_cast<double>(held));
}

void PtpMetrics::CountDroppedEvents(uint64_t dropped) {
  dropped_events_.Increment(static_cast<double>(dropped));
}

}  // namespace loophost::loops::ptp
