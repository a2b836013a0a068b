#!/usr/bin/env bash
# Installs the Debian 12 packages farm needs to build, test and run. Idempotent and
# non-interactive: packages already present are left alone, and apt-get runs only when
# something is missing.
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  librocksdb-dev libabsl-dev libssl-dev libyaml-cpp-dev libcli11-dev
  libgtest-dev libgmock-dev
  procps
  # The agent's optional step sandbox (farm-agent --sandbox=bwrap) and its tests.
  bubblewrap
  # deploy/package.sh (dpkg-shlibdeps; build-essential brings it too) and the packaging tests
  # (tests/packaging: lintian on the packages; systemd-analyze comes with systemd).
  dpkg-dev lintian
  # The fuzz tests (tests/fuzz): clang with libFuzzer and its sanitizer runtimes.
  clang-14 libclang-rt-14-dev libfuzzer-14-dev
)
# Extra packages a caller asks for (tests/run.sh adds its own tools).
packages+=("$@")

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
if [[ $(id -u) -ne 0 ]]; then
  sudo=sudo
else
  sudo=
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
