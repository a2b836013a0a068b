#include "coordinator/service/authenticator.h"

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "coordinator/auth/authz_table.h"
#include "coordinator/auth/identify.h"

namespace farm::coordinator {
namespace {

absl::string_view View(const grpc::string_ref& s) { return absl::string_view(s.data(), s.size()); }

absl::string_view Find(const grpc::AuthMetadataProcessor::InputMetadata& md,
                       absl::string_view key) {
  auto it = md.find(grpc::string_ref(key.data(), key.size()));
  return it == md.end() ? absl::string_view() : View(it->second);
}

}  // namespace

absl::StatusOr<Principal> Authenticator::Identify(absl::string_view authorization,
                                                  const grpc::AuthContext& connection) const {
  std::vector<absl::string_view> sans;
  for (const grpc::string_ref& san :
       connection.FindPropertyValues("x509_subject_alternative_name")) {
    sans.push_back(View(san));
  }
  // A certificate without any SAN still has a subject.
  const bool has_certificate = !connection.FindPropertyValues("x509_subject").empty();
  return IdentifyCaller(*tokens_, authorization, sans, has_certificate);
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
