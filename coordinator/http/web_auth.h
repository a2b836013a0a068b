// Who a web request comes from, and the sign-in that makes a browser someone (issue 15).
//
// A request is identified, in order, by:
//   - "Authorization: Bearer TOKEN" (a script, as on /metrics);
//   - the session cookie (farm_session) of a person who signed in with a token: the cookie holds
//     only a random session id; the session keeps the token in memory and checks it again on
//     every request, so a revoked or expired token ends its sessions at once. Sessions last
//     kSessionMs and live in memory (a restart signs everyone out), at most kMaxSessions (the
//     oldest go first);
//   - the client certificate's farm:// URI (mutual TLS);
//   - with --insecure (no TLS): everyone is admin, unsigned.
// The cookie is HttpOnly, Secure (over TLS), SameSite=Strict, Path=/, with Max-Age.
//
// POSTs that change something (actions, sign-out) are refused unless they carry the header
// X-Farm-CSRF with the caller's CSRF token (CsrfToken: an HMAC of the session, certificate
// identity or insecure mode under a key made at start) and, when the browser sends an Origin,
// one whose host is the request's Host. Requests with a bearer token need neither (no browser
// sends one by itself).
//
// Thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "common/http_server.h"
#include "coordinator/auth/principal.h"
#include "coordinator/auth/token_registry.h"

namespace farm::coordinator {

class WebAuth {
 public:
  static constexpr int64_t kSessionMs = 12 * 3600'000LL;
  static constexpr size_t kMaxSessions = 10'000;
  static constexpr char kCookie[] = "farm_session";

  // `tokens` not owned (null only with `insecure`).
  WebAuth(const TokenRegistry* tokens, const common::Clock* clock, bool insecure);

  bool insecure() const { return insecure_; }

  struct Caller {
    Principal principal;
    bool signed_in = false;  // by a session cookie (it may sign out)
    bool bearer = false;     // by an Authorization header: no CSRF check
    std::string csrf;        // what its POSTs must carry (empty for bearer callers)
  };
  // NOT_FOUND when the request carries no credential; UNAUTHENTICATED for a bad one (an
  // unknown session is NOT_FOUND: the browser then shows the sign-in form).
  absl::StatusOr<Caller> Identify(const common::HttpServer::Request& req) const;

  // Sign-in with a token (the form's `token`): the Set-Cookie value of a new session.
  // UNAUTHENTICATED for a token that is not valid; INVALID_ARGUMENT when none is given.
  absl::StatusOr<std::string> SignIn(const std::string& token);
  // Ends the request's session (if any); the Set-Cookie value that clears the cookie.
  std::string SignOut(const common::HttpServer::Request& req);

  // OK when a POST from `caller` may change something (see above); PERMISSION_DENIED saying
  // why otherwise.
  absl::Status CheckCsrf(const Caller& caller, const common::HttpServer::Request& req) const;
  // PERMISSION_DENIED when the browser says the request comes from another site (its Origin's
  // host is not the request's Host): the sign-in form checks that much.
  absl::Status CheckOrigin(const common::HttpServer::Request& req) const;

 private:
  struct Session {
    std::string token;
    int64_t expires_ms = 0;
  };
  std::string CsrfFor(absl::string_view subject) const;
  std::optional<std::string> SessionId(const common::HttpServer::Request& req) const;

  const TokenRegistry* const tokens_;
  const common::Clock* const clock_;
  const bool insecure_;
  std::string csrf_key_;  // 32 random bytes, made at construction
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Session> sessions_ ABSL_GUARDED_BY(mu_);
};

}  // namespace farm::coordinator
