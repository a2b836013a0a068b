#include "coordinator/http/web_auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/digest.h"
#include "coordinator/auth/identify.h"

namespace farm::coordinator {
namespace {

std::string RandomText(size_t bytes) {
  std::string raw(bytes, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()), static_cast<int>(bytes)) != 1) {
    // No randomness: nothing here is safe to hand out.
    std::abort();
  }
  return raw;
}

std::string Header(const common::HttpServer::Request& req, const char* name) {
  auto it = req.headers.find(name);
  return it == req.headers.end() ? "" : it->second;
}

}  // namespace

WebAuth::WebAuth(const TokenRegistry* tokens, const common::Clock* clock, bool insecure)
    : tokens_(tokens), clock_(clock), insecure_(insecure), csrf_key_(RandomText(32)) {}

std::string WebAuth::CsrfFor(absl::string_view subject) const {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), csrf_key_.data(), static_cast<int>(csrf_key_.size()),
       reinterpret_cast<const unsigned char*>(subject.data()), subject.size(), mac, &len);
  return common::HexEncode(mac, len);
}

std::optional<std::string> WebAuth::SessionId(const common::HttpServer::Request& req) const {
  for (absl::string_view part : absl::StrSplit(Header(req, "cookie"), ';')) {
    part = absl::StripAsciiWhitespace(part);
    if (absl::ConsumePrefix(&part, kCookie) && absl::ConsumePrefix(&part, "=")) {
      return std::string(part);
    }
  }
  return std::nullopt;
}

absl::StatusOr<WebAuth::Caller> WebAuth::Identify(const common::HttpServer::Request& req) const {
  Caller caller;
  if (insecure_) {
    caller.principal.name = "insecure";
    caller.csrf = CsrfFor("insecure");
    return caller;
  }
  const std::string authorization = Header(req, "authorization");
  if (!authorization.empty()) {
    absl::StatusOr<Principal> who = IdentifyCaller(*tokens_, authorization, {}, false);
    if (!who.ok()) return who.status();
    caller.principal = *std::move(who);
    caller.bearer = true;
    return caller;
  }
  if (std::optional<std::string> id = SessionId(req); id.has_value()) {
    std::string token;
    {
      absl::MutexLock lock(&mu_);
      auto it = sessions_.find(*id);
      if (it != sessions_.end() && it->second.expires_ms > clock_->NowMs())
        token = it->second.token;
    }
    if (!token.empty()) {
      absl::StatusOr<Principal> who = tokens_->Authenticate(token);
      if (!who.ok())
        return absl::UnauthenticatedError(
            "the token this session signed in with is "
            "no longer valid: sign in again");
      caller.principal = *std::move(who);
      caller.signed_in = true;
      caller.csrf = CsrfFor(absl::StrCat("session:", *id));
      return caller;
    }
  }
  std::vector<absl::string_view> sans(req.peer_uris.begin(), req.peer_uris.end());
  absl::StatusOr<Principal> who = IdentifyCaller(*tokens_, "", sans, req.peer_certificate);
  if (!who.ok()) return who.status();
  caller.principal = *std::move(who);
  caller.csrf =
      CsrfFor(absl::StrCat("cert:", RoleName(caller.principal.role), "/", caller.principal.name));
  return caller;
}

absl::StatusOr<std::string> WebAuth::SignIn(const std::string& token) {
  if (insecure_) return absl::FailedPreconditionError("no sign-in without TLS: everyone is admin");
  const std::string text(absl::StripAsciiWhitespace(token));
  if (text.empty()) return absl::InvalidArgumentError("give a token to sign in with");
  absl::StatusOr<Principal> who = tokens_->Authenticate(text);
  if (!who.ok()) return absl::UnauthenticatedError("that token is not valid (revoked, expired?)");
  const std::string id = absl::WebSafeBase64Escape(RandomText(32));
  const int64_t now = clock_->NowMs();
  {
    absl::MutexLock lock(&mu_);
    if (sessions_.size() >= kMaxSessions) {
      // Expired ones first; if none, the one that ends soonest.
      auto oldest = sessions_.begin();
      for (auto it = sessions_.begin(); it != sessions_.end(); ++it) {
        if (it->second.expires_ms < oldest->second.expires_ms) oldest = it;
      }
      OPENSSL_cleanse(oldest->second.token.data(), oldest->second.token.size());
      sessions_.erase(oldest);
    }
    sessions_[id] = Session{text, now + kSessionMs};
  }
  return absl::StrCat(kCookie, "=", id, "; Path=/; Max-Age=", kSessionMs / 1000,
                      "; HttpOnly; Secure; SameSite=Strict");
}

std::string WebAuth::SignOut(const common::HttpServer::Request& req) {
  if (std::optional<std::string> id = SessionId(req); id.has_value()) {
    absl::MutexLock lock(&mu_);
    if (auto it = sessions_.find(*id); it != sessions_.end()) {
      OPENSSL_cleanse(it->second.token.data(), it->second.token.size());
      sessions_.erase(it);
    }
  }
  return absl::StrCat(kCookie, "=; Path=/; Max-Age=0; HttpOnly", insecure_ ? "" : "; Secure",
                      "; SameSite=Strict");
}

absl::Status WebAuth::CheckOrigin(const common::HttpServer::Request& req) const {
  const std::string origin = Header(req, "origin");
  if (!origin.empty() && origin != "null") {
    absl::string_view host = origin;
    if (!absl::ConsumePrefix(&host, "https://")) absl::ConsumePrefix(&host, "http://");
    if (host != Header(req, "host")) {
      return absl::PermissionDeniedError(
          absl::StrCat("a request from another site (", origin, ") may not change anything"));
    }
  }
  return absl::OkStatus();
}

absl::Status WebAuth::CheckCsrf(const Caller& caller,
                                const common::HttpServer::Request& req) const {
  if (caller.bearer) return absl::OkStatus();
  if (absl::Status origin = CheckOrigin(req); !origin.ok()) return origin;
  const std::string sent = Header(req, "x-farm-csrf");
  if (sent.size() != caller.csrf.size() || caller.csrf.empty() ||
      CRYPTO_memcmp(sent.data(), caller.csrf.data(), sent.size()) != 0) {
    return absl::PermissionDeniedError(
        "the request lacks this page's X-Farm-CSRF token: reload the page");
  }
  return absl::OkStatus();
}

}  // namespace farm::coordinator
