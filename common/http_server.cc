#include "common/http_server.h"

#include <httplib.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>

#include <chrono>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/logging.h"
#include "common/openssl_ptr.h"

namespace farm::common {
namespace {

// A certificate chain frees its certificates too.
struct ChainFree {
  void operator()(STACK_OF(X509) * c) const { sk_X509_pop_free(c, X509_free); }
};

// The material's identity and roots as OpenSSL objects, parsed again when its generation
// changes; applied to each connection from the TLS context's certificate callback.
class TlsState {
 public:
  explicit TlsState(std::shared_ptr<TlsMaterial> material) : material_(std::move(material)) {}

  // SSL_CTX_set_cert_cb's callback: 1 when `ssl` has the current identity, 0 to fail the
  // handshake.
  static int OnCertificate(SSL* ssl, void* arg) { return static_cast<TlsState*>(arg)->Apply(ssl); }

 private:
  int Apply(SSL* ssl) {
    absl::MutexLock lock(&mu_);
    const TlsMaterial::Pems pems = material_->Current();
    if (pems.generation != generation_) {
      if (absl::Status s = Parse(pems); !s.ok()) {
        FARM_LOG(ERROR) << "HTTPS: " << s.message();
        return 0;
      }
      generation_ = pems.generation;
    }
    if (SSL_use_cert_and_key(ssl, cert_.get(), key_.get(), chain_.get(), 1) != 1) return 0;
    if (store_ != nullptr && SSL_set1_verify_cert_store(ssl, store_.get()) != 1) return 0;
    return 1;
  }

  absl::Status Parse(const TlsMaterial::Pems& pems) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto bio = PemBio(pems.identity);
    KeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
    X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    if (key == nullptr || cert == nullptr) {
      ERR_clear_error();
      return absl::InvalidArgumentError("the TLS identity holds no key and certificate");
    }
    std::unique_ptr<STACK_OF(X509), ChainFree> chain(sk_X509_new_null());
    while (X509* extra = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
      sk_X509_push(chain.get(), extra);
    }
    ERR_clear_error();  // the end of the PEM text
    X509StorePtr store;
    if (!pems.roots.empty()) {
      store.reset(X509_STORE_new());
      auto roots = PemBio(pems.roots);
      while (X509* ca = PEM_read_bio_X509(roots.get(), nullptr, nullptr, nullptr)) {
        X509_STORE_add_cert(store.get(), ca);
        X509_free(ca);
      }
      ERR_clear_error();
    }
    key_ = std::move(key);
    cert_ = std::move(cert);
    chain_ = std::move(chain);
    store_ = std::move(store);
    return absl::OkStatus();
  }

  const std::shared_ptr<TlsMaterial> material_;
  absl::Mutex mu_;
  int64_t generation_ ABSL_GUARDED_BY(mu_) = -1;
  KeyPtr key_ ABSL_GUARDED_BY(mu_);
  X509Ptr cert_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<STACK_OF(X509), ChainFree> chain_ ABSL_GUARDED_BY(mu_);
  X509StorePtr store_ ABSL_GUARDED_BY(mu_);
};

// The SAN URIs of the connection's client certificate, when it sent one that verified.
std::vector<std::string> PeerUris(X509* peer) {
  std::vector<std::string> uris;
  GeneralNamesPtr names(
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(peer, NID_subject_alt_name, nullptr, nullptr)));
  if (names == nullptr) return uris;
  for (int i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names.get(), i);
    if (name->type != GEN_URI) continue;
    const ASN1_IA5STRING* uri = name->d.uniformResourceIdentifier;
    uris.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(uri)),
                      static_cast<size_t>(ASN1_STRING_length(uri)));
  }
  return uris;
}

HttpServer::Request ToRequest(const httplib::Request& req) {
  HttpServer::Request r;
  r.method = req.method;
  r.path = req.path;
  for (const auto& [k, v] : req.params) r.query.emplace(k, v);
  for (const auto& [k, v] : req.headers) r.headers.emplace(absl::AsciiStrToLower(k), v);
  r.body = req.body;
  r.remote_addr = req.remote_addr;
  if (req.ssl != nullptr && SSL_get_verify_result(req.ssl) == X509_V_OK) {
    if (X509* peer = SSL_get0_peer_certificate(req.ssl); peer != nullptr) {
      r.peer_certificate = true;
      r.peer_uris = PeerUris(peer);
    }
  }
  return r;
}

void Reply(const HttpServer::Response& from, httplib::Response& to) {
  to.status = from.status;
  for (const auto& [k, v] : from.headers) to.set_header(k, v);
  to.set_content(from.body, from.content_type.c_str());
}

// The route of `path`: its exact one, else the longest "PREFIX/*" it is under.
const HttpServer::Handler* FindRoute(const std::map<std::string, HttpServer::Handler>& routes,
                                     const std::string& path) {
  if (auto it = routes.find(path); it != routes.end()) return &it->second;
  for (size_t slash = path.rfind('/'); slash != std::string::npos;
       slash = slash == 0 ? std::string::npos : path.rfind('/', slash - 1)) {
    if (auto it = routes.find(path.substr(0, slash + 1) + "*"); it != routes.end()) {
      return &it->second;
    }
  }
  return nullptr;
}

httplib::Server::Handler Route(std::map<std::string, HttpServer::Handler> routes) {
  return [routes = std::move(routes)](const httplib::Request& req, httplib::Response& res) {
    const HttpServer::Handler* handler = FindRoute(routes, req.path);
    if (handler == nullptr) {
      Reply({404, "text/plain; charset=utf-8", absl::StrCat("no such page: ", req.path, "\n"), {}},
            res);
      return;
    }
    Reply((*handler)(ToRequest(req)), res);
  };
}

}  // namespace

absl::StatusOr<std::pair<std::string, int>> SplitHostPort(const std::string& address,
                                                          const std::string& flag) {
  const size_t colon = address.rfind(':');
  int port = -1;
  if (colon == std::string::npos || colon == 0 ||
      !absl::SimpleAtoi(address.substr(colon + 1), &port) || port < 0 || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, " takes HOST:PORT (port 0 picks one), not \"", address, "\""));
  }
  std::string host = address.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  return std::make_pair(host, port);
}

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(Options options) {
  absl::StatusOr<std::pair<std::string, int>> host_port =
      SplitHostPort(options.listen, "--http_listen");
  if (!host_port.ok()) return host_port.status();
  const auto [host, port] = *std::move(host_port);
  std::unique_ptr<HttpServer> server(new HttpServer());
  if (options.tls != nullptr) {
    auto state = std::make_shared<TlsState>(options.tls);
    const bool verify_clients = options.tls->has_roots();
    server->server_ = std::make_unique<httplib::SSLServer>([state, verify_clients](SSL_CTX& ctx) {
      SSL_CTX_set_min_proto_version(&ctx, TLS1_2_VERSION);
      SSL_CTX_set_cert_cb(&ctx, &TlsState::OnCertificate, state.get());
      // A certificate is asked for and verified, not required: a token may stand in for it.
      if (verify_clients) SSL_CTX_set_verify(&ctx, SSL_VERIFY_PEER, nullptr);
      // A browser resumes its TLS session on every further connection (a page's script and
      // style); with client certificates asked for, OpenSSL refuses to resume a session that
      // carries no context id, and the browser sees a protocol error.
      static constexpr unsigned char kSessionContext[] = "farm-http";
      SSL_CTX_set_session_id_context(&ctx, kSessionContext, sizeof(kSessionContext) - 1);
      return true;
    });
    server->tls_state_ = state;  // the context's callback uses it as long as the server lives
  } else {
    server->server_ = std::make_unique<httplib::Server>();
  }
  httplib::Server& s = *server->server_;
  if (!s.is_valid()) return absl::InternalError("cannot make the HTTP server's TLS context");
  // SO_REUSEADDR only: httplib's default, SO_REUSEPORT, would let a second process bind the same
  // port and take half of its connections.
  s.set_socket_options([](int sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  s.new_task_queue = [] { return new httplib::ThreadPool(kThreads); };
  s.set_payload_max_length(kMaxBodyBytes);
  s.set_keep_alive_timeout(5);
  s.set_read_timeout(5);
  s.set_write_timeout(5);
  s.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
    Reply({500, "text/plain; charset=utf-8", "internal error\n", {}}, res);
  });
  s.Get(".*", Route(std::move(options.get)));
  s.Post(".*", Route(std::move(options.post)));
  const int bound = port == 0 ? s.bind_to_any_port(host) : (s.bind_to_port(host, port) ? port : -1);
  if (bound < 0) {
    return absl::UnavailableError(absl::StrCat("--http_listen: cannot listen on ", options.listen));
  }
  server->port_ = bound;
  server->address_ = host.find(':') != std::string::npos ? absl::StrCat("[", host, "]:", bound)
                                                         : absl::StrCat(host, ":", bound);
  server->thread_ = std::thread([&s] { s.listen_after_bind(); });
  // Until the loop runs, httplib's stop() would not end it (and Stop would wait forever).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!s.is_running()) {
    if (std::chrono::steady_clock::now() > deadline) {
      return absl::InternalError("the HTTP server did not start within 10 s");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return server;
}

HttpServer::~HttpServer() { Stop(); }

void HttpServer::Stop() {
  if (server_ != nullptr) server_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace farm::common
