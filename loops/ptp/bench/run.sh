#!/usr/bin/env bash
# Builds a large PTP log from real lines and runs ptp-parse-bench on it:
#   loops/ptp/bench/run.sh [BUILD_DIR=build] [LINES=10000000]
# Two files in a temp dir: the offset lines of the real B-backup-master slave
# log repeated to LINES lines as ptp4l printed them (raw.log), and the same lines
# as linuxptp-daemon forwards them, with a `[ptp4l.0.config:6]` tag (tagged.log).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
build="${1:-$root/build}"
lines="${2:-10000000}"
bench="$build/bin/ptp-parse-bench"
[[ -x "$bench" ]] || ninja -C "$build" ptp-parse-bench
tmp="$(mktemp -d /tmp/ptp-bench.XXXXXX)"
trap 'rm -rf "$tmp"' EXIT
src="$root/tests/data/ptp/B-backup-master/slave.log"
grep 'master offset' "$src" > "$tmp/offsets"
awk -v n="$lines" '{ l[NR] = $0 } END { for (i = 0; i < n; i++) print l[i % NR + 1] }' \
  "$tmp/offsets" > "$tmp/raw.log"
sed 's/]: /]: [ptp4l.0.config:6] /' "$tmp/raw.log" > "$tmp/tagged.log"
for f in raw tagged; do
  echo "== $f.log: $(wc -l < "$tmp/$f.log") lines, $(du -h "$tmp/$f.log" | cut -f1)"
  taskset -c 0 "$bench" "$tmp/$f.log" --runs 3
done
