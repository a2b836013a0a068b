#include "coordinator/cli/commands.h"

#include <memory>
#include <utility>

#include "common/channel.h"
#include "coordinator/cli/command_table.h"
#include "coordinator/cli/format.h"
#include "coordinator/cli/session.h"

namespace farm::cli {

int RunCommand(const CliOptions& options, CliIo& io) {
  if (options.command == Command::kHelp) {
    io.out << (options.help_topic.empty() ? UsageText() : CommandUsageText(options.help_topic));
    io.out.flush();
    return kExitSucceeded;
  }
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = common::MakeChannel(options.coordinator);
  if (!channel.ok()) {
    io.err << "farmctl: " << OneLine(channel.status().message()) << "\n";
    return kExitUsage;
  }
  Session session(options, io, *std::move(channel));
  return CommandDefOf(options.command).run(session);
}

int RunFarmctl(const std::vector<std::string>& args, absl::string_view env_coordinator, CliIo& io) {
  if (args.empty()) {
    io.err << UsageText();
    return kExitUsage;
  }
  absl::StatusOr<CliOptions> options = ParseArgs(args, env_coordinator);
  if (!options.ok()) {
    io.err << "farmctl: " << options.status().message() << "\n";
    return kExitUsage;
  }
  return RunCommand(*options, io);
}

}  // namespace farm::cli
