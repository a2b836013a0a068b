// The certs group: `certs init` makes a new CA, the coordinator's certificate, an admin client
// certificate and the secrets key file in a directory (common/certs.h). It runs locally and
// never calls the coordinator.
#include <google/protobuf/struct.pb.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/certs.h"
#include "coordinator/cli/command_table.h"
#include "coordinator/cli/format.h"
#include "coordinator/cli/session.h"

namespace farm::cli {
namespace {

// What each file is for, in the order certs init writes them.
struct FileUse {
  const char* name;
  const char* use;
};
constexpr FileUse kFileUses[] = {
    {common::kCaCertFile,
     "the CA certificate: --tls_ca of the agents and farmctl, and the "
     "coordinator's --tls_client_ca"},
    {common::kCaKeyFile, "the CA's key: signs more certificates; keep it offline"},
    {common::kCoordinatorCertFile, "the coordinator's --tls_cert"},
    {common::kCoordinatorKeyFile, "the coordinator's --tls_key"},
    {common::kAdminCertFile, "farmctl's --tls_cert: the identity farm://admin/admin"},
    {common::kAdminKeyFile, "farmctl's --tls_key"},
    {common::kSecretsKeyFile, "the coordinator's --secrets_key_file"},
};

std::string CertsJson(const common::CertsOptions& certs) {
  google::protobuf::Struct result;
  auto& fields = *result.mutable_fields();
  fields["dir"].set_string_value(certs.dir);
  for (const std::string& host : certs.hosts) {
    fields["hosts"].mutable_list_value()->add_values()->set_string_value(host);
  }
  for (const FileUse& file : kFileUses) {
    fields["files"].mutable_list_value()->add_values()->set_string_value(file.name);
  }
  return ToJson(result);
}

std::string CertsText(const common::CertsOptions& certs) {
  std::string text = absl::StrCat(
      "wrote to ", certs.dir, " (coordinator hosts: ", absl::StrJoin(certs.hosts, ", "), "):\n");
  for (const FileUse& file : kFileUses) {
    std::string name = file.name;
    name.resize(16, ' ');
    absl::StrAppend(&text, "  ", name, "  ", file.use, "\n");
  }
  return text;
}

int CertsInit(Session& session) {
  common::CertsOptions certs;
  certs.dir = session.options().certs_dir;
  if (!session.options().hosts.empty()) certs.hosts = session.options().hosts;
  const absl::Status status = common::InitCerts(certs);
  if (!status.ok()) {
    session.io().err << "farmctl: certs init: " << OneLine(status.message()) << "\n";
    session.io().err.flush();
    return kExitError;
  }
  return session.Print(session.json() ? CertsJson(certs) : CertsText(certs));
}

}  // namespace

void RegisterCertsCommands(std::vector<CommandDef>& table) {
  table.push_back(
      {"certs init",
       Command::kCertsInit,
       {},
       false,
       {"dir", "hosts"},
       "--dir=DIR [--hosts=NAMES]",
       "make a CA, the coordinator's and an admin certificate, and a secrets key",
       "Writes into DIR (made with mode 0700 if missing): ca.crt and ca.key (a new CA),\n"
       "coordinator.crt and .key (a server certificate for NAMES: host names and IP\n"
       "addresses, comma-separated; default localhost,127.0.0.1), admin.crt and .key (a\n"
       "client certificate for the identity farm://admin/admin) and secrets.key (32\n"
       "random bytes in base64, for the coordinator's --secrets_key_file). Keys are\n"
       "ECDSA P-256; the CA is valid for 10 years, the others for 825 days. Private\n"
       "keys and secrets.key get mode 0600. Runs locally: no coordinator is needed.\n"
       "It never overwrites: if any of the files exists it writes nothing and fails.\n",
       CertsInit,
       /*needs_coordinator=*/false});
}

}  // namespace farm::cli
