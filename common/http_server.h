// The daemons' HTTP port: /metrics and /healthz, and on the coordinator the web pages later. A
// small server over cpp-httplib (Debian's libcpp-httplib); no other file includes httplib.h.
//
// TLS: with `Options::tls`, HTTPS with that material's identity, read again at every handshake,
// so a TlsMaterial::Update (SIGHUP) reaches new connections as it does the gRPC port's; when
// the material has roots, a client may present a certificate, verified against them, whose SAN
// URIs the handler sees (Request::peer_uris). A client without one is let in: the handler
// decides (a bearer token, or a public path).
//
// Routes: a path is served by its exact route, else by the longest route "PREFIX/*" it lies
// under ("/jobs/*" serves /jobs/12 and /jobs/12/log, not /jobs); the handler reads the path.
//
// Limits: requests are GET or POST; a body over kMaxBodyBytes is refused (413);
// a connection idle for 5 s is closed; at most kThreads requests are served at once, the rest
// wait in the kernel's backlog.
//
// Thread-safety: handlers run on the server's threads, several at once. Stop (or the
// destructor) returns once no handler runs.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "common/tls_material.h"

namespace httplib {
class Server;
}  // namespace httplib

namespace farm::common {

class HttpServer {
 public:
  static constexpr size_t kMaxBodyBytes = 1 << 20;
  static constexpr int kThreads = 8;

  struct Request {
    std::string method;  // GET or POST
    std::string path;
    std::map<std::string, std::string> query;
    std::map<std::string, std::string> headers;  // names lower-case
    std::string body;
    std::string remote_addr;
    bool peer_certificate = false;       // the client presented a certificate that verified
    std::vector<std::string> peer_uris;  // its SAN URIs
  };
  struct Response {
    int status = 200;
    std::string content_type = "text/plain; charset=utf-8";
    std::string body;
    std::map<std::string, std::string> headers;
  };
  using Handler = std::function<Response(const Request&)>;

  struct Options {
    std::string listen;                // HOST:PORT; port 0 picks a free one
    std::shared_ptr<TlsMaterial> tls;  // null: plain HTTP
    std::map<std::string, Handler> get;
    std::map<std::string, Handler> post;
  };

  // Binds and serves. INVALID_ARGUMENT for a listen address that is not HOST:PORT;
  // UNAVAILABLE when it cannot be bound (named in the message).
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(Options options);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // The port bound (the one picked for port 0).
  int port() const { return port_; }
  // HOST:PORT as bound, for logs and port files.
  const std::string& address() const { return address_; }
  void Stop();

 private:
  HttpServer() = default;

  std::shared_ptr<void> tls_state_;  // the TLS context's certificate callback's (http_server.cc)
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;
  std::string address_;
};

// Splits "HOST:PORT" ("[::1]:0" for IPv6); INVALID_ARGUMENT naming `flag` otherwise.
absl::StatusOr<std::pair<std::string, int>> SplitHostPort(const std::string& address,
                                                          const std::string& flag);

}  // namespace farm::common
