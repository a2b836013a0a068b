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
  const CommandDef& def = CommandDefOf(options.command);
  common::ClientSecurityFlags flags = options.security;
  if (!def.needs_coordinator) {  // no call goes out
    flags = common::ClientSecurityFlags();
    flags.insecure = true;
  }
  absl::StatusOr<common::ClientSecurity> security = common::LoadClientSecurity(flags);
  if (!security.ok()) {
    io.err << "farmctl: " << OneLine(security.status().message()) << "\n";
    return kExitUsage;
  }
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
      common::MakeChannel(options.coordinator, *security);
  if (!channel.ok()) {
    io.err << "farmctl: " << OneLine(channel.status().message()) << "\n";
    return kExitUsage;
  }
  Session session(options, io, *std::move(channel));
  return def.run(session);
}

int RunFarmctl(const std::vector<std::string>& args, absl::string_view env_coordinator, CliIo& io) {
  if (args.empty()) {
    io.err << UsageText();
    return kExitUsage;
  }
  // `farmctl --version` is `farmctl version`, as the daemons' --version is.
  const std::vector<std::string> version = {"version"};
  absl::StatusOr<CliOptions> options =
      ParseArgs(args.size() == 1 && args[0] == "--version" ? version : args, env_coordinator);
  if (!options.ok()) {
    io.err << "farmctl: " << options.status().message() << "\n";
    return kExitUsage;
  }
  return RunCommand(*options, io);
}

}  // namespace farm::cli
