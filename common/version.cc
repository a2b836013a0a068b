#include "common/version.h"

namespace farm::common {

std::string VersionLine(const std::string& program) {
  std::string line = program;
  line += ' ';
  line += FarmVersion();
  return line;
}

}  // namespace farm::common
