#!/usr/bin/env bash
# Runs loop-ptp-bench (loops/ptp/monitor_bench.cc) the way loops/ptp/README.md
# reports it: parse + clock state machine + metrics over large files built
# from the real B-backup-master slave log (its 64 offset lines, and its 49 s2
# lines: a clock that stays locked), raw and daemon-tagged, pinned to one
# core beside `wc -l`; then a day's worth of lines (VmRSS) and 10 s idle.
#   loops/ptp/monitor_bench.sh [BUILD_DIR=build] [LINES=10000000]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="${1:-$root/build}"
lines="${2:-10000000}"
bench="$build/bin/loop-ptp-bench"
[[ -x "$bench" ]] || ninja -C "$build" loop-ptp-bench
tmp="$(mktemp -d /tmp/ptp-monitor-bench.XXXXXX)"
trap 'rm -rf "$tmp"' EXIT
src="$root/tests/data/ptp/B-backup-master/slave.log"
grep 'master offset' "$src" > "$tmp/offsets"
grep 'master offset.* s2 ' "$src" > "$tmp/locked"
for f in offsets locked; do
  awk -v n="$lines" '{ l[NR] = $0 } END { for (i = 0; i < n; i++) print l[i % NR + 1] }' \
    "$tmp/$f" > "$tmp/$f.raw.log"
  sed 's/]: /]: [ptp4l.0.config:6] /' "$tmp/$f.raw.log" > "$tmp/$f.tagged.log"
  rm "$tmp/$f.raw.log.unused" 2>/dev/null || true
done
for f in locked.raw locked.tagged offsets.tagged; do
  echo "== $f.log: $(wc -l < "$tmp/$f.log") lines, $(du -h "$tmp/$f.log" | cut -f1)"
  taskset -c 0 "$bench" --file "$tmp/$f.log" --runs 3
  rm -f "$tmp/$f.log"
done
echo "== a day of lines (16 offset lines/s, phc2sys 1/s, a fault every hour), 10 s idle"
"$bench" --day --rate 16 --idle 10
