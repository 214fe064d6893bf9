#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine (packages), builds, and runs every test.
#   scripts/test.sh [ctest args...]     e.g. scripts/test.sh -R registry
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/install-deps.sh" build
"$root/scripts/build.sh" "$root/build"
cd "$root/build"
ctest --output-on-failure --timeout 300 -j "$(nproc)" "$@"
