// lhgoplugin-host: a hashicorp/go-plugin 1.0.1 host that runs a loophost
// plugin (a C++ plugin built with loophost's SDK, e.g. loop-example) the way
// any go-plugin host would, for the interoperability test "a loophost plugin
// runs under go-plugin" (tests/interop/loophost_plugin_under_goplugin_test.cc).
//
//	lhgoplugin-host -plugin build/bin/loop-example [-payload hello] [-automtls]
//
// (-automtls turns on go-plugin's AutoMTLS; loophost's C++ plugins speak
// plaintext gRPC on their 0700 socket dir only, so it fails against them.)
//
// Steps: plugin.NewClient (gRPC only, loophost's cookie) -> Client() (exec,
// handshake line, dial) -> Ping() (grpc.health "plugin") -> Dispense("echo")
// -> one loophost.v1.Echo call -> Kill() (GRPCController.Shutdown, then up to
// 2 s for the process to exit, else SIGKILL).
//
// Prints one JSON line on stdout, {"ok":true,...} with timings and how the
// plugin exited, and exits 0 when every step worked and the plugin exited by
// itself with code 0 after Shutdown (no SIGKILL; go-plugin did not log
// "plugin failed to exit gracefully"). Otherwise {"ok":false,"reason":...}
// and exit 1. go-plugin's own log (hclog, Debug) goes to stderr.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	plugin "github.com/hashicorp/go-plugin"

	"lhgoplugin/shared"
)

var (
	pluginPath   = flag.String("plugin", "", "plugin binary to run (required)")
	payload      = flag.String("payload", "hello from go-plugin", "Echo payload")
	startTimeout = flag.Duration("start-timeout", 10*time.Second, "go-plugin StartTimeout (exec -> handshake line)")
	callTimeout  = flag.Duration("call-timeout", 5*time.Second, "deadline of the Echo call")
	autoMTLS     = flag.Bool("automtls", false, "go-plugin AutoMTLS (the plugin must answer with its certificate)")
)

// lockedBuffer is an io.Writer safe for go-plugin's goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func emit(result map[string]interface{}) {
	b, err := json.Marshal(result)
	if err != nil {
		fmt.Printf("{\"ok\":false,\"reason\":%q}\n", err.Error())
		os.Exit(1)
	}
	fmt.Println(string(b))
}

func main() {
	flag.Parse()
	result := map[string]interface{}{"plugin": *pluginPath, "automtls": *autoMTLS}
	var client *plugin.Client
	fail := func(reason string, err error) {
		// os.Exit skips deferred calls: do not leave the plugin behind.
		if client != nil {
			client.Kill()
		}
		result["ok"] = false
		if err != nil {
			reason += ": " + err.Error()
		}
		result["reason"] = reason
		emit(result)
		os.Exit(1)
	}
	if *pluginPath == "" {
		fail("-plugin is required", nil)
	}

	// go-plugin's log: to stderr for the test's output, and kept to look for
	// "plugin failed to exit gracefully".
	var hostLog, pluginStderr lockedBuffer
	logger := hclog.New(&hclog.LoggerOptions{
		Name:   "lhgoplugin-host",
		Level:  hclog.Debug,
		Output: io.MultiWriter(os.Stderr, &hostLog),
	})

	cmd := exec.Command(*pluginPath)
	client = plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  shared.Handshake,
		Plugins:          shared.PluginMap,
		Cmd:              cmd,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		StartTimeout:     *startTimeout,
		Logger:           logger,
		Stderr:           &pluginStderr, // raw copy of the plugin's stderr
		AutoMTLS:         *autoMTLS,
	})

	t0 := time.Now()
	rpc, err := client.Client()
	if err != nil {
		fail("Client() (exec, handshake, dial)", err)
	}
	result["client_ms"] = ms(time.Since(t0))
	result["negotiated_version"] = client.NegotiatedVersion()
	if rc := client.ReattachConfig(); rc != nil {
		result["pid"] = rc.Pid
		result["protocol"] = string(rc.Protocol)
		if rc.Addr != nil {
			result["network"] = rc.Addr.Network()
			result["address"] = rc.Addr.String()
		}
	}
	if client.Protocol() != plugin.ProtocolGRPC {
		fail(fmt.Sprintf("negotiated protocol %q, want grpc", client.Protocol()), nil)
	}

	t1 := time.Now()
	if err := rpc.Ping(); err != nil {
		fail("Ping() (grpc.health.v1 service \"plugin\")", err)
	}
	result["ping_ms"] = ms(time.Since(t1))

	raw, err := rpc.Dispense("echo")
	if err != nil {
		fail("Dispense(\"echo\")", err)
	}
	echo, ok := raw.(shared.Echoer)
	if !ok {
		fail(fmt.Sprintf("Dispense(\"echo\") returned %T, not an Echoer", raw), nil)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *callTimeout)
	t2 := time.Now()
	out, err := echo.Echo(ctx, []byte(*payload))
	cancel()
	if err != nil {
		fail("loophost.v1.Echo/Echo", err)
	}
	result["echo_ms"] = ms(time.Since(t2))
	if string(out) != *payload {
		fail(fmt.Sprintf("Echo returned %q, want %q", out, *payload), nil)
	}
	result["echo_payload"] = string(out)

	// Kill(): Shutdown RPC, then wait up to 2 s for the process to exit by
	// itself, else SIGKILL. When it returns, go-plugin has reaped the process
	// (cmd.Wait ran in its goroutine), so cmd.ProcessState is set.
	t3 := time.Now()
	client.Kill()
	kill := time.Since(t3)
	result["kill_ms"] = ms(kill)
	result["exited"] = client.Exited()

	st := cmd.ProcessState
	if st == nil {
		fail("after Kill(): the plugin process was not reaped", nil)
	}
	ws, _ := st.Sys().(syscall.WaitStatus)
	result["exit_code"] = st.ExitCode()
	if ws.Signaled() {
		result["exit_signal"] = ws.Signal().String()
	}
	result["plugin_stderr_lines"] = strings.Count(pluginStderr.String(), "\n")
	forced := strings.Contains(hostLog.String(), "plugin failed to exit gracefully")
	result["sigkill_needed"] = forced

	switch {
	case forced:
		fail("Kill(): go-plugin logged \"plugin failed to exit gracefully\" and sent SIGKILL", nil)
	case ws.Signaled():
		fail(fmt.Sprintf("the plugin was killed by %v instead of exiting after Shutdown", ws.Signal()), nil)
	case st.ExitCode() != 0:
		fail(fmt.Sprintf("the plugin exited with code %d after Shutdown", st.ExitCode()), nil)
	case kill >= 2*time.Second:
		fail(fmt.Sprintf("Kill() took %v (go-plugin's graceful wait is 2 s)", kill), nil)
	}
	result["ok"] = true
	emit(result)
}
