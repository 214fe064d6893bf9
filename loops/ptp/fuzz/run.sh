#!/usr/bin/env bash
# Builds the PTP log-line fuzzer with clang++ directly (libFuzzer + ASan +
# UBSan; the project itself may build with GCC) and runs it, seeded with every
# line of the shared corpus and the real logs in tests/data/ptp.
#   loops/ptp/fuzz/run.sh [SECONDS=60] [WORK_DIR]      (CXX_FUZZ=clang++-14 to pick)
# Exit 0: no crash in SECONDS. A crash leaves crash-* in WORK_DIR and exits 1.
set -euo pipefail
seconds="${1:-60}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
work="${2:-${LH_FUZZ_WORK_DIR:-$(mktemp -d /tmp/ptp-fuzz.XXXXXX)}}"
cxx="${CXX_FUZZ:-$(command -v clang++ || command -v clang++-14)}"
mkdir -p "$work/seeds" "$work/corpus"

bin="$work/ptp_log_parser_fuzz"
srcs=("$here/ptp_log_parser_fuzz.cc" "$root/loops/ptp/ptp_log_parser.cc"
      "$root/loops/ptp/explain.cc")
hdrs=("$root"/loops/ptp/{ptp_log_line,ptp_log_parser,explain}.h)
rebuild=0
[[ -x "$bin" ]] || rebuild=1
for f in "${srcs[@]}" "${hdrs[@]}"; do [[ "$f" -nt "$bin" ]] && rebuild=1; done
if ((rebuild)); then
  echo "== building $bin with $cxx"
  # shellcheck disable=SC2046
  "$cxx" -std=c++20 -O1 -g -fno-omit-frame-pointer \
    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
    -I"$root" "${srcs[@]}" -o "$bin" $(pkg-config --cflags --libs absl_strings)
fi

# One seed file per line: the corpus's raw_line column and the real logs.
data="$root/tests/data/ptp"
{
  awk -F'\t' 'NR > 1 { print $2 }' "$data/corpus/lines.tsv"
  cat "$data"/B-backup-master/*.log "$data"/C-summary-stats/*.log | sort -u | head -300
} | awk -v dir="$work/seeds" '{ f = sprintf("%s/seed-%04d", dir, NR); printf "%s", $0 > f; close(f) }'

echo "== fuzzing for ${seconds}s (seeds: $(ls "$work/seeds" | wc -l), work dir: $work)"
cd "$work"
"$bin" -max_total_time="$seconds" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
  -print_final_stats=1 -dict="$here/ptp.dict" "$work/corpus" "$work/seeds"
