#!/usr/bin/env bash
# The one build command, used by the README, .ci/run and the Dockerfile:
#   scripts/build.sh [BUILD_DIR]      (default: build; extra CMake args in LH_CMAKE_ARGS)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir="${1:-$root/build}"
# shellcheck disable=SC2086
cmake -S "$root" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLH_WERROR=ON ${LH_CMAKE_ARGS:-}
ninja -C "$build_dir"
