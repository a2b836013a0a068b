#include "coordinator/auth/principal.h"

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace farm::coordinator {

absl::string_view RoleName(Role role) {
  switch (role) {
    case Role::kViewer:
      return "viewer";
    case Role::kSubmitter:
      return "submitter";
    case Role::kAgent:
      return "agent";
    case Role::kAdmin:
      return "admin";
  }
  return "?";
}

absl::StatusOr<Role> ParseRole(absl::string_view name) {
  for (Role role : {Role::kViewer, Role::kSubmitter, Role::kAgent, Role::kAdmin}) {
    if (name == RoleName(role)) return role;
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown role \"",
                                                 absl::CHexEscape(name.substr(0, 64)),
                                                 "\": use viewer, submitter, agent or admin"));
}

absl::Status CheckPrincipalName(absl::string_view name) {
  constexpr size_t kMaxName = 64;
  if (name.empty()) return absl::InvalidArgumentError("the name is empty");
  if (name.size() > kMaxName) {
    return absl::InvalidArgumentError(
        absl::StrCat("the name is ", name.size(), " bytes; at most ", kMaxName));
  }
  for (char c : name) {
    if (absl::ascii_isalnum(c) || c == '.' || c == '_' || c == '-') continue;
    return absl::InvalidArgumentError(absl::StrCat("the name \"",
                                                   absl::CHexEscape(name.substr(0, 64)),
                                                   "\" may hold only letters, digits and . _ -"));
  }
  return absl::OkStatus();
}

}  // namespace farm::coordinator
