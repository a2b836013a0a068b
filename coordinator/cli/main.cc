// farmctl: the command-line client of the build farm. See `farmctl help`.
#include <grpc/support/log.h>
#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "common/clock.h"
#include "coordinator/cli/commands.h"

namespace {
// gRPC's own log lines are debug text; farmctl reports errors itself, in one line. Setting
// GRPC_VERBOSITY brings them back.
void DropGrpcLog(gpr_log_func_args*) {}
}  // namespace

int main(int argc, char** argv) {
  if (std::getenv("GRPC_VERBOSITY") == nullptr) gpr_set_log_function(DropGrpcLog);
  const char* env_coordinator = std::getenv("FARM_COORDINATOR");
  farm::cli::CliIo io{
      std::cout,     std::cerr,    std::cin, *farm::common::RealClock(), absl::LocalTimeZone(),
      STDOUT_FILENO, STDERR_FILENO};
  return farm::cli::RunFarmctl(std::vector<std::string>(argv + 1, argv + argc),
                               env_coordinator == nullptr ? "" : env_coordinator, io);
}
