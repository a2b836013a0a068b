#include "coordinator/auth/principal.h"

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace farm::coordinator {
namespace {

std::string PinnedText(const std::map<std::string, std::string>& labels) {
  std::string out;
  for (const auto& [key, value] : labels) {
    absl::StrAppend(&out, out.empty() ? "" : ",", key, "=", value);
  }
  return out;
}

}  // namespace

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

absl::Status CheckClaimedLabels(const Principal& who,
                                const std::map<std::string, std::string>& labels) {
  if (who.pinned_labels.empty()) return absl::OkStatus();
  for (const auto& [key, value] : labels) {
    auto pinned = who.pinned_labels.find(key);
    if (pinned == who.pinned_labels.end()) {
      if (key == "os" || key == "arch") continue;
      return absl::PermissionDeniedError(absl::StrCat(
          "agent ", who.name, " may not claim the label ", absl::CHexEscape(key.substr(0, 64)), "=",
          absl::CHexEscape(value.substr(0, 64)), ": its enrollment pins the labels ",
          PinnedText(who.pinned_labels)));
    }
    if (pinned->second != value) {
      return absl::PermissionDeniedError(absl::StrCat(
          "agent ", who.name, " may not claim the label ", absl::CHexEscape(key.substr(0, 64)), "=",
          absl::CHexEscape(value.substr(0, 64)), ": its enrollment pins ", key, "=",
          pinned->second));
    }
  }
  return absl::OkStatus();
}

}  // namespace farm::coordinator
