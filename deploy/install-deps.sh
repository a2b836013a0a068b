#!/usr/bin/env bash
# Installs the Debian 12 packages farm needs to build, test and run. Idempotent and
# non-interactive: packages already present are left alone, and apt-get runs only when
# something is missing.
set -euo pipefail

# Usage: install-deps.sh [--build-only] [EXTRA_PACKAGE...]
# --build-only: only what building the binaries needs (cmake -DFARM_BUILD_TESTS=OFF), as the
# container images' build stage does (deploy/docker/Dockerfile).
build_only=false
if [[ ${1:-} == --build-only ]]; then
  build_only=true
  shift
fi

packages=(
  build-essential cmake ninja-build ccache pkg-config
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  librocksdb-dev libabsl-dev libssl-dev libyaml-cpp-dev libcli11-dev
  # The daemons' HTTP port (/metrics, /healthz).
  libcpp-httplib-dev
)
test_packages=(
  libgtest-dev libgmock-dev
  procps
  # The agent's optional step sandbox (farm-agent --sandbox=bwrap) and its tests.
  bubblewrap
  # deploy/package.sh (dpkg-shlibdeps; build-essential brings it too) and the packaging tests
  # (tests/packaging: lintian on the packages; systemd-analyze comes with systemd).
  dpkg-dev lintian
  # The fuzz tests (tests/fuzz): clang with libFuzzer and its sanitizer runtimes.
  clang-14 libclang-rt-14-dev libfuzzer-14-dev
  # The manifest test (deploy/kubernetes): its checker is Python with PyYAML.
  python3 python3-yaml
  # The metrics tests: promtool checks the exposition, a real Prometheus scrapes the daemons.
  prometheus
  # The web dashboard's browser test (tests/web): Debian's Chromium, driven from Node.js by
  # playwright-core, which tests/run.sh installs from the npm registry (tests/web/package-lock.json;
  # Node.js and npm come from Debian where the machine has none).
  chromium
)
if ! $build_only; then
  packages+=("${test_packages[@]}")
fi
# Extra packages a caller asks for (tests/run.sh adds its own tools).
packages+=("$@")

if [[ $(id -u) -ne 0 ]]; then
  sudo=sudo
else
  sudo=
fi
export DEBIAN_FRONTEND=noninteractive

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

# Debian's kubectl (package kubernetes-client, 1.20) checks the Kubernetes manifests in the
# tests (deploy/kubernetes/test_manifests.sh). Where another package owns /usr/bin/kubectl (a
# vendor's kubectl), installing it would clash: it is unpacked under $debian_kubectl_root
# instead, where the test looks for it.
debian_kubectl_root=/opt/farm/kubernetes-client
kubectl_owner=$(dpkg-query -S /usr/bin/kubectl 2>/dev/null | cut -d: -f1 || true)
unpack_kubectl=false
if ! $build_only; then
  if [[ -z $kubectl_owner || $kubectl_owner == kubernetes-client ]]; then
    packages+=(kubernetes-client)
  elif [[ ! -x $debian_kubectl_root/usr/bin/kubectl ]]; then
    unpack_kubectl=true
  fi
fi

missing=()
for p in "${packages[@]}"; do
  if ! installed "$p"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} > 0)) || $unpack_kubectl; then
  $sudo apt-get update -q
fi
if ((${#missing[@]} > 0)); then
  echo "install-deps: installing ${missing[*]}"
  $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
if $unpack_kubectl; then
  echo "install-deps: /usr/bin/kubectl belongs to $kubectl_owner; unpacking Debian's" \
    "kubernetes-client in $debian_kubectl_root"
  download=$(mktemp -d)
  chmod 0755 "$download"  # apt fetches as its own user, _apt
  (cd "$download" && apt-get download -q kubernetes-client)
  $sudo mkdir -p "$debian_kubectl_root"
  $sudo dpkg-deb -x "$download"/kubernetes-client_*.deb "$debian_kubectl_root"
  rm -rf "$download"
fi
