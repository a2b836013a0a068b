#!/usr/bin/env bash
# Installs what is missing, builds (Ninja, ccache) and runs the whole test suite through CTest.
# Usage: tests/run.sh [extra ctest args, e.g. -L unit or -R Store]
set -euo pipefail
cd "$(dirname "$0")/.."

# bazel-bootstrap: Bazel is the reference REAPI client of the CAS tests (label "bazel").
./deploy/install-deps.sh bazel-bootstrap

# playwright-core, as tests/web/package-lock.json pins it: the browser test drives Chromium with it
# (Node.js 18, Debian's, or later).
command -v npm >/dev/null || ./deploy/install-deps.sh nodejs npm
(cd tests/web && npm ci --no-audit --no-fund --loglevel=error)

build_dir=${FARM_BUILD_DIR:-build}
jobs=$(nproc)
export CCACHE_DIR=${CCACHE_DIR:-$HOME/.cache/farm-ccache}

cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=${FARM_BUILD_TYPE:-RelWithDebInfo}
cmake --build "$build_dir" -j "$jobs"
cd "$build_dir"
# Twice as many tests as cores: most of them wait (on leases, timeouts, the processes they
# start) more than they compute. Tests that need the machine to themselves say so (PROCESSORS,
# RESOURCE_LOCK).
ctest --output-on-failure -j "$((2 * jobs))" --timeout 600 "$@"
