#!/usr/bin/env bash
# Builds loophost-bench and loop-example, runs loophost-bench on loop-example,
# then runs the hashicorp/go-plugin peer (../shared/peers/goplugin relative to
# the repository root; nothing of it is copied here) in the same session, and
# prints the ratio table of issue #2's goals (ours / go-plugin).
#
#   bench/run.sh                   # build in build-bench/, run both, compare
#   BUILD_DIR=build bench/run.sh   # another build directory
#   SKIP_BUILD=1 bench/run.sh      # use what is built
#   bench/run.sh --calls 50000     # extra args go to loophost-bench
#
# Output: JSON lines of both runs and the table, saved under
# $BUILD_DIR/bench-results/<UTC time>/ (ours.jsonl, goplugin.jsonl, ratios.md).
# The machine should be quiet: both runs print their load average, and the
# script warns when the 1-minute load is above 1.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build-bench}"
PEER_DIR="${PEER_DIR:-$ROOT/../shared/peers/goplugin}"
OUT="$BUILD_DIR/bench-results/$(date -u +%Y%m%dT%H%M%SZ)"

if [[ -z "${SKIP_BUILD:-}" ]]; then
  cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
  ninja -C "$BUILD_DIR" loophost-bench loop-example >&2
fi
if [[ ! -x "$PEER_DIR/run.sh" ]]; then
  echo "run.sh: go-plugin peer not found at $PEER_DIR (set PEER_DIR)" >&2
  exit 1
fi
mkdir -p "$OUT"

load1() { cut -d' ' -f1 /proc/loadavg; }
if awk -v l="$(load1)" 'BEGIN { exit !(l > 1.0) }'; then
  echo "run.sh: warning: load average $(cat /proc/loadavg); numbers will be noisy" >&2
fi

echo "== loophost-bench ($(cat /proc/loadavg))" >&2
timeout 600 "$BUILD_DIR/bin/loophost-bench" --plugin "$BUILD_DIR/bin/loop-example" "$@" \
  | tee "$OUT/ours.jsonl"

echo "== go-plugin peer ($(cat /proc/loadavg))" >&2
SKIP_APT=1 "$PEER_DIR/run.sh" | tee "$OUT/goplugin.jsonl"

echo "== ours / go-plugin (same session)" >&2
"$BUILD_DIR/bin/loophost-bench" --compare "$OUT/ours.jsonl" --peer "$OUT/goplugin.jsonl" \
  | tee "$OUT/ratios.md"
echo "saved in $OUT" >&2
