// The PTP monitor on a real ptp4l: a grandmaster and a slave (Debian's
// linuxptp) in two network namespaces joined by a veth pair, software
// timestamping, `free_running 1` on both so that neither ever adjusts the
// machine's clock (they share it), and no phc2sys at all. The slave's stdout
// is loophost's PTP_LOG_FILE (PTP_PLUGIN=true). A free-running slave never
// locks, so its port stays UNCALIBRATED and it prints summary (rms) lines:
// the monitor must show them as openshift_ptp_* with lock-state FREERUN.
// Skipped unless root with ptp4l and ip installed and network namespaces
// available.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_matchers.h"
#include "tests/testing/child_process.h"
#include "tests/testing/loophost_process.h"

namespace loophost::testing {
namespace {

constexpr absl::Duration kWait = absl::Seconds(90);

// Runs a command to completion; true if it exited 0.
bool RunCommand(const TempDir& dir, const std::vector<std::string>& argv) {
  ChildOptions options;
  options.argv = argv;
  options.env = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin"};
  options.stderr_path = dir.Join("command.err");
  auto child = ChildProcess::Spawn(options);
  if (!child.ok()) return false;
  auto status = (*child)->Wait(absl::Seconds(30));
  return status.ok() && status->ExitedWith(0);
}

// Two namespaces and a veth pair, removed on destruction.
class NetnsPair {
 public:
  explicit NetnsPair(const TempDir& dir) : dir_(dir) {
    std::string id = absl::StrCat(::getpid() % 100000);
    a_ = "lhptpA" + id;
    b_ = "lhptpB" + id;
    veth_a_ = "lhpa" + id;
    veth_b_ = "lhpb" + id;
  }
  ~NetnsPair() {
    RunCommand(dir_, {LH_IP, "netns", "del", a_});
    RunCommand(dir_, {LH_IP, "netns", "del", b_});
  }
  bool Create() {
    const std::vector<std::vector<std::string>> steps = {
        {LH_IP, "netns", "add", a_},
        {LH_IP, "netns", "add", b_},
        {LH_IP, "-n", a_, "link", "add", veth_a_, "type", "veth", "peer",
         "name", veth_b_, "netns", b_},
        {LH_IP, "-n", a_, "addr", "add", "10.233.7.1/24", "dev", veth_a_},
        {LH_IP, "-n", b_, "addr", "add", "10.233.7.2/24", "dev", veth_b_},
        {LH_IP, "-n", a_, "link", "set", veth_a_, "up"},
        {LH_IP, "-n", b_, "link", "set", veth_b_, "up"},
        {LH_IP, "-n", a_, "link", "set", "lo", "up"},
        {LH_IP, "-n", b_, "link", "set", "lo", "up"},
    };
    for (const auto& step : steps) {
      if (!RunCommand(dir_, step)) return false;
    }
    return true;
  }
  const std::string& a() const { return a_; }
  const std::string& b() const { return b_; }
  const std::string& veth_a() const { return veth_a_; }
  const std::string& veth_b() const { return veth_b_; }

 private:
  const TempDir& dir_;
  std::string a_, b_, veth_a_, veth_b_;
};

std::string Config(const TempDir& dir, const std::string& name, bool slave) {
  std::string path = dir.Join(name);
  std::ofstream(path) << "[global]\n"
                      << "free_running 1\n"  // never touch the clock
                      << "time_stamping software\n"
                      << "network_transport UDPv4\n"
                      << "logSyncInterval -2\n"
                      << "logAnnounceInterval -1\n"
                      << "announceReceiptTimeout 3\n"
                      << "summary_interval 1\n"
                      << (slave ? "slaveOnly 1\n" : "priority1 100\n")
                      << "uds_address " << dir.Join(name + ".sock") << "\n";
  return path;
}

TEST(Ptp4lInNetns, MonitorFollowsARealSlave) {
  if (::getuid() != 0) GTEST_SKIP() << "needs root (network namespaces)";
  if (std::string(LH_PTP4L).empty() || std::string(LH_IP).empty())
    GTEST_SKIP() << "needs ptp4l (Debian package linuxptp) and ip";
  auto dir = TempDir::Create("lh-ptp4l-");
  ASSERT_THAT(dir, IsOk());
  NetnsPair netns(*dir);
  if (!netns.Create()) {
    GTEST_SKIP() << "cannot create network namespaces here: "
                 << ReadFileOrEmpty(dir->Join("command.err"));
  }

  LoophostOptions options;
  options.binary = LH_LOOPHOST_BINARY;
  options.env = {{"PTP_PLUGIN", "true"},
                 {"PTP_LOG_FILE", "${WORK_DIR}/slave.log"}};
  options.files = {{"slave.log", ""}};
  auto host = LoophostProcess::Start(std::move(options));
  ASSERT_THAT(host, IsOk());
  ASSERT_TRUE((*host)->WaitFor(
      [&] {
        auto health = (*host)->Get("/health");
        return health.ok() &&
               health->body.find("ok ptp.input\n") != std::string::npos;
      },
      kWait, "ptp.input healthy"));

  auto ptp4l = [&](const std::string& ns, const std::string& iface,
                   const std::string& config, const std::string& out) {
    ChildOptions o;
    o.argv = {LH_IP, "netns", "exec", ns,     LH_PTP4L,
              "-i",  iface,   "-f",   config, "-m"};
    o.env = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin"};
    o.stdout_path = out;
    o.stderr_path = out + ".err";
    return ChildProcess::Spawn(o);
  };
  auto master =
      ptp4l(netns.a(), netns.veth_a(), Config(*dir, "master.cfg", false),
            dir->Join("master.log"));
  ASSERT_THAT(master, IsOk());
  auto slave = ptp4l(netns.b(), netns.veth_b(), Config(*dir, "slave.cfg", true),
                     (*host)->WorkPath("slave.log"));
  ASSERT_THAT(slave, IsOk());

  // The slave picks the master (port 1 LISTENING -> UNCALIBRATED: role
  // UNKNOWN) and, free running, reports rms summaries: FREERUN.
  const std::map<std::string, std::string> servo = {{"process", "ptp4l"},
                                                    {"iface", "master"}};
  bool ok = (*host)->WaitFor(
      [&] {
        return (*host)->Metric("openshift_ptp_offset_ns", servo).has_value() &&
               (*host)->Metric("openshift_ptp_clock_state", servo) == 0 &&
               (*host)->Metric("openshift_ptp_interface_role",
                               {{"process", "ptp4l"}, {"iface", "port1"}}) == 4;
      },
      kWait, "ptp4l's lines in the host's metrics");
  EXPECT_TRUE(ok) << "slave log:\n"
                  << ReadFileOrEmpty((*host)->WorkPath("slave.log"))
                  << "\nmaster log:\n"
                  << ReadFileOrEmpty(dir->Join("master.log"));
  EXPECT_GE((*host)
                ->Metric("loop_ptp_events_total", {{"resource", "lock-state"}})
                .value_or(0),
            1);
  EXPECT_GE((*host)
                ->Metric("loop_ptp_lines_total", {{"kind", "summary"}})
                .value_or(0),
            1);
  (*slave)->KillAndReap();
  (*master)->KillAndReap();
}

}  // namespace
}  // namespace loophost::testing
