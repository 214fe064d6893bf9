// Tests of plugin discovery from the environment, env files and the plugin
// environment.
#include "host/plugin_config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>

#include "common/status_matchers.h"

namespace loophost::host {
namespace {

using ::loophost::testing::IsOk;
using ::loophost::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

class TempDir {
 public:
  TempDir() {
    std::string tmpl = ::testing::TempDir() + "plugin_config_testXXXXXX";
    path_ = ::mkdtemp(tmpl.data());
  }
  ~TempDir() { std::system(("rm -rf '" + path_ + "'").c_str()); }
  std::string Write(const std::string& name, const std::string& text) const {
    std::string file = path_ + "/" + name;
    std::ofstream(file) << text;
    return file;
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::vector<BuiltinLoop> Builtins() {
  return {{"ptp", "PTP monitor", nullptr}, {"example", "example", nullptr}};
}

std::vector<std::string> Names(const std::vector<PluginConfig>& plugins) {
  std::vector<std::string> out;
  for (const auto& p : plugins) out.push_back(p.name);
  return out;
}

TEST(DiscoverPlugins, BuiltinsAreOffUnlessEnabled) {
  auto plugins = DiscoverPlugins({}, Builtins());
  ASSERT_THAT(plugins, IsOk());
  EXPECT_THAT(*plugins, IsEmpty());
}

TEST(DiscoverPlugins, EnabledBuiltinRunsInProcessWithoutCommand) {
  auto plugins = DiscoverPlugins({{"PTP_PLUGIN", "true"}}, Builtins());
  ASSERT_THAT(plugins, IsOk());
  ASSERT_EQ(plugins->size(), 1u);
  EXPECT_EQ((*plugins)[0].name, "ptp");
  EXPECT_EQ((*plugins)[0].command, "");
}

TEST(DiscoverPlugins, CommandRunsBuiltinAsChildAndThirdPartyPlugins) {
  auto plugins = DiscoverPlugins({{"PTP_PLUGIN", "true"},
                                  {"PTP_PLUGIN_CMD", "/bin/true"},
                                  {"MYGO_PLUGIN_CMD", "/bin/cat"},
                                  {"OFF_PLUGIN_CMD", "/bin/cat"},
                                  {"OFF_PLUGIN", "false"}},
                                 Builtins());
  ASSERT_THAT(plugins, IsOk());
  EXPECT_THAT(Names(*plugins), ::testing::ElementsAre("mygo", "ptp"));
  EXPECT_EQ((*plugins)[1].command, "/bin/true");
}

TEST(DiscoverPlugins, BuiltinCommandWithoutEnableStaysOff) {
  auto plugins = DiscoverPlugins({{"PTP_PLUGIN_CMD", "/bin/true"}}, Builtins());
  ASSERT_THAT(plugins, IsOk());
  EXPECT_THAT(*plugins, IsEmpty());
}

TEST(DiscoverPlugins, ABuiltinOnByDefaultRunsUnlessDisabled) {
  std::vector<BuiltinLoop> builtins = Builtins();
  builtins.push_back({"http", "transport", nullptr,
                      /*enabled_by_default=*/true,
                      /*host_env=*/{"TRANSPORT_HOST"}});
  auto plugins = DiscoverPlugins({}, builtins);
  ASSERT_THAT(plugins, IsOk());
  EXPECT_THAT(Names(*plugins), ::testing::ElementsAre("http"));
  EXPECT_EQ((*plugins)[0].command, "");

  plugins = DiscoverPlugins({{"HTTP_PLUGIN_CMD", "/bin/true"},
                             {"HTTP_TRANSPORT_TIMEOUT", "1s"},
                             {"TRANSPORT_HOST", "http://node:9043"},
                             {"PTP_THRESHOLD_MAX_OFFSET_NS", "50"}},
                            builtins);
  ASSERT_THAT(plugins, IsOk());
  ASSERT_THAT(Names(*plugins), ::testing::ElementsAre("http"));
  EXPECT_EQ((*plugins)[0].command, "/bin/true");
  // Its own variables and the named host ones; not another plugin's.
  EXPECT_THAT((*plugins)[0].extra_env,
              UnorderedElementsAre(Pair("HTTP_TRANSPORT_TIMEOUT", "1s"),
                                   Pair("TRANSPORT_HOST", "http://node:9043")));

  for (const char* off : {"false", "0", "no"}) {
    plugins = DiscoverPlugins({{"HTTP_PLUGIN", off}}, builtins);
    ASSERT_THAT(plugins, IsOk());
    EXPECT_THAT(*plugins, IsEmpty()) << off;
  }
}

TEST(DiscoverPlugins, PrefixedVariablesAndEnvFileReachOnlyThatPlugin) {
  TempDir dir;
  std::string file =
      dir.Write("ptp.env", "# comment\n\nFOO=bar\nexport QUOTED=\"a b\"\n");
  auto plugins = DiscoverPlugins({{"PTP_PLUGIN", "true"},
                                  {"PTP_LOG_FILE", "/var/log/ptp"},
                                  {"PTP_PLUGIN_ENV", file},
                                  {"OTHER_SETTING", "x"}},
                                 Builtins());
  ASSERT_THAT(plugins, IsOk());
  ASSERT_EQ(plugins->size(), 1u);
  EXPECT_THAT((*plugins)[0].extra_env,
              UnorderedElementsAre(Pair("PTP_LOG_FILE", "/var/log/ptp"),
                                   Pair("FOO", "bar"), Pair("QUOTED", "a b")));
}

TEST(DiscoverPlugins, ErrorsNameTheVariable) {
  TempDir dir;
  std::string bad_file = dir.Write("bad.env", "OK=1\nnot a pair\n");
  std::string not_executable = dir.Write("plain.txt", "text");
  struct Case {
    EnvMap env;
    std::string message;
  } cases[] = {
      {{{"PTP_PLUGIN", "maybe"}}, "PTP_PLUGIN=maybe: not a boolean"},
      {{{"X_PLUGIN_CMD", "/no/such/file"}},
       "X_PLUGIN_CMD=/no/such/file: No such file or directory"},
      {{{"X_PLUGIN_CMD", not_executable}},
       "X_PLUGIN_CMD=" + not_executable + ": not an executable file"},
      {{{"X_PLUGIN_CMD", "/bin/true"}, {"X_PLUGIN_ENV", bad_file}},
       "X_PLUGIN_ENV=" + bad_file + ":2: expected KEY=VALUE"},
      {{{"NOPE_PLUGIN", "true"}},
       "NOPE_PLUGIN=true: no built-in loop \"nope\""},
  };
  for (const Case& c : cases) {
    EXPECT_THAT(
        DiscoverPlugins(c.env, Builtins()),
        StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.message)))
        << c.message;
  }
}

TEST(BuildPluginEnv, IsExplicitAndComplete) {
  PluginConfig plugin;
  plugin.name = "ptp";
  plugin.extra_env = {{"PTP_LOG_FILE", "/x"}};
  EnvMap host_env = {
      {"PATH", "/usr/bin"}, {"HOME", "/root"}, {"SECRET", "s"}, {"TZ", "UTC"}};
  EnvMap env = BuildPluginEnv(
      plugin, {{"LOOP_NAME", "ptp"}, {"LOOP_PROMETHEUS_PORT", "20001"}},
      host_env, {"node1", "info", "/state/sockets", "/state/loops/ptp"});
  EXPECT_THAT(
      env,
      UnorderedElementsAre(
          Pair("PATH", "/usr/bin"), Pair("TZ", "UTC"),
          Pair("LOOPHOST_PLUGIN_COOKIE", "d2a4c6e8-loophost-v1"),
          Pair("PLUGIN_PROTOCOL_VERSIONS", "1"),
          Pair("PLUGIN_MIN_PORT", "10000"), Pair("PLUGIN_MAX_PORT", "25000"),
          Pair("PLUGIN_UNIX_SOCKET_DIR", "/state/sockets"),
          Pair("TMPDIR", "/state/sockets"),
          Pair("LOOP_STATE_DIR", "/state/loops/ptp"),
          Pair("NODE_NAME", "node1"), Pair("LOOP_LOG_LEVEL", "info"),
          Pair("LOOP_NAME", "ptp"), Pair("LOOP_PROMETHEUS_PORT", "20001"),
          Pair("PTP_LOG_FILE", "/x")));
}

}  // namespace
}  // namespace loophost::host
