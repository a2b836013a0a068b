// The token group (role admin): `token create`, `token list`, `token revoke` over
// AdminService. A token is shown once, by `create`, on stdout alone (so that it can be
// redirected into a file); the coordinator keeps only its hash.
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "common/duration.h"
#include "coordinator/cli/command_table.h"
#include "coordinator/cli/format.h"
#include "coordinator/cli/session.h"

namespace farm::cli {
namespace {

std::string Expiry(int64_t expires_ms, const TextContext& context) {
  if (expires_ms == 0) return "never";
  const std::string when =
      absl::FormatTime("%Y-%m-%d %H:%M %Z", absl::FromUnixMillis(expires_ms), context.time_zone);
  return expires_ms <= context.now_ms ? absl::StrCat(when, " (expired)") : when;
}

int TokenCreate(Session& session) {
  const CliOptions& o = session.options();
  farm::v1::CreateTokenRequest req;
  req.set_name(o.token_name);
  req.set_role(o.token_role);
  req.set_ttl_ms(o.token_ttl_ms);
  absl::StatusOr<farm::v1::CreateTokenResponse> resp =
      session.CallOnce(&farm::v1::AdminService::Stub::CreateToken, session.client().admin(), req);
  if (!resp.ok()) return session.Fail(resp.status());
  if (session.json()) return session.Print(ToJson(*resp));
  const farm::v1::TokenInfo& info = resp->info();
  session.io().err << "token " << info.id() << " for " << info.name() << " (role " << info.role()
                   << ", expires " << Expiry(info.expires_ms(), session.Context())
                   << "): it is shown only this once\n";
  session.io().err.flush();
  return session.Print(resp->token() + "\n");
}

int TokenList(Session& session) {
  absl::StatusOr<farm::v1::ListTokensResponse> resp =
      session.CallOnce(&farm::v1::AdminService::Stub::ListTokens, session.client().admin(),
                       farm::v1::ListTokensRequest());
  if (!resp.ok()) return session.Fail(resp.status());
  if (session.json()) return session.Print(ToJson(*resp));
  const TextContext context = session.Context();
  std::string text = absl::StrCat(
      absl::StrFormat("%-12s  %-24s  %-9s  %-8s  %s\n", "ID", "NAME", "ROLE", "AGE", "EXPIRES"));
  for (const farm::v1::TokenInfo& t : resp->tokens()) {
    // An enrollment token has no holder until an agent uses it.
    const std::string name = t.kind().empty() ? OneLine(t.name())
                             : t.used_by().empty()
                                 ? "(enrollment, unused)"
                                 : absl::StrCat("(enrollment, used by ", OneLine(t.used_by()), ")");
    absl::StrAppend(&text, absl::StrFormat("%-12s  %-24s  %-9s  %-8s  %s\n", t.id(), name, t.role(),
                                           FormatAge(context.now_ms - t.created_ms()),
                                           Expiry(t.expires_ms(), context)));
  }
  if (resp->tokens().empty()) text = "no tokens\n";
  return session.Print(text);
}

int TokenRevoke(Session& session) {
  farm::v1::RevokeTokenRequest req;
  req.set_id(session.options().token_id);
  absl::StatusOr<farm::v1::RevokeTokenResponse> resp =
      session.CallOnce(&farm::v1::AdminService::Stub::RevokeToken, session.client().admin(), req);
  if (!resp.ok()) return session.Fail(resp.status());
  if (session.json()) return session.Print(ToJson(*resp));
  return session.Print(absl::StrCat("revoked token ", resp->revoked().id(), " of ",
                                    resp->revoked().name(), " (role ", resp->revoked().role(),
                                    ")\n"));
}

}  // namespace

void RegisterTokenCommands(std::vector<CommandDef>& table) {
  table.push_back({"token create",
                   Command::kTokenCreate,
                   {},
                   false,
                   {"role", "name", "ttl"},
                   "--role=ROLE --name=NAME [--ttl=90d]",
                   "a new token: printed once on stdout (role admin)",
                   "ROLE is viewer, submitter, agent or admin; an agent's token carries the "
                   "agent's name.\n--ttl: how long it is valid (e.g. 12h, 90d); none: it never "
                   "expires.\n",
                   TokenCreate});
  table.push_back({"token list",
                   Command::kTokenList,
                   {},
                   false,
                   {},
                   "",
                   "every token: id, name, role, age and expiry, never the token itself",
                   "",
                   TokenList});
  table.push_back({"token revoke",
                   Command::kTokenRevoke,
                   {"ID"},
                   false,
                   {},
                   "ID",
                   "revoke a token: its next call is refused",
                   "ID is the 12 hex digits `token list` shows.\n",
                   TokenRevoke});
}

}  // namespace farm::cli
