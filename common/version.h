// The farm's version, one string for every binary: the project version and, when the source
// tree was a git checkout at configure time, its revision: "0.1.0 (git abc1234)". The revision
// is read when CMake configures (cmake/FarmVersion.cmake), not at every build, so that a commit
// does not rebuild everything; re-run cmake to refresh it. The agent reports this string at
// registration; `--version` on every binary prints VersionLine.
#pragma once

#include <string>

namespace farm::common {

const char* FarmVersion();

// "PROGRAM VERSION", e.g. "farm-coordinator 0.1.0 (git abc1234)": what --version prints.
std::string VersionLine(const std::string& program);

}  // namespace farm::common
