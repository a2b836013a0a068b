#include "coordinator/auth/identify.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace farm::coordinator {
namespace {

constexpr absl::string_view kUriPrefix = "farm://";
constexpr absl::string_view kBearer = "Bearer ";

}  // namespace

absl::StatusOr<Principal> ParseFarmUri(absl::string_view uri) {
  if (!absl::StartsWith(uri, kUriPrefix)) {
    return absl::InvalidArgumentError("not a farm://ROLE/NAME URI");
  }
  absl::string_view rest = uri.substr(kUriPrefix.size());
  const size_t slash = rest.find('/');
  if (slash == absl::string_view::npos) {
    return absl::InvalidArgumentError("a farm:// URI is farm://ROLE/NAME");
  }
  Principal p;
  absl::StatusOr<Role> role = ParseRole(rest.substr(0, slash));
  if (!role.ok()) return role.status();
  p.role = *role;
  p.name = std::string(rest.substr(slash + 1));
  if (absl::Status s = CheckPrincipalName(p.name); !s.ok()) return s;
  return p;
}

absl::StatusOr<Principal> IdentifyCaller(const TokenRegistry& tokens,
                                         absl::string_view authorization,
                                         const std::vector<absl::string_view>& sans,
                                         bool has_certificate) {
  if (!authorization.empty()) {
    if (!absl::StartsWith(authorization, kBearer)) {
      return absl::UnauthenticatedError("the authorization header is not \"Bearer TOKEN\"");
    }
    return tokens.Authenticate(authorization.substr(kBearer.size()));
  }
  for (absl::string_view san : sans) {
    if (!absl::StartsWith(san, kUriPrefix)) continue;
    absl::StatusOr<Principal> p = ParseFarmUri(san);
    if (!p.ok()) {
      return absl::UnauthenticatedError(
          absl::StrCat("the client certificate's URI: ", p.status().message()));
    }
    return p;
  }
  if (has_certificate || !sans.empty()) {
    return absl::UnauthenticatedError(
        "the client certificate has no farm://ROLE/NAME URI in its subject alternative names");
  }
  return absl::NotFoundError("no credential");
}

}  // namespace farm::coordinator
