#include "coordinator/http/http_port.h"

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "coordinator/auth/authz_table.h"
#include "coordinator/auth/identify.h"

namespace farm::coordinator {
namespace {

using Request = common::HttpServer::Request;
using Response = common::HttpServer::Response;

// Prometheus' text format, version 0.0.4.
constexpr char kExpositionType[] = "text/plain; version=0.0.4; charset=utf-8";

std::unique_ptr<Response> Refused(int status, std::string message) {
  auto r = std::make_unique<Response>();
  r->status = status;
  r->body = std::move(message) + "\n";
  if (status == 401) r->headers["WWW-Authenticate"] = "Bearer";
  return r;
}

}  // namespace

std::vector<std::string> HttpPort::Served() {
  std::vector<std::string> served = {"GET /healthz", "GET /metrics"};
  for (std::string& entry : WebApp::Served()) served.push_back(std::move(entry));
  return served;
}

absl::StatusOr<std::unique_ptr<HttpPort>> HttpPort::Start(Options options) {
  std::unique_ptr<HttpPort> port(new HttpPort(std::move(options)));
  HttpPort* self = port.get();
  common::HttpServer::Options server;
  server.listen = self->options_.listen;
  server.tls = self->options_.tls;
  server.get["/healthz"] = [self](const Request& req) {
    if (auto refused = self->Refusal("GET /healthz", req)) return *refused;
    return Response{200, "text/plain; charset=utf-8", "ok\n", {}};
  };
  server.get["/metrics"] = [self](const Request& req) { return self->Metrics(req); };
  if (self->options_.web.scheduler != nullptr) {
    self->web_auth_ = std::make_unique<WebAuth>(self->options_.tokens, common::RealClock(),
                                                self->options_.tls == nullptr);
    WebApp::Sources web = self->options_.web;
    web.auth = self->web_auth_.get();
    self->web_ = std::make_unique<WebApp>(web);
    self->web_->Register(server);
  }
  absl::StatusOr<std::unique_ptr<common::HttpServer>> started =
      common::HttpServer::Start(std::move(server));
  if (!started.ok()) return started.status();
  port->server_ = *std::move(started);
  return port;
}

std::unique_ptr<Response> HttpPort::Refusal(const std::string& entry, const Request& req) const {
  if (options_.tls == nullptr) return nullptr;  // --insecure: every caller is admin
  const AuthzEntry* rule = FindAuthz(entry);
  auto header = req.headers.find("authorization");
  std::vector<absl::string_view> sans(req.peer_uris.begin(), req.peer_uris.end());
  absl::StatusOr<Principal> caller =
      IdentifyCaller(*options_.tokens, header == req.headers.end() ? "" : header->second, sans,
                     req.peer_certificate);
  if (absl::IsNotFound(caller.status())) {
    if (rule != nullptr && rule->is_public) return nullptr;
    return Refused(401,
                   "no credential: send \"Authorization: Bearer TOKEN\" or a client certificate");
  }
  if (!caller.ok()) return Refused(401, std::string(caller.status().message()));
  if (rule == nullptr || !rule->allowed[static_cast<int>(caller->role)]) {
    return Refused(403, absl::StrCat("role ", RoleName(caller->role), " (", caller->name,
                                     ") may not ", entry));
  }
  return nullptr;
}

Response HttpPort::Metrics(const Request& req) const {
  if (auto refused = Refusal("GET /metrics", req)) return *refused;
  return Response{200, kExpositionType, options_.metrics->Expose(), {}};
}

}  // namespace farm::coordinator
