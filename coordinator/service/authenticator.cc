#include "coordinator/service/authenticator.h"

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "coordinator/auth/authz_table.h"

namespace farm::coordinator {
namespace {

constexpr absl::string_view kUriPrefix = "farm://";
constexpr absl::string_view kBearer = "Bearer ";

absl::string_view View(const grpc::string_ref& s) { return absl::string_view(s.data(), s.size()); }

absl::string_view Find(const grpc::AuthMetadataProcessor::InputMetadata& md,
                       absl::string_view key) {
  auto it = md.find(grpc::string_ref(key.data(), key.size()));
  return it == md.end() ? absl::string_view() : View(it->second);
}

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

absl::StatusOr<Principal> Authenticator::Identify(absl::string_view authorization,
                                                  const grpc::AuthContext& connection) const {
  if (!authorization.empty()) {
    if (!absl::StartsWith(authorization, kBearer)) {
      return absl::UnauthenticatedError("the authorization header is not \"Bearer TOKEN\"");
    }
    return tokens_->Authenticate(authorization.substr(kBearer.size()));
  }
  bool has_certificate = false;
  for (const grpc::string_ref& san :
       connection.FindPropertyValues("x509_subject_alternative_name")) {
    has_certificate = true;
    if (!absl::StartsWith(View(san), kUriPrefix)) continue;
    absl::StatusOr<Principal> p = ParseFarmUri(View(san));
    if (!p.ok()) {
      return absl::UnauthenticatedError(
          absl::StrCat("the client certificate's URI: ", p.status().message()));
    }
    return p;
  }
  // A certificate without any SAN still has a subject.
  if (has_certificate || !connection.FindPropertyValues("x509_subject").empty()) {
    return absl::UnauthenticatedError(
        "the client certificate has no farm://ROLE/NAME URI in its subject alternative names");
  }
  return absl::NotFoundError("no credential");
}

grpc::Status Authenticator::Process(const InputMetadata& auth_metadata, grpc::AuthContext* context,
                                    OutputMetadata*, OutputMetadata*) {
  const absl::string_view method = Find(auth_metadata, ":path");
  const AuthzEntry* entry = FindAuthz(method);
  absl::StatusOr<Principal> caller = Identify(Find(auth_metadata, "authorization"), *context);
  if (absl::IsNotFound(caller.status())) {
    if (entry != nullptr && entry->is_public) return grpc::Status::OK;
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "no credential: present a client certificate (--tls_cert, --tls_key) or "
                        "a token (--token_file or FARM_TOKEN)");
  }
  if (!caller.ok()) return common::ToGrpcStatus(caller.status());
  if (entry == nullptr || !entry->allowed[static_cast<int>(caller->role)]) {
    return grpc::Status(
        grpc::StatusCode::PERMISSION_DENIED,
        absl::StrCat("role ", RoleName(caller->role), " (", caller->name, ") may not call ",
                     method.empty() ? "?" : absl::CHexEscape(method.substr(1, 200))));
  }
  return grpc::Status::OK;
}

absl::StatusOr<Principal> Authenticator::CallerOf(const grpc::ServerContextBase& ctx) const {
  if (!enabled_) return Principal{Role::kAdmin, "", {}};
  absl::string_view authorization;
  const auto& md = ctx.client_metadata();
  if (auto it = md.find("authorization"); it != md.end()) authorization = View(it->second);
  std::shared_ptr<const grpc::AuthContext> connection = ctx.auth_context();
  if (connection == nullptr) return absl::UnauthenticatedError("no credential");
  absl::StatusOr<Principal> caller = Identify(authorization, *connection);
  if (absl::IsNotFound(caller.status())) return absl::UnauthenticatedError("no credential");
  return caller;
}

}  // namespace farm::coordinator
