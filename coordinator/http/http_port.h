// The coordinator's HTTP port (--http_listen): the monitoring pages and the web dashboard,
// served by common::HttpServer with the gRPC port's TLS material and the same identities and
// table.
//   GET /healthz  public: "ok" while the coordinator serves;
//   GET /metrics  the Prometheus exposition (text format 0.0.4) of the coordinator's metrics,
//                 for any role the authorization table allows (a scraper's token, role viewer);
//   the dashboard's pages and API (web_app.h), when `web` has a scheduler.
// A call is identified as on the gRPC port (auth/identify.h: "Authorization: Bearer TOKEN", else
// the client certificate's farm:// URI) and judged by the one table (auth/authz_table.h, by
// "METHOD /path"): no credential 401, a bad one 401, a role the table refuses 403, a path that
// is not served 404. With --insecure (plain HTTP, loopback only) every caller is admin.
// Thread-safe; pages run on the HTTP server's threads.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/http_server.h"
#include "common/metrics.h"
#include "common/tls_material.h"
#include "coordinator/auth/token_registry.h"
#include "coordinator/http/web_app.h"

namespace farm::coordinator {

class HttpPort {
 public:
  struct Options {
    std::string listen;                        // HOST:PORT; port 0 picks a free one
    std::shared_ptr<common::TlsMaterial> tls;  // null: --insecure (plain HTTP, every caller admin)
    const TokenRegistry* tokens = nullptr;     // not owned; outlives the port
    const common::metrics::Registry* metrics = nullptr;  // not owned; outlives the port
    WebApp::Sources web;  // its `auth` is the port's own; no scheduler: no dashboard
  };

  // The pages, as the authorization table names them ("GET /metrics").
  static std::vector<std::string> Served();

  // Binds and serves. Errors as HttpServer::Start.
  static absl::StatusOr<std::unique_ptr<HttpPort>> Start(Options options);

  const std::string& address() const { return server_->address(); }
  void Stop() { server_->Stop(); }

 private:
  explicit HttpPort(Options options) : options_(std::move(options)) {}
  // The caller's verdict for `entry` ("GET /metrics"): null when allowed, else the response.
  std::unique_ptr<common::HttpServer::Response> Refusal(
      const std::string& entry, const common::HttpServer::Request& req) const;
  common::HttpServer::Response Metrics(const common::HttpServer::Request& req) const;

  const Options options_;
  std::unique_ptr<WebAuth> web_auth_;
  std::unique_ptr<WebApp> web_;
  std::unique_ptr<common::HttpServer> server_;
};

}  // namespace farm::coordinator
