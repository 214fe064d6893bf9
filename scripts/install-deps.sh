#!/usr/bin/env bash
# Installs what loophost needs on Debian 12. One list, used by the README, .ci/run and the
# Dockerfile, so what CI proves is what the image runs.
#   install-deps.sh build    compilers, -dev packages, test tools (default)
#   install-deps.sh runtime  only the shared libraries the binaries load
set -euo pipefail
mode="${1:-build}"

runtime_pkgs=(
  libgrpc++1.51 libprotobuf32 libabsl20220623 libprometheus-cpp-core1.0
  libprometheus-cpp-pull1.0 libcpp-httplib0.11 libsqlite3-0 libcurl4 libssl3 ca-certificates
)
build_pkgs=(
  build-essential cmake ninja-build pkg-config
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler grpc-proto
  libabsl-dev prometheus-cpp-dev libgtest-dev libgmock-dev libbenchmark-dev
  libcpp-httplib-dev nlohmann-json3-dev libcli11-dev libsqlite3-dev libcurl4-openssl-dev
  libboost1.74-dev libssl-dev openssl
  clang-format
  # loops/ptp/fuzz: libFuzzer (clang -fsanitize=fuzzer,address)
  clang libclang-rt-14-dev
  # tests: promtool, go-plugin interop peers, real ptp4l in network namespaces
  linuxptp iproute2
  prometheus golang-go golang-github-hashicorp-go-plugin-dev golang-google-grpc-dev
  golang-github-hashicorp-go-hclog-dev golang-goprotobuf-dev
)

case "$mode" in
  runtime) pkgs=("${runtime_pkgs[@]}") ;;
  build) pkgs=("${runtime_pkgs[@]}" "${build_pkgs[@]}") ;;
  *) echo "usage: $0 [build|runtime]" >&2; exit 2 ;;
esac

sudo=""
if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}"
fi
