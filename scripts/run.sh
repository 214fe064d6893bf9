#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine (packages), builds, and runs loophost in the foreground
# on the embedded default configuration: the example loop as a child process and the same
# loop served in-process. Ctrl-C stops it (every plugin stopped gracefully).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/install-deps.sh" build
"$root/scripts/build.sh" "$root/build" >/dev/null
bin="$root/build/bin"
export LOOPHOST_STATE_DIR="${LOOPHOST_STATE_DIR:-$root/loophost-state}"
export LOOPHOST_METRICS_ADDR="${LOOPHOST_METRICS_ADDR:-127.0.0.1:9091}"
# The example loop twice: once as a child process, once in-process.
export EXAMPLE_PLUGIN=true
export ECHO_PLUGIN_CMD="${ECHO_PLUGIN_CMD:-$bin/loop-example}"
cat <<EOT
loophost is starting with the example loop in-process ("example") and as a child ("echo").
Look at it from another terminal:
  $bin/loopctl status
  curl -s http://$LOOPHOST_METRICS_ADDR/health
  curl -s http://$LOOPHOST_METRICS_ADDR/metrics | grep loop_plugin
  curl -s http://$LOOPHOST_METRICS_ADDR/discovery
Stop with Ctrl-C.
EOT
exec "$bin/loophost" "$@"
