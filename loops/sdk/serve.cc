// Implementation of serve.h: the child side of the go-plugin handshake and
// lifecycle. Nothing slow runs before the handshake line: the host's launch
// benchmark times exactly that.
#include "loops/sdk/serve.h"

#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "common/logging.h"
#include "common/process_tuning.h"
#include "common/unique_fd.h"
#include "loops/sdk/loop_server.h"

extern char** environ;

namespace loophost::sdk {
namespace {

// go-plugin's handshake:
// CORE-PROTOCOL|APP-PROTOCOL|NETWORK|ADDRESS|PROTOCOL|CERT
constexpr int kCoreProtocolVersion = 1;
constexpr int kAppProtocolVersion = 1;

LoopEnv EnvFromEnviron() {
  LoopEnv env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    absl::string_view entry(*e);
    size_t eq = entry.find('=');
    if (eq == absl::string_view::npos || eq == 0) continue;
    std::string key(entry.data(), eq);
    std::string value(entry.data() + eq + 1, entry.size() - eq - 1);
    env.emplace(std::move(key), std::move(value));
  }
  return env;
}

std::string Get(const LoopEnv& env, const std::string& key) {
  auto it = env.find(key);
  return it == env.end() ? std::string() : it->second;
}

// "example" -> "EXAMPLE", as in the host's <NAME>_PLUGIN_CMD.
std::string EnvPrefix(const std::string& loop_name) {
  std::string prefix = absl::AsciiStrToUpper(loop_name);
  for (char& c : prefix) {
    if (!absl::ascii_isalnum(c)) c = '_';
  }
  return prefix;
}

void PrintNotStartedByHost(const std::string& loop_name) {
  std::string message = absl::StrCat(
      program_invocation_short_name,
      ": this binary is a loophost plugin (loop \"", loop_name,
      "\") and is not meant to be run by hand.\n"
      "loophost starts it: set ",
      EnvPrefix(loop_name),
      "_PLUGIN_CMD to its path in loophost's environment.\n"
      "(",
      kCookieKey,
      " is missing or wrong; run it with --help for the environment it "
      "reads.)\n");
  std::fputs(message.c_str(), stderr);
}

void PrintHelp(const Loop& loop) {
  std::string name = loop.Name();
  std::string text = absl::StrCat(
      program_invocation_short_name, " ", loop.Version(),
      ": the loophost plugin for loop \"", name,
      "\".\n"
      "It is started by loophost (set ",
      EnvPrefix(name),
      "_PLUGIN_CMD to its path), or by any hashicorp/go-plugin host.\n"
      "It serves gRPC on a unix socket and prints the handshake line\n"
      "`1|1|unix|<socket path>|grpc|` on stdout; logs go to stderr.\n\n"
      "Environment:\n"
      "  LOOPHOST_PLUGIN_COOKIE    must be ",
      kCookieValue,
      " (set by the host)\n"
      "  PLUGIN_PROTOCOL_VERSIONS  versions the host speaks; must include 1\n"
      "  PLUGIN_UNIX_SOCKET_DIR    directory of the socket (else $TMPDIR, "
      "/tmp)\n"
      "  LOOP_NAME, NODE_NAME      set by the host, read by the loop\n"
      "  LOOP_PROMETHEUS_PORT      serve /metrics on 127.0.0.1:<port> "
      "(unset or 0: off)\n"
      "  LOOP_LOG_LEVEL            trace|debug|info|warn|error (default "
      "info)\n\n"
      "Options:\n"
      "  --help       this text\n"
      "  --version    print the loop's name and version\n");
  std::fputs(text.c_str(), stdout);
}

// Accepts an unset PLUGIN_PROTOCOL_VERSIONS, as go-plugin does.
absl::Status CheckProtocolVersions(const std::string& versions) {
  if (versions.empty()) return absl::OkStatus();
  for (absl::string_view v : absl::StrSplit(versions, ',')) {
    int n = 0;
    if (absl::SimpleAtoi(v, &n) && n == kAppProtocolVersion) {
      return absl::OkStatus();
    }
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "PLUGIN_PROTOCOL_VERSIONS=", versions,
      ": this plugin speaks protocol version ", kAppProtocolVersion, " only"));
}

absl::StatusOr<std::string> SocketPath(const LoopEnv& env,
                                       const std::string& loop_name) {
  std::string dir = Get(env, "PLUGIN_UNIX_SOCKET_DIR");
  if (dir.empty()) dir = Get(env, "TMPDIR");
  if (dir.empty()) dir = "/tmp";
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  std::string safe_name = loop_name;
  for (char& c : safe_name) {
    if (!absl::ascii_isalnum(c) && c != '-' && c != '_') c = '_';
  }
  std::string path =
      absl::StrCat(dir, "/plugin-", safe_name, "-", ::getpid(), ".sock");
  if (path.size() >= sizeof(sockaddr_un::sun_path)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "PLUGIN_UNIX_SOCKET_DIR=", dir, ": socket path ", path, " is longer ",
        "than ", sizeof(sockaddr_un::sun_path) - 1, " bytes"));
  }
  return path;
}

// Write-all to stdout; the handshake must reach the host in one piece.
bool WriteStdout(absl::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(STDOUT_FILENO, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// Everything that stops a child plugin besides the Shutdown RPC: SIGTERM and
// SIGINT (read from a signalfd) and the exit of the parent (a pidfd, backed by
// PR_SET_PDEATHSIG). One thread polls them and asks the server to shut down.
class StopTriggers {
 public:
  // Blocks SIGTERM/SIGINT for the whole process: call it before any thread
  // starts, so that every thread inherits the mask.
  absl::Status Init(pid_t parent) {
    // A shell starts background jobs with SIGINT ignored; an ignored signal
    // never reaches the signalfd.
    ::signal(SIGTERM, SIG_DFL);
    ::signal(SIGINT, SIG_DFL);
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    if (int err = pthread_sigmask(SIG_BLOCK, &signals, nullptr); err != 0) {
      return absl::InternalError(
          absl::StrCat("pthread_sigmask: ", std::strerror(err)));
    }
    signal_fd_.Reset(::signalfd(-1, &signals, SFD_CLOEXEC));
    if (!signal_fd_.valid()) {
      return absl::InternalError(
          absl::StrCat("signalfd: ", std::strerror(errno)));
    }
    wake_fd_.Reset(::eventfd(0, EFD_CLOEXEC));
    if (!wake_fd_.valid()) {
      return absl::InternalError(
          absl::StrCat("eventfd: ", std::strerror(errno)));
    }
    // The host sets this too; setting it here covers hosts that do not.
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    // syscall(): glibc 2.36's <sys/pidfd.h> lacks extern "C" for C++.
    parent_fd_.Reset(static_cast<int>(::syscall(SYS_pidfd_open, parent, 0)));
    if (!parent_fd_.valid()) {
      LogWarn("cannot watch the parent process; relying on PR_SET_PDEATHSIG",
              {{"parent_pid", absl::StrCat(parent)},
               {"error", std::strerror(errno)}});
    }
    // Checked after both watches are armed: a parent that died before
    // cannot be seen by them any more.
    if (::getppid() != parent) {
      return absl::FailedPreconditionError(
          absl::StrCat("parent process ", parent, " exited before start"));
    }
    parent_ = parent;
    return absl::OkStatus();
  }

  void Start(LoopServer& server) {
    thread_ = std::thread([this, &server] {
      WarmCpuFrequency();  // after the handshake, where nobody waits for it
      Run(server);
    });
  }

  void Stop() {
    if (!thread_.joinable()) return;
    uint64_t one = 1;
    ssize_t n = ::write(wake_fd_.get(), &one, sizeof(one));
    (void)n;  // cannot fail: the counter is far from overflowing
    thread_.join();
  }

 private:
  void Run(LoopServer& server) {
    pollfd fds[3] = {{signal_fd_.get(), POLLIN, 0},
                     {wake_fd_.get(), POLLIN, 0},
                     {parent_fd_.get(), POLLIN, 0}};
    bool stopping = false;
    while (true) {
      if (::poll(fds, 3, -1) < 0) {
        if (errno == EINTR) continue;
        LogError("poll failed, shutting down", {{"error", strerror(errno)}});
        server.RequestShutdown();
        return;
      }
      if (fds[1].revents != 0) return;
      if (fds[0].revents != 0) {
        signalfd_siginfo info{};
        if (::read(signal_fd_.get(), &info, sizeof(info)) != sizeof(info)) {
          continue;
        }
        // One log line per stop: a host may signal the process and its
        // group, and PR_SET_PDEATHSIG follows a parent's exit.
        if (!stopping) {
          LogInfo("signal received, shutting down",
                  {{"signal", sigabbrev_np(static_cast<int>(info.ssi_signo))}});
        }
        stopping = true;
        server.RequestShutdown();
      }
      if (fds[2].revents != 0) {
        if (!stopping) {
          LogInfo("parent process exited, shutting down",
                  {{"parent_pid", absl::StrCat(parent_)}});
        }
        stopping = true;
        fds[2].fd = -1;  // stays readable; poll ignores negative fds
        server.RequestShutdown();
      }
    }
  }

  pid_t parent_ = 0;
  UniqueFd signal_fd_;
  UniqueFd wake_fd_;
  UniqueFd parent_fd_;
  std::thread thread_;
};

}  // namespace

int ServeLoop(int argc, char** argv, std::unique_ptr<Loop> loop) {
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      PrintHelp(*loop);
      return 0;
    }
    if (arg == "--version") {
      std::string line = absl::StrCat(loop->Name(), " ", loop->Version(), "\n");
      std::fputs(line.c_str(), stdout);
      return 0;
    }
    std::string message =
        absl::StrCat(program_invocation_short_name, ": unknown argument ", arg,
                     " (try --help)\n");
    std::fputs(message.c_str(), stderr);
    return 2;
  }
  return ServeLoop(std::move(loop));
}

int ServeLoop(std::unique_ptr<Loop> loop) {
  const pid_t parent = ::getppid();
  ::signal(SIGPIPE, SIG_IGN);  // a closed stdout must not kill us
  DisableMutexDeadlockDetection();
  RaiseOpenFileLimit();
  // hclog JSON lines: loophost and go-plugin hosts re-log them with level and
  // fields.
  SetLogFormat(LogFormat::kHclogJson);
  LoopEnv env = EnvFromEnviron();
  const std::string name = loop->Name();
  const std::string version = loop->Version();

  if (std::string level = Get(env, "LOOP_LOG_LEVEL"); !level.empty()) {
    LogLevel parsed;
    if (ParseLogLevel(level, &parsed)) {
      SetMinLogLevel(parsed);
    } else {
      LogWarn("LOOP_LOG_LEVEL: not trace|debug|info|warn|error; using info",
              {{"value", level}});
    }
  }
  if (Get(env, kCookieKey) != kCookieValue) {
    PrintNotStartedByHost(name);
    return 1;
  }
  if (absl::Status s =
          CheckProtocolVersions(Get(env, "PLUGIN_PROTOCOL_VERSIONS"));
      !s.ok()) {
    LogError("cannot start", {{"loop", name}, {"error", s.ToString()}});
    return 1;
  }
  StopTriggers triggers;
  if (absl::Status s = triggers.Init(parent); !s.ok()) {
    LogError("cannot start", {{"loop", name}, {"error", s.ToString()}});
    return 1;
  }
  absl::StatusOr<std::string> socket_path = SocketPath(env, name);
  if (!socket_path.ok()) {
    LogError("cannot start",
             {{"loop", name}, {"error", socket_path.status().ToString()}});
    return 1;
  }

  absl::StatusOr<std::unique_ptr<LoopServer>> server =
      LoopServer::StartOnUnixSocket(std::move(loop), std::move(env),
                                    *socket_path);
  if (!server.ok()) {
    LogError("cannot start",
             {{"loop", name}, {"error", server.status().ToString()}});
    ::unlink(socket_path->c_str());
    return 1;
  }

  // The one line the host waits for. Never a 7th field: we do not multiplex.
  std::string handshake =
      absl::StrCat(kCoreProtocolVersion, "|", kAppProtocolVersion, "|unix|",
                   *socket_path, "|grpc|\n");
  int exit_code = 0;
  if (WriteStdout(handshake)) {
    LogInfo("serving",
            {{"loop", name},
             {"version", version},
             {"socket", *socket_path},
             {"metrics_port", absl::StrCat((*server)->metrics_port())}});
    triggers.Start(**server);
  } else {
    LogError("cannot write the handshake to stdout, shutting down",
             {{"error", std::strerror(errno)}});
    (*server)->RequestShutdown();
    exit_code = 1;
  }
  (*server)->Wait();
  triggers.Stop();
  server->reset();
  ::unlink(socket_path->c_str());
  LogInfo("stopped", {{"loop", name}});
  return exit_code;
}

}  // namespace loophost::sdk
