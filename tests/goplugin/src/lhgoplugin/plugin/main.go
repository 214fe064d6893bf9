// lhgoplugin-plugin: a plain hashicorp/go-plugin 1.0.1 gRPC plugin that uses
// loophost's handshake, for the interoperability test "a go-plugin plugin runs
// under loophost" (tests/interop/goplugin_under_loophost_test.cc).
//
// It serves only what go-plugin serves (grpc.health.v1 "plugin", the GRPCBroker
// and plugin.GRPCController) plus loophost.v1.Echo; it does not implement
// loophost.v1.Plugin, so loophost must treat it as a plain go-plugin plugin.
// Deliberately nothing loophost-specific in its lifecycle: no signal handling,
// go-plugin decides when it exits.
//
// Test aids (they do not change what is served):
//   - hclog JSON lines on stderr when it starts and when plugin.Serve returns
//     (GRPCController.Shutdown stops the gRPC server, Serve returns, main
//     returns: exit code 0). Killed by a signal instead, it logs nothing more.
//   - if <LOOP_NAME upper-cased>_ENV_DUMP names a file (loophost passes host
//     variables with the plugin's prefix), the environment it received is
//     written there, one KEY=VALUE a line, sorted.
package main

import (
	"context"
	"os"
	"sort"
	"strings"

	hclog "github.com/hashicorp/go-hclog"
	plugin "github.com/hashicorp/go-plugin"

	"lhgoplugin/shared"
)

type echoImpl struct{}

func (echoImpl) Echo(_ context.Context, p []byte) ([]byte, error) { return p, nil }

// dumpEnv writes the received environment to the file named by
// <LOOP_NAME>_ENV_DUMP, if both are set. Stdout stays untouched: go-plugin
// prints the handshake line there.
func dumpEnv(logger hclog.Logger) {
	name := os.Getenv("LOOP_NAME")
	if name == "" {
		return
	}
	path := os.Getenv(strings.ToUpper(name) + "_ENV_DUMP")
	if path == "" {
		return
	}
	env := os.Environ()
	sort.Strings(env)
	if err := os.WriteFile(path, []byte(strings.Join(env, "\n")+"\n"), 0o600); err != nil {
		logger.Error("env dump failed", "path", path, "error", err)
	}
}

func main() {
	// go-plugin replaces os.Stderr with a pipe inside Serve; this logger keeps
	// the real stderr so the line after Serve returns still reaches the host.
	logger := hclog.New(&hclog.LoggerOptions{
		Name:       "lhgoplugin",
		Level:      hclog.Debug,
		Output:     os.Stderr,
		JSONFormat: true,
	})
	if os.Getenv(shared.Handshake.MagicCookieKey) == shared.Handshake.MagicCookieValue {
		logger.Info("go-plugin plugin starting", "pid", os.Getpid(), "loop_name", os.Getenv("LOOP_NAME"))
		dumpEnv(logger)
	}
	// Without the cookie, Serve prints go-plugin's "This binary is a plugin"
	// text and exits 1 itself.
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: shared.Handshake,
		Plugins: map[string]plugin.Plugin{
			"echo": &shared.EchoPlugin{Impl: echoImpl{}},
		},
		GRPCServer: plugin.DefaultGRPCServer,
		Logger:     logger.Named("go-plugin"),
	})
	logger.Info("plugin.Serve returned (gRPC server stopped by GRPCController.Shutdown); exiting 0", "pid", os.Getpid())
}
