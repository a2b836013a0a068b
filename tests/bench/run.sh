#!/usr/bin/env bash
# Builds the farm in Release and runs the benchmark suite (farm-bench) against the real binaries
# on loopback: every scenario at two sizes, median of several runs. Prints one Markdown table and
# writes one JSON file. Benchmarks measure; they never fail on a missed target.
#
# Usage: tests/bench/run.sh [farm-bench flags, e.g. --scenarios=dispatch,submit --runs=5 --quick]
# Environment: FARM_BENCH_BUILD_DIR (default build-bench), FARM_BENCH_OUT (default
# <build dir>/bench-results), TMPDIR (where the farms' data goes; it must be a real disk).
set -euo pipefail
cd "$(dirname "$0")/../.."

# libbenchmark-dev: the micro-benchmarks of the floors (farm-micro-bench).
./deploy/install-deps.sh libbenchmark-dev

build_dir=${FARM_BENCH_BUILD_DIR:-build-bench}
out_dir=${FARM_BENCH_OUT:-$build_dir/bench-results}
export CCACHE_DIR=${CCACHE_DIR:-$HOME/.cache/farm-ccache}

cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build "$build_dir" -j "$(nproc)" --target farm-coordinator farm-agent farm-bench \
  farm-bench-stamp farm-bench-chatty farm-bench-history farm-micro-bench

commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
  commit="$commit+uncommitted"
fi
mkdir -p "$out_dir"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
json="$out_dir/bench-$stamp.json"
table="$out_dir/bench-$stamp.md"

# Many agents in one process need many connections.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

# The floors first (SHA-256, one synced write), then the scenarios.
"$build_dir/bin/farm-micro-bench" --benchmark_min_time=0.5 \
  --benchmark_out="$out_dir/micro-$stamp.json" --benchmark_out_format=json
"$build_dir/bin/farm-bench" --commit="$commit" --json="$json" "$@" | tee "$table"
echo "results: $table, $json and $out_dir/micro-$stamp.json"
