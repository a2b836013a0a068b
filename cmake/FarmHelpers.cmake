# Small helpers shared by the folders' CMakeLists.

# Warnings for the project's own code (never for generated code), and the precompiled headers
# (below) every such target uses.
function(farm_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wno-unused-parameter -Werror=return-type)
  farm_use_precompiled_headers(${target})
  file(RELATIVE_PATH dir ${PROJECT_SOURCE_DIR} ${CMAKE_CURRENT_SOURCE_DIR})
  if(dir MATCHES "^tests(/|$)" AND NOT FARM_OPTIMIZE_TESTS)
    cmake_language(EVAL CODE "cmake_language(DEFER DIRECTORY [[${CMAKE_SOURCE_DIR}]] CALL \
      _farm_unoptimized_test_code [[${target}]])")
  endif()
endfunction()

# The tests' own code (every target under tests/ that links GoogleTest) is compiled without
# optimization: half the build's files are tests, and -O0 takes them a third less time. What
# they test (the farm's libraries and binaries) and the programs under tests/ without
# GoogleTest (farm-bench and its helpers, the fault suite's file system and checker) keep the
# build type's flags. -DFARM_OPTIMIZE_TESTS=ON optimizes the tests too.
#
# And they are built in batches (CMake's unity build: up to 8 test files compiled as one): each
# test file pays GoogleTest's and the precompiled header's fixed cost once per batch instead of
# once per file: compiling the tests took about 1,540 seconds of CPU here before, 640 after.
# A test file therefore keeps its helpers in its own named namespace or gives them names no
# other test file of its target uses. -DFARM_UNITY_TESTS=OFF compiles each file alone.
option(FARM_OPTIMIZE_TESTS "Compile the tests' own code with the build type's optimization" OFF)
option(FARM_UNITY_TESTS "Compile the tests' files in batches (CMake unity build)" ON)

function(_farm_unoptimized_test_code target)
  _farm_links(${target} links_gtest GTest::gtest GTest::gmock GTest::gtest_main)
  if(links_gtest)
    target_compile_options(${target} PRIVATE -O0)
    if(FARM_UNITY_TESTS)
      set_target_properties(${target} PROPERTIES UNITY_BUILD ON UNITY_BUILD_BATCH_SIZE 8)
    endif()
  endif()
endfunction()

# farm_proto_library(NAME PROTOS a.proto b.proto [GRPC] [GRPC_INCLUDES h...] [SRCS c.cc...])
# Generates C++ (and gRPC stubs with GRPC) for protos under ${CMAKE_CURRENT_SOURCE_DIR}, which
# is the import root, and builds them into a static library, with SRCS (hand-written, found
# from the same root). GRPC_INCLUDES: headers every generated .grpc.pb.h includes.
function(farm_proto_library name)
  cmake_parse_arguments(ARG "GRPC" "" "PROTOS;DEPS;GRPC_INCLUDES;SRCS" ${ARGN})
  set(srcs)
  set(hdrs)
  set(out ${CMAKE_CURRENT_BINARY_DIR})
  foreach(proto ${ARG_PROTOS})
    get_filename_component(dir ${proto} DIRECTORY)
    get_filename_component(base ${proto} NAME_WE)
    set(stem ${out}/${dir}/${base})
    set(outputs ${stem}.pb.cc ${stem}.pb.h)
    set(grpc_args)
    if(ARG_GRPC)
      list(APPEND outputs ${stem}.grpc.pb.cc ${stem}.grpc.pb.h)
      set(grpc_args --grpc_out=${out} --plugin=protoc-gen-grpc=$<TARGET_FILE:gRPC::grpc_cpp_plugin>)
      if(ARG_GRPC_INCLUDES)
        list(JOIN ARG_GRPC_INCLUDES ":" includes)
        list(APPEND grpc_args --grpc_opt=additional_header_includes=${includes})
      endif()
    endif()
    set(include_files)
    foreach(header ${ARG_GRPC_INCLUDES})
      list(APPEND include_files ${CMAKE_CURRENT_SOURCE_DIR}/${header})
    endforeach()
    add_custom_command(
      OUTPUT ${outputs}
      COMMAND protobuf::protoc --proto_path=${CMAKE_CURRENT_SOURCE_DIR} --cpp_out=${out}
              ${grpc_args} ${CMAKE_CURRENT_SOURCE_DIR}/${proto}
      DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/${proto} protobuf::protoc ${include_files}
      COMMENT "protoc ${proto}")
    list(APPEND srcs ${stem}.pb.cc)
    if(ARG_GRPC)
      list(APPEND srcs ${stem}.grpc.pb.cc)
    endif()
  endforeach()
  add_library(${name} STATIC ${srcs} ${ARG_SRCS})
  target_include_directories(${name} PUBLIC ${out})
  if(ARG_SRCS OR ARG_GRPC_INCLUDES)
    target_include_directories(${name} PUBLIC ${CMAKE_CURRENT_SOURCE_DIR})
  endif()
  target_link_libraries(${name} PUBLIC protobuf::libprotobuf gRPC::grpc++ ${ARG_DEPS})
endfunction()

# farm_only_links(TARGET ALLOWED...)
# Refuses (a configure error) any library of this project on TARGET's link line other than
# ALLOWED: imported targets (Foo::Bar) and plain system libraries are fine, any other target
# built here is not. Checked once every CMakeLists has been read, so that a later
# target_link_libraries(TARGET ...) anywhere is caught too.
function(farm_only_links target)
  set_property(TARGET ${target} PROPERTY FARM_ALLOWED_LINKS ${ARGN})
  # A deferred call expands its arguments when it runs: pass the name as a literal.
  cmake_language(EVAL CODE
    "cmake_language(DEFER DIRECTORY [[${CMAKE_SOURCE_DIR}]] CALL _farm_check_links [[${target}]])")
endfunction()

function(_farm_check_links target)
  get_target_property(allowed ${target} FARM_ALLOWED_LINKS)
  get_target_property(links ${target} LINK_LIBRARIES)
  get_target_property(interface ${target} INTERFACE_LINK_LIBRARIES)
  foreach(lib IN LISTS links interface)
    string(REGEX REPLACE "^\\$<LINK_ONLY:(.*)>$" "\\1" lib "${lib}")
    if(TARGET ${lib})
      get_target_property(imported ${lib} IMPORTED)
      if(NOT imported AND NOT lib IN_LIST allowed)
        list(JOIN allowed ", " allowed_text)
        message(FATAL_ERROR "${target} may link only ${allowed_text} of this project's "
                            "libraries, not ${lib}")
      endif()
    endif()
  endforeach()
endfunction()

# Precompiled headers. Nearly every file of the project includes farm.v1's generated headers
# (35,000 lines of farm.pb.h, with gRPC's and protobuf's behind them): parsing them was most of
# the time each file took to compile. They are parsed once per build into two precompiled
# headers, one for the programs and libraries and one, with GoogleTest, for the tests, and every
# target farm_warnings() sets up reuses one of them. -DFARM_PRECOMPILED_HEADERS=OFF builds
# without: what a file forgets to include then shows (the fuzz build never uses them either).
option(FARM_PRECOMPILED_HEADERS "Precompile the headers (gRPC, protobuf, farm.v1) every file includes" ON)

set(FARM_PCH_HEADERS
  <grpcpp/grpcpp.h>
  <farm/v1/farm.grpc.pb.h>
  <absl/status/statusor.h>
  <absl/strings/str_cat.h>
  <absl/synchronization/mutex.h>
  <absl/time/time.h>
  <map>
  <memory>
  <string>
  <vector>)

# Called by farm_warnings() on every target of the project's own code. Only a target that
# links farm_proto (directly or through the project's libraries) is compiled as the header
# was, so the others are left alone; that is known once every CMakeLists has been read.
function(farm_use_precompiled_headers target)
  if(NOT FARM_PRECOMPILED_HEADERS OR target MATCHES "^farm_pch")
    return()
  endif()
  file(RELATIVE_PATH dir ${PROJECT_SOURCE_DIR} ${CMAKE_CURRENT_SOURCE_DIR})
  if(dir MATCHES "^tests(/|$)")
    set(base farm_pch_tests)
  else()
    set(base farm_pch)
  endif()
  cmake_language(EVAL CODE "cmake_language(DEFER DIRECTORY [[${CMAKE_SOURCE_DIR}]] CALL \
    _farm_reuse_precompiled_header [[${target}]] [[${base}]])")
endfunction()

function(_farm_reuse_precompiled_header target base)
  _farm_links(${target} links_proto farm_proto)
  if(NOT links_proto)
    return()
  endif()
  if(base STREQUAL "farm_pch_tests")
    # A test helper without GoogleTest (farm-bench, the process helpers) would find the
    # header's GTEST_ macros undefined, and GCC would ignore it: it takes the programs' one.
    _farm_links(${target} links_gtest GTest::gtest GTest::gmock GTest::gtest_main)
    if(NOT links_gtest)
      set(base farm_pch)
    endif()
  endif()
  target_precompile_headers(${target} REUSE_FROM ${base})
  # With ccache: it caches a file compiled against a precompiled header only when told the
  # header through -fpch-preprocess (and with CCACHE_SLOPPINESS, set in CMakeLists.txt).
  target_compile_options(${target} PRIVATE -fpch-preprocess)
endfunction()

# _farm_links(TARGET OUT NAMES...): sets OUT to TRUE when TARGET links one of NAMES, directly or
# through this project's libraries.
function(_farm_links target out)
  set(${out} FALSE PARENT_SCOPE)
  if(target IN_LIST ARGN)
    set(${out} TRUE PARENT_SCOPE)
    return()
  endif()
  get_target_property(links ${target} LINK_LIBRARIES)
  get_target_property(interface ${target} INTERFACE_LINK_LIBRARIES)
  foreach(lib IN LISTS links interface)
    string(REGEX REPLACE "^\\$<LINK_ONLY:(.*)>$" "\\1" lib "${lib}")
    if(lib IN_LIST ARGN)
      set(${out} TRUE PARENT_SCOPE)
      return()
    endif()
    if(TARGET ${lib})
      get_target_property(imported ${lib} IMPORTED)
      if(NOT imported)
        _farm_links(${lib} found ${ARGN})
        if(found)
          set(${out} TRUE PARENT_SCOPE)
          return()
        endif()
      endif()
    endif()
  endforeach()
endfunction()

# farm_precompiled_header_target(NAME [EXTRA_HEADERS h...] LINKS lib...): the target whose
# precompiled header (FARM_PCH_HEADERS and EXTRA_HEADERS, compiled with LINKS' include
# directories and flags) others reuse. It builds no code of its own.
function(farm_precompiled_header_target name)
  if(NOT FARM_PRECOMPILED_HEADERS)
    return()
  endif()
  cmake_parse_arguments(ARG "" "" "EXTRA_HEADERS;LINKS" ${ARGN})
  set(source ${CMAKE_CURRENT_BINARY_DIR}/${name}.cc)
  file(CONFIGURE OUTPUT ${source} CONTENT "// The translation unit of ${name}'s precompiled header.\n")
  add_library(${name} OBJECT ${source})
  target_link_libraries(${name} PRIVATE ${ARG_LINKS})
  target_precompile_headers(${name} PRIVATE ${FARM_PCH_HEADERS} ${ARG_EXTRA_HEADERS})
  farm_warnings(${name})
endfunction()
