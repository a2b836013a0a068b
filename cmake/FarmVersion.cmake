# farm_version library: FarmVersion() (common/version.h) from the project version and the git
# revision at configure time. Only this one generated file depends on the revision, and it is
# rewritten only when the text changes, so a new commit relinks the binaries at most.
set(FARM_VERSION_STRING "${PROJECT_VERSION}")
find_package(Git QUIET)
if(GIT_FOUND)
  execute_process(
    COMMAND ${GIT_EXECUTABLE} rev-parse --short=7 HEAD
    WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}
    OUTPUT_VARIABLE FARM_GIT_REVISION
    OUTPUT_STRIP_TRAILING_WHITESPACE
    ERROR_QUIET
    RESULT_VARIABLE FARM_GIT_RESULT)
  if(FARM_GIT_RESULT EQUAL 0 AND FARM_GIT_REVISION MATCHES "^[0-9a-f]+$")
    set(FARM_VERSION_STRING "${PROJECT_VERSION} (git ${FARM_GIT_REVISION})")
  endif()
endif()
configure_file(${PROJECT_SOURCE_DIR}/cmake/version.cc.in
               ${PROJECT_BINARY_DIR}/generated/farm_version.cc @ONLY)
add_library(farm_version STATIC ${PROJECT_BINARY_DIR}/generated/farm_version.cc
            ${PROJECT_SOURCE_DIR}/common/version.cc)
target_include_directories(farm_version PUBLIC ${PROJECT_SOURCE_DIR})
farm_warnings(farm_version)
message(STATUS "farm version: ${FARM_VERSION_STRING}")
