// The secret group (role admin): `secret set NAME` (the value on stdin), `secret list` (names,
// never values), `secret rm NAME`, over AdminService. The value is read from stdin only, never
// from the command line (where `ps` and shell histories would show it), and one trailing
// newline is dropped: the one `echo` and a terminal's Enter add.
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/job_limits.h"
#include "coordinator/cli/command_table.h"
#include "coordinator/cli/format.h"
#include "coordinator/cli/session.h"

namespace farm::cli {
namespace {

// The value on `in`: everything up to its end, less one trailing "\n" (or "\r\n").
// INVALID_ARGUMENT past the limit (with a little room for the newline).
absl::StatusOr<std::string> ReadValue(std::istream& in, absl::string_view name) {
  std::string value;
  char buf[4096];
  while (in.read(buf, sizeof(buf)) || in.gcount() > 0) {
    value.append(buf, static_cast<size_t>(in.gcount()));
    if (value.size() > static_cast<size_t>(common::kMaxSecretValueBytes) + 2) {
      return absl::InvalidArgumentError(absl::StrCat("the value of secret ", name,
                                                     " is longer than the limit of ",
                                                     common::kMaxSecretValueBytes, " bytes"));
    }
  }
  if (absl::EndsWith(value, "\r\n")) {
    value.resize(value.size() - 2);
  } else if (absl::EndsWith(value, "\n")) {
    value.pop_back();
  }
  return value;
}

int SecretSet(Session& session) {
  const std::string& name = session.options().secret_name;
  if (absl::Status s = common::ValidateSecretName(name); !s.ok()) return session.Fail(s);
  absl::StatusOr<std::string> value = ReadValue(session.io().in, name);
  if (!value.ok()) return session.Fail(value.status());
  if (absl::Status s = common::ValidateSecretValue(name, *value); !s.ok()) return session.Fail(s);
  farm::v1::SetSecretRequest req;
  req.set_name(name);
  req.set_value(*std::move(value));
  absl::StatusOr<farm::v1::SetSecretResponse> resp =
      session.CallOnce(&farm::v1::AdminService::Stub::SetSecret, session.client().admin(), req);
  if (!resp.ok()) return session.Fail(resp.status());
  if (session.json()) return session.Print(ToJson(*resp));
  return session.Print(
      absl::StrCat("secret ", resp->info().name(), " set (key ", resp->info().key_id(), ")\n"));
}

int SecretList(Session& session) {
  absl::StatusOr<farm::v1::ListSecretsResponse> resp =
      session.CallOnce(&farm::v1::AdminService::Stub::ListSecrets, session.client().admin(),
                       farm::v1::ListSecretsRequest());
  if (!resp.ok()) return session.Fail(resp.status());
  if (session.json()) return session.Print(ToJson(*resp));
  const TextContext context = session.Context();
  std::string text =
      absl::StrFormat("%-32s  %-8s  %-8s  %-8s  %s\n", "NAME", "KEY", "CREATED", "UPDATED", "BY");
  for (const farm::v1::SecretInfo& s : resp->secrets()) {
    absl::StrAppend(&text, absl::StrFormat("%-32s  %-8s  %-8s  %-8s  %s\n", OneLine(s.name()),
                                           s.key_id(), FormatAge(context.now_ms - s.created_ms()),
                                           FormatAge(context.now_ms - s.updated_ms()),
                                           OneLine(s.updated_by())));
  }
  if (resp->secrets().empty()) text = "no secrets\n";
  return session.Print(text);
}

int SecretRm(Session& session) {
  farm::v1::DeleteSecretRequest req;
  req.set_name(session.options().secret_name);
  absl::StatusOr<farm::v1::DeleteSecretResponse> resp =
      session.CallOnce(&farm::v1::AdminService::Stub::DeleteSecret, session.client().admin(), req);
  if (!resp.ok()) return session.Fail(resp.status());
  if (session.json()) return session.Print(ToJson(*resp));
  return session.Print(absl::StrCat("removed secret ", resp->deleted().name(), "\n"));
}

}  // namespace

void RegisterSecretCommands(std::vector<CommandDef>& table) {
  table.push_back(
      {"secret set",
       Command::kSecretSet,
       {"NAME"},
       false,
       {},
       "NAME < FILE",
       "create or replace a secret; the value is read from stdin (role admin)",
       "NAME is [A-Z_][A-Z0-9_]* (at most 128 bytes, not FARM_...): jobs that list it\n"
       "under `secrets:` get it as the environment variable NAME, and every occurrence\n"
       "of the value in their output is shown as [REDACTED]. The value is all of stdin\n"
       "less one trailing newline (the one echo or Enter adds): 6 bytes to 64 KiB.\n"
       "Example: printf %s \"$TOKEN\" | farmctl secret set DEPLOY_TOKEN\n",
       SecretSet});
  table.push_back({"secret list",
                   Command::kSecretList,
                   {},
                   false,
                   {},
                   "",
                   "every secret: name, key id, age, last update; never a value",
                   "",
                   SecretList});
  table.push_back({"secret rm",
                   Command::kSecretRm,
                   {"NAME"},
                   false,
                   {},
                   "NAME",
                   "remove a secret: jobs that name it are refused at submit",
                   "",
                   SecretRm});
}

}  // namespace farm::cli
