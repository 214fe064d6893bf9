#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine (packages), builds, and runs loophost in the foreground
# on the embedded default configuration:
#   - the PTP monitor as a child process (loop-ptp), following a log file into which a
#     ptp4l log recorded on a real two-namespace setup is played once loophost is up;
#   - the HTTP transport as a child process (loop-http);
#   - the SDK's example loop in-process.
# Ctrl-C stops it (every plugin stopped gracefully).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/install-deps.sh" build
"$root/scripts/build.sh" "$root/build" >/dev/null
bin="$root/build/bin"
export LOOPHOST_STATE_DIR="${LOOPHOST_STATE_DIR:-$root/loophost-state}"
export LOOPHOST_METRICS_ADDR="${LOOPHOST_METRICS_ADDR:-127.0.0.1:9091}"
export NODE_NAME="${NODE_NAME:-demo-node}"
export PTP_PLUGIN=true
export PTP_PLUGIN_CMD="${PTP_PLUGIN_CMD-$bin/loop-ptp}"
export HTTP_PLUGIN_CMD="${HTTP_PLUGIN_CMD-$bin/loop-http}"
export EXAMPLE_PLUGIN=true
# The recording uses software timestamps: its offsets are microseconds of noise.
export PTP_THRESHOLD_MAX_OFFSET_NS="${PTP_THRESHOLD_MAX_OFFSET_NS:-5000}"
export PTP_THRESHOLD_MIN_OFFSET_NS="${PTP_THRESHOLD_MIN_OFFSET_NS:--5000}"
mkdir -p "$LOOPHOST_STATE_DIR"
export PTP_LOG_FILE="$LOOPHOST_STATE_DIR/demo-ptp4l.log"
: > "$PTP_LOG_FILE"
recording="$root/tests/data/ptp/B-backup-master/slave.log"

m="http://$LOOPHOST_METRICS_ADDR"
cat <<EOT
loophost is starting: ptp (child), http (child), example (in-process).
Look at it from another terminal:
  $bin/loopctl status
  curl -s $m/health
  curl -s $m/metrics | grep -E '^(openshift_ptp_clock_state|loop_plugin_up)'
  $bin/loop-ptp --explain $recording | head
Stop with Ctrl-C.
EOT
"$bin/loophost" "$@" &
host_pid=$!
trap 'kill -TERM $host_pid 2>/dev/null; wait $host_pid' INT TERM
# Play the recording once the PTP monitor follows the file.
for _ in $(seq 100); do
  if "$bin/loopctl" --addr "$LOOPHOST_METRICS_ADDR" status 2>/dev/null | grep -q '^ptp .*serving'; then
    cat "$recording" >> "$PTP_LOG_FILE"
    break
  fi
  sleep 0.1
done
wait $host_pid
