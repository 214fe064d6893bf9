// loophost-bench: measures a plugin launched through loophost's own launch
// path and prints JSON lines in the shapes of the go-plugin peer's host
// (/work/shared/peers/goplugin/src/gppeer/host/main.go): machine, launch, rpc,
// rss, kill, restart, baseline_uds, end. With --compare it instead prints the
// ratio table of two such runs (ours / go-plugin). See bench/README.md.
#include <google/protobuf/stubs/common.h>
#include <grpc/grpc.h>
#include <grpcpp/grpcpp.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/internal/sysinfo.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "bench/compare.h"
#include "bench/plugin_harness.h"
#include "bench/proc_info.h"
#include "bench/stats.h"
#include "bench/uds_baseline.h"
#include "common/logging.h"

#ifndef LH_BENCH_BUILD_TYPE
#define LH_BENCH_BUILD_TYPE "unknown"
#endif

namespace loophost::bench {
namespace {

using Json = nlohmann::json;

struct Flags {
  std::string plugin;
  int launches = 20;
  int warm_launches = 2;
  int calls = 20000;
  int warm_calls = 1000;
  int payload = 16;
  int restarts = 10;
  int rpc_deadline_ms = 5000;
  std::vector<std::string> phases = {"launch", "rpc", "restart", "baseline"};
  bool host_path = true;
  bool verbose = false;
  bool close_channel_on_stop = false;
  bool no_deadlock_detection = false;
  bool grpc_init_once = false;
  bool connect_fd = false;
  bool warm_cpu_frequency = false;
  bool first_call_health = false;
  int spin_us = 0;
  std::vector<std::string> channel_args;
  std::vector<std::string> plugin_env;
  std::string compare;
  std::string peer;
};

void Emit(const char* phase, Json fields) {
  fields["phase"] = phase;
  std::cout << fields.dump() << std::endl;
}

[[noreturn]] void Die(const std::string& what, const absl::Status& status) {
  Emit("error", {{"what", what}, {"error", status.ToString()}});
  std::exit(1);
}

std::vector<std::pair<std::string, std::string>> KeyValues(
    const std::vector<std::string>& items) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const std::string& item : items) {
    std::pair<std::string, std::string> kv =
        absl::StrSplit(item, absl::MaxSplits('=', 1));
    out.push_back(std::move(kv));
  }
  return out;
}

bool Wanted(const Flags& flags, const std::string& phase) {
  return std::find(flags.phases.begin(), flags.phases.end(), phase) !=
         flags.phases.end();
}

void PhaseMachine(const Flags& flags, const HarnessOptions& options) {
  std::error_code ec;
  const auto plugin_bytes = std::filesystem::file_size(flags.plugin, ec);
  Emit("machine",
       {{"nproc", ::sysconf(_SC_NPROCESSORS_ONLN)},
        {"cpu_model", CpuModel()},
        {"mem_total_kb", MemTotalKb()},
        {"kernel", KernelRelease()},
        {"loadavg_start", LoadAvg()},
        {"grpc_version", grpc::Version()},
        {"protobuf_version",
         google::protobuf::internal::VersionString(GOOGLE_PROTOBUF_VERSION)},
        {"compiler", __VERSION__},
        {"build_type", LH_BENCH_BUILD_TYPE},
        {"plugin", flags.plugin},
        {"plugin_bytes", ec ? 0 : plugin_bytes},
        {"rpc_deadline_ms", flags.rpc_deadline_ms},
        {"channel_args", flags.channel_args},
        {"plugin_env_extra", flags.plugin_env},
        {"close_channel_on_stop", flags.close_channel_on_stop},
        {"no_deadlock_detection", flags.no_deadlock_detection},
        {"grpc_init_once", flags.grpc_init_once},
        {"connect_fd", flags.connect_fd},
        {"warm_cpu_frequency", flags.warm_cpu_frequency},
        {"first_call_health", flags.first_call_health},
        {"spin_us", flags.spin_us},
        {"socket_dir", options.socket_dir}});
}

// N launches after the warm-ups, each stopped the host's way.
void PhaseLaunch(PluginHarness& harness, const Flags& flags, bool host_path) {
  std::vector<double> spawned, handshake, channel, connected, first_call, kill;
  std::vector<double> plugin_cpu;
  std::vector<double> rss, pss;
  int unclean = 0;
  std::string unclean_example;
  int mapped_objects = 0;
  for (int i = 0; i < flags.warm_launches + flags.launches; ++i) {
    LaunchTimes times;
    auto plugin = harness.Launch(&times, host_path);
    if (!plugin.ok()) Die("launch", plugin.status());
    const Json memory = ProcMemory((*plugin)->pid());
    if (i == 0) mapped_objects = MappedSharedObjects((*plugin)->pid());
    const BenchClock::time_point t0 = BenchClock::now();
    const std::string how = (*plugin)->ShutdownAndReap(absl::Seconds(2));
    const double kill_ms = MillisSince(t0);
    if (i < flags.warm_launches) continue;
    if (how != "exited with code 0") {
      ++unclean;
      unclean_example = how;
    }
    spawned.push_back(times.spawned_ms);
    handshake.push_back(times.handshake_ms);
    channel.push_back(times.channel_ms);
    plugin_cpu.push_back(times.plugin_cpu_to_handshake_ms);
    if (host_path) connected.push_back(times.connected_ms);
    first_call.push_back(times.first_call_ms);
    kill.push_back(kill_ms);
    rss.push_back(memory.value("VmRSS", 0));
    pss.push_back(memory.value("Pss", 0));
  }
  Json line = {
      {"variant", host_path ? "host_path" : "plain"},
      {"what", host_path ? "exec -> handshake -> channel -> WaitForConnected "
                           "-> Health/Check -> Plugin/Describe -> first Echo"
                         : "exec -> handshake -> channel -> first Echo "
                           "(wait_for_ready)"},
      {"launches", flags.launches},
      {"warm_launches_discarded", flags.warm_launches},
      {"exec_to_spawned_ms", Summarize(spawned)},
      {"exec_to_handshake_ms", Summarize(handshake)},
      {"exec_to_channel_ms", Summarize(channel)},
      {"first_call_ms", Summarize(first_call)},
      {"kill_ms", Summarize(kill)},
      {"plugin_cpu_to_handshake_ms", Summarize(plugin_cpu)},
      {"kill_how", "GRPCController/Shutdown, wait for exit (pidfd), reap"},
      {"unclean_stops", unclean},
      {"plugin_vmrss_kb_after_launch_median", Median(Sorted(rss))},
      {"plugin_pss_kb_after_launch_median", Median(Sorted(pss))},
      {"plugin_mapped_shared_objects", mapped_objects},
  };
  if (host_path) line["exec_to_ready_ms"] = Summarize(connected);
  if (unclean > 0) line["unclean_example"] = unclean_example;
  Emit("launch", std::move(line));
}

void PhaseRpc(PluginHarness& harness, const Flags& flags) {
  LaunchTimes times;
  auto plugin = harness.Launch(&times);
  if (!plugin.ok()) Die("launch rpc", plugin.status());
  const int pid = (*plugin)->pid();
  const Json plugin_idle = ProcMemory(pid);
  const Json host_idle = ProcMemory(0);

  std::string payload(static_cast<size_t>(flags.payload), 'a');
  for (size_t i = 0; i < payload.size(); ++i) {
    payload[i] = static_cast<char>('a' + i % 26);
  }
  for (int i = 0; i < flags.warm_calls; ++i) {
    if (absl::Status s = (*plugin)->Echo(payload); !s.ok()) {
      Die("warm call", s);
    }
  }
  std::vector<double> latency_us;
  latency_us.reserve(static_cast<size_t>(flags.calls));
  const int64_t plugin_cpu0 = ProcCpuNs(pid);
  const int64_t host_cpu0 = ProcCpuNs(0);
  const BenchClock::time_point all = BenchClock::now();
  for (int i = 0; i < flags.calls; ++i) {
    const BenchClock::time_point t0 = BenchClock::now();
    absl::Status s = (*plugin)->Echo(payload);
    latency_us.push_back(MillisSince(t0) * 1000);
    if (!s.ok()) Die("call", s);
  }
  const double total_s = MillisSince(all) / 1000;
  const double plugin_cpu_us =
      static_cast<double>(ProcCpuNs(pid) - plugin_cpu0) / 1000 / flags.calls;
  const double host_cpu_us =
      static_cast<double>(ProcCpuNs(0) - host_cpu0) / 1000 / flags.calls;
  const Json plugin_busy = ProcMemory(pid);
  const Json host_busy = ProcMemory(0);

  Emit("rpc", {{"variant", "plain"},
               {"rpc", "Echo (unary, sequential, sync stub, one thread)"},
               {"payload_bytes", flags.payload},
               {"calls", flags.calls},
               {"warm_calls", flags.warm_calls},
               {"rpc_deadline_ms", flags.rpc_deadline_ms},
               {"latency_us", Summarize(std::move(latency_us))},
               {"calls_per_s", flags.calls / total_s},
               {"plugin_cpu_us_per_call", plugin_cpu_us},
               {"host_cpu_us_per_call", host_cpu_us}});
  Emit("rss", {{"variant", "plain"},
               {"plugin_pid", pid},
               {"plugin_after_launch_kb", plugin_idle},
               {"plugin_after_calls_kb", plugin_busy},
               {"host_after_launch_kb", host_idle},
               {"host_after_calls_kb", host_busy},
               {"plugin_mapped_shared_objects", MappedSharedObjects(pid)},
               {"host_mapped_shared_objects", MappedSharedObjects(0)},
               {"note",
                "VmRSS/VmHWM/RssAnon/RssFile/VmSize in kB from "
                "/proc/PID/status, Pss/Pss_Anon/Pss_File in kB from "
                "/proc/PID/smaps_rollup; Threads is a count"}});

  const BenchClock::time_point t0 = BenchClock::now();
  const std::string how = (*plugin)->ShutdownAndReap(absl::Seconds(2));
  const double kill_ms = MillisSince(t0);
  Emit("kill", {{"variant", "plain"},
                {"kill_ms", kill_ms},
                {"exited", how},
                {"proc_gone_after",
                 !std::filesystem::exists("/proc/" + std::to_string(pid))},
                {"how",
                 "GRPCController/Shutdown, wait for exit (pidfd), "
                 "SIGKILL the group, reap"}});
}

// A crash and what a supervisor does at once: see the exit on the pidfd,
// reap, relaunch, call.
void PhaseRestart(PluginHarness& harness, const Flags& flags) {
  LaunchTimes times;
  auto plugin = harness.Launch(&times);
  if (!plugin.ok()) Die("launch restart", plugin.status());
  std::vector<double> exit_seen, restart, handshake;
  for (int i = 0; i < flags.restarts; ++i) {
    const BenchClock::time_point t0 = BenchClock::now();
    exit_seen.push_back((*plugin)->KillAndReap());
    plugin->reset();
    plugin = harness.Launch(&times);
    if (!plugin.ok()) Die("relaunch", plugin.status());
    restart.push_back(MillisSince(t0));
    handshake.push_back(times.handshake_ms);
  }
  (*plugin)->ShutdownAndReap(absl::Seconds(2));
  Emit("restart",
       {{"what",
         "kill -9 the plugin -> exit seen on its pidfd -> reap (and drain "
         "stderr) -> launch a new one -> its first Echo returned"},
        {"restarts", flags.restarts},
        {"sigkill_to_exit_seen_ms", Summarize(exit_seen)},
        {"relaunch_exec_to_handshake_ms", Summarize(handshake)},
        {"sigkill_to_first_call_ms", Summarize(restart)}});
}

int Run(const Flags& flags) {
  if (!flags.verbose) SetMinLogLevel(LogLevel::kWarn);
  if (flags.no_deadlock_detection) {
    absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  }
  if (flags.grpc_init_once) grpc_init();
  if (flags.warm_cpu_frequency) {
    (void)absl::base_internal::NominalCPUFrequency();
  }
  char dir_template[] = "/tmp/lhbench-XXXXXX";
  if (::mkdtemp(dir_template) == nullptr) {
    Die("mkdtemp", absl::InternalError(std::strerror(errno)));
  }
  HarnessOptions options;
  options.plugin_path = flags.plugin;
  options.socket_dir = dir_template;
  options.extra_env = KeyValues(flags.plugin_env);
  options.channel_args = KeyValues(flags.channel_args);
  options.rpc_deadline = absl::Milliseconds(flags.rpc_deadline_ms);
  options.close_channel_after_shutdown = flags.close_channel_on_stop;
  options.connect_fd = flags.connect_fd;
  options.first_call_health = flags.first_call_health;
  options.spin = absl::Microseconds(flags.spin_us);

  PhaseMachine(flags, options);
  {
    PluginHarness harness(options);
    if (Wanted(flags, "launch")) {
      PhaseLaunch(harness, flags, /*host_path=*/false);
      if (flags.host_path) PhaseLaunch(harness, flags, /*host_path=*/true);
    }
    if (Wanted(flags, "rpc")) PhaseRpc(harness, flags);
    if (Wanted(flags, "restart") && flags.restarts > 0) {
      PhaseRestart(harness, flags);
    }
  }
  if (Wanted(flags, "baseline")) {
    auto uds = UdsPingPong(flags.payload, flags.warm_calls, flags.calls);
    if (!uds.ok()) Die("baseline", uds.status());
    Emit("baseline_uds",
         {{"what",
           "bare unix-socket ping-pong with a forked child (no gRPC), same "
           "payload and call count"},
          {"payload_bytes", flags.payload},
          {"calls", flags.calls},
          {"latency_us", *uds}});
  }
  std::error_code ec;
  std::filesystem::remove_all(options.socket_dir, ec);
  Emit("end", {{"loadavg_end", LoadAvg()}});
  if (flags.grpc_init_once) grpc_shutdown();
  return 0;
}

}  // namespace
}  // namespace loophost::bench

int main(int argc, char** argv) {
  loophost::bench::Flags flags;
  CLI::App app{
      "loophost-bench: launch, call and stop a plugin through loophost's "
      "launch path; JSON lines on stdout"};
  app.add_option("--plugin", flags.plugin, "plugin binary")
      ->check(CLI::ExistingFile);
  app.add_option("--launches", flags.launches, "measured launches")
      ->check(CLI::Range(1, 100000));
  app.add_option("--warm-launches", flags.warm_launches,
                 "unmeasured launches first")
      ->check(CLI::Range(0, 1000));
  app.add_option("--calls", flags.calls, "measured Echo calls")
      ->check(CLI::Range(1, 100000000));
  app.add_option("--warm-calls", flags.warm_calls, "unmeasured calls first")
      ->check(CLI::Range(0, 100000000));
  app.add_option("--payload", flags.payload, "Echo payload bytes")
      ->check(CLI::Range(1, 4 * 1024 * 1024));
  app.add_option("--restarts", flags.restarts, "kill -9 -> relaunch rounds")
      ->check(CLI::Range(0, 10000));
  app.add_option("--rpc-deadline-ms", flags.rpc_deadline_ms,
                 "deadline of each measured Echo; 0 = none")
      ->check(CLI::Range(0, 3600000));
  app.add_option("--host-path", flags.host_path,
                 "also time the supervisor's ready steps (launch variant "
                 "host_path)");
  app.add_option("--phases", flags.phases,
                 "phases to run: launch, rpc, restart, baseline (all by "
                 "default; machine and end always)")
      ->delimiter(',')
      ->check(CLI::IsMember({"launch", "rpc", "restart", "baseline"}));
  app.add_option("--channel-arg", flags.channel_args,
                 "KEY=VALUE gRPC channel argument on top of "
                 "PluginChannelArguments() (experiments)");
  app.add_option("--plugin-env", flags.plugin_env,
                 "KEY=VALUE added to the plugin's environment (experiments)");
  app.add_flag("--close-channel-on-stop", flags.close_channel_on_stop,
               "destroy the channel right after the Shutdown RPC (go-plugin's "
               "order) instead of after the reap (loophost's)");
  app.add_flag("--no-deadlock-detection", flags.no_deadlock_detection,
               "absl::SetMutexDeadlockDetectionMode(kIgnore) in the bench "
               "(Debian's Abseil is built without NDEBUG, so every "
               "absl::Mutex gRPC takes runs the deadlock detector)");
  app.add_flag("--grpc-init-once", flags.grpc_init_once,
               "hold a grpc_init() for the whole run, so gRPC is not shut "
               "down and re-initialised (threads joined and started) "
               "whenever the last channel goes away");
  app.add_flag("--connect-fd", flags.connect_fd,
               "connect the plugin's socket in the bench and give the fd to "
               "gRPC (CreateCustomInsecureChannelFromFd) instead of a "
               "resolving \"unix:\" channel");
  app.add_flag("--warm-cpu-frequency", flags.warm_cpu_frequency,
               "measure Abseil's nominal CPU frequency at start (it sleeps "
               "1+2+.. ms the first time any absl::Mutex is contended, on VMs "
               "without /sys/devices/system/cpu/cpu0/tsc_freq_khz)");
  app.add_flag("--first-call-health", flags.first_call_health,
               "first call of a launch is grpc.health Check(\"plugin\"), not "
               "Echo: launch any go-plugin plugin (e.g. the peer's) through "
               "loophost's path");
  app.add_option("--spin-us", flags.spin_us,
                 "measured Echo calls poll their completion queue without "
                 "blocking for up to this long before blocking (0 = sync stub)")
      ->check(CLI::Range(0, 1000000));
  app.add_flag("--verbose", flags.verbose, "relay the plugin's info logs");
  app.add_option("--compare", flags.compare,
                 "instead of measuring: ratio table of this loophost-bench "
                 "output against --peer");
  app.add_option("--peer", flags.peer, "go-plugin peer output (JSON lines)");
  CLI11_PARSE(app, argc, argv);

  if (!flags.compare.empty()) {
    auto table = loophost::bench::CompareRuns(flags.compare, flags.peer);
    if (!table.ok()) {
      std::cerr << "loophost-bench: " << table.status() << "\n";
      return 1;
    }
    std::cout << *table;
    return 0;
  }
  if (flags.plugin.empty()) {
    std::cerr << "loophost-bench: --plugin PATH is required\n";
    return 2;
  }
  try {
    return loophost::bench::Run(flags);
  } catch (const std::exception& e) {  // e.g. nlohmann::json on bad UTF-8
    std::cerr << "loophost-bench: " << e.what() << "\n";
    return 1;
  }
}
