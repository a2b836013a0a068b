#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (tests/fuzz/CMakeLists.txt, a build of its own) and
# runs each one from its seed corpus for a while. A crash, a leak, a sanitizer report or a
# timeout fails the run and leaves the input that caused it under BUILD_DIR/artifacts/NAME/.
#
# Usage: tests/fuzz/run.sh [--minutes=N | --seconds=N] [--build-dir=DIR] [--build-only]
#                          [--no-build] [NAME...]
#   --minutes=N / --seconds=N  how long each fuzzer runs (default 30 seconds; the main build's
#                              fuzz tests give FARM_FUZZ_SECONDS, 20)
#   --build-dir=DIR            where the fuzz build goes (default ${FARM_BUILD_DIR:-build}/fuzz)
#   --build-only               configure and build, run nothing
#   --no-build                 run what is built (the main build's `fuzz` tests do this after
#                              their fuzz_build test)
#   NAME...                    the fuzzers to run (default: all that are built: job_file,
#                              pipeline_file, resource_name, redactor, safe_path)
# New inputs the fuzzers find go to BUILD_DIR/corpus/NAME, never into the repo's seeds
# (tests/fuzz/corpus/NAME); copy an interesting one there by hand.
# Exit status: 0 all ran clean, 1 a fuzzer failed, 2 bad usage or a build failure, 77 skipped
# because clang or its fuzzer runtime is missing (the message says which and how to install).
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
seconds=30
# Like tests/run.sh: a relative FARM_BUILD_DIR is relative to the repo.
build_dir=${FARM_BUILD_DIR:-build}/fuzz
[[ $build_dir == /* ]] || build_dir=$repo/$build_dir
build=1
run=1
names=()
for arg in "$@"; do
  case $arg in
    --minutes=*)
      minutes=${arg#--minutes=}
      [[ $minutes =~ ^[0-9]+$ ]] || { echo "fuzz: --minutes takes a whole number" >&2; exit 2; }
      seconds=$((minutes * 60))
      ;;
    --seconds=*) seconds=${arg#--seconds=} ;;
    --build-dir=*) build_dir=${arg#--build-dir=} ;;
    --build-only) run=0 ;;
    --no-build) build=0 ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
      exit 0
      ;;
    -*)
      echo "fuzz: unknown option $arg (see --help)" >&2
      exit 2
      ;;
    *) names+=("$arg") ;;
  esac
done
build_dir=$(realpath -m "$build_dir")
if ! [[ $seconds =~ ^[0-9]+$ ]] || ((seconds < 1)); then
  echo "fuzz: the run time must be a positive whole number of seconds or minutes" >&2
  exit 2
fi

skip() {
  echo "fuzz: SKIPPED, nothing was fuzzed: $*" >&2
  echo "fuzz: install the fuzzing toolchain with: deploy/install-deps.sh" >&2
  exit 77
}

# clang and libFuzzer: Debian's clang-14 with its runtime (libclang-rt-14-dev, libfuzzer-14-dev).
cxx=${FARM_FUZZ_CXX:-}
if [[ -z $cxx ]]; then
  for candidate in clang++-14 clang++; do
    if command -v "$candidate" >/dev/null; then
      cxx=$(command -v "$candidate")
      break
    fi
  done
fi
[[ -n $cxx ]] && command -v "$cxx" >/dev/null || skip "clang++ is not installed (${cxx:-clang++-14})"
cc=${FARM_FUZZ_CC:-${cxx/clang++/clang}}
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
echo 'extern "C" int LLVMFuzzerTestOneInput(const char*, unsigned long) { return 0; }' \
  >"$probe/probe.cc"
if ! "$cxx" -fsanitize=fuzzer,address,undefined "$probe/probe.cc" -o "$probe/probe" \
  2>"$probe/err"; then
  skip "$cxx cannot link a libFuzzer target (is libclang-rt-14-dev installed?): $(head -c 300 "$probe/err")"
fi

if ((build)); then
  export CCACHE_DIR=${CCACHE_DIR:-$HOME/.cache/farm-ccache}
  cmake -S "$repo/tests/fuzz" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_C_COMPILER="$cc" -DCMAKE_CXX_COMPILER="$cxx" >/dev/null ||
    { echo "fuzz: configuring the fuzz build failed" >&2; exit 2; }
  cmake --build "$build_dir" -j "$(nproc)" ||
    { echo "fuzz: building the fuzzers failed" >&2; exit 2; }
fi
((run)) || exit 0

if [[ ! -f $build_dir/fuzzers.txt ]]; then
  echo "fuzz: no fuzz build in $build_dir (the build failed, or run without --no-build)" >&2
  exit 2
fi
if ((${#names[@]} == 0)); then
  mapfile -t names <"$build_dir/fuzzers.txt"
fi

failed=()
for name in "${names[@]}"; do
  binary=$build_dir/${name}_fuzzer
  if [[ ! -x $binary ]]; then
    echo "fuzz: $name: no fuzzer $binary (not built: see $build_dir/fuzzers.txt)" >&2
    failed+=("$name")
    continue
  fi
  corpus=$build_dir/corpus/$name
  artifacts=$build_dir/artifacts/$name
  mkdir -p "$corpus" "$artifacts"
  seeds=()
  [[ -d $repo/tests/fuzz/corpus/$name ]] && seeds=("$repo/tests/fuzz/corpus/$name")
  dict=()
  [[ -f $repo/tests/fuzz/$name.dict ]] && dict=("-dict=$repo/tests/fuzz/$name.dict")
  log=$build_dir/$name.log
  echo "fuzz: $name for ${seconds}s (log: $log)"
  # -timeout: one input taking over 10 s is a hang; -rss_limit_mb: a blow-up (alias bomb).
  status=0
  "$binary" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=8192 \
    -print_final_stats=1 -artifact_prefix="$artifacts/" "${dict[@]}" "$corpus" "${seeds[@]}" \
    >"$log" 2>&1 || status=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 || true)
  if ((status != 0)); then
    echo "fuzz: $name FAILED (exit $status); the end of its log:" >&2
    tail -n 40 "$log" >&2
    echo "fuzz: reproduce with: $binary $artifacts/<crash-file>" >&2
    ls "$artifacts" >&2 || true
    failed+=("$name")
  else
    echo "fuzz: $name ok: ${runs:-?} runs, ${speed:-?} exec/s, ${cov:-cov: ?}"
  fi
done

if ((${#failed[@]} > 0)); then
  echo "fuzz: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "fuzz: ${#names[@]} passed, 0 failed"
