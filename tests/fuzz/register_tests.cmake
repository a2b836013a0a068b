# The main build's `fuzz` tests (label fuzz), included by tests/CMakeLists.txt. The fuzzers are
# built by clang in a build of their own (tests/fuzz/CMakeLists.txt, see run.sh): fuzz_build
# configures and builds it in BUILD/fuzz, then each fuzz_NAME runs one fuzzer from its seed
# corpus for FARM_FUZZ_SECONDS. Without clang every one of them is reported as skipped
# (run.sh's exit status 77), with the reason in its output, never as passed.

# Said at configure time too, since CTest shows a skipped test's output nowhere but its log.
find_program(FARM_FUZZ_CLANG NAMES clang++-14 clang++)
file(GLOB farm_fuzz_runtime /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-*.a)
if(NOT FARM_FUZZ_CLANG OR NOT farm_fuzz_runtime)
  message(WARNING "the fuzz tests will be SKIPPED: clang++ or its libFuzzer runtime is missing "
                  "(deploy/install-deps.sh installs clang-14 and libclang-rt-14-dev)")
endif()

set(FARM_FUZZ_SECONDS 20 CACHE STRING "How long each fuzz test runs its fuzzer (seconds)")
set(fuzz_build_dir ${CMAKE_BINARY_DIR}/fuzz)
set(fuzz_run ${CMAKE_CURRENT_LIST_DIR}/run.sh)

add_test(NAME fuzz_build COMMAND ${fuzz_run} --build-only --build-dir=${fuzz_build_dir})
set_tests_properties(fuzz_build PROPERTIES LABELS fuzz SKIP_RETURN_CODE 77 TIMEOUT 1500 COST 100
  FIXTURES_SETUP farm_fuzz_build)

set(fuzzers job_file pipeline_file resource_name redactor)
if(EXISTS ${PROJECT_SOURCE_DIR}/common/safe_path.h)
  list(APPEND fuzzers safe_path)
endif()
foreach(name ${fuzzers})
  add_test(NAME fuzz_${name}
    COMMAND ${fuzz_run} --no-build --build-dir=${fuzz_build_dir} --seconds=${FARM_FUZZ_SECONDS}
            ${name})
  set_tests_properties(fuzz_${name} PROPERTIES LABELS fuzz SKIP_RETURN_CODE 77 COST 50
    FIXTURES_REQUIRED farm_fuzz_build)
endforeach()
