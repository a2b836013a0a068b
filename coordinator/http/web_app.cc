// The web dashboard's routes, its guard (who may call what), the pages, sign-in and the API's
// changes. The reads are in web_api.cc.
#include "coordinator/http/web_app.h"

#include <openssl/rand.h>

#include <cstdlib>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/digest.h"
#include "common/logging.h"
#include "coordinator/auth/authz_table.h"
#include "coordinator/http/web_assets.h"
#include "coordinator/http/web_internal.h"
#include "coordinator/scheduler/label_sets.h"

namespace farm::coordinator {
namespace {

using web::Error;
using web::Json;
using web::Param;

// The pages a person opens: each is the shell, which draws the page its URL names.
constexpr const char* kPages[] = {"/",       "/jobs",    "/jobs/*", "/pipelines", "/pipelines/*",
                                  "/agents", "/factory", "/login"};

// A retry's request id when the page gives none: 128 random bits.
std::string NewRequestId() {
  unsigned char random[16];
  if (RAND_bytes(random, sizeof(random)) != 1) std::abort();
  return absl::StrCat("web-", common::HexEncode(random, sizeof(random)));
}

}  // namespace

std::vector<std::string> WebApp::Served() {
  std::vector<std::string> out;
  for (const char* page : kPages) out.push_back(absl::StrCat("GET ", page));
  for (const char* entry :
       {"GET /static/*", "POST /login", "POST /logout", "GET /api/whoami", "GET /api/floor",
        "GET /api/jobs", "GET /api/jobs/*", "GET /api/artifacts/*", "GET /api/pipelines",
        "GET /api/pipelines/*", "GET /api/agents", "GET /api/factory", "POST /api/jobs/*",
        "POST /api/pipelines/*", "POST /api/agents/*", "POST /api/queues/*"}) {
    out.emplace_back(entry);
  }
  return out;
}

common::HttpServer::Handler WebApp::Guard(std::string entry, Handler handler) const {
  return [this, entry = std::move(entry), handler = std::move(handler)](const Request& req) {
    const AuthzEntry* rule = FindAuthz(entry);
    absl::StatusOr<WebAuth::Caller> caller = src_.auth->Identify(req);
    if (!caller.ok()) {
      if (absl::IsNotFound(caller.status())) {
        return Error(absl::UnauthenticatedError("sign in first"));
      }
      return Error(caller.status());
    }
    if (rule == nullptr || !rule->allowed[static_cast<int>(caller->principal.role)]) {
      return Error(
          absl::PermissionDeniedError(absl::StrCat("role ", RoleName(caller->principal.role), " (",
                                                   caller->principal.name, ") may not ", entry)));
    }
    if (req.method == "POST") {
      if (absl::Status csrf = src_.auth->CheckCsrf(*caller, req); !csrf.ok()) return Error(csrf);
    }
    return handler(req, *caller);
  };
}

void WebApp::Register(common::HttpServer::Options& server) {
  const WebAsset* shell = FindWebAsset("index.html");
  for (const char* page : kPages) {
    server.get[page] = [shell](const Request&) {
      Response r{200, std::string(shell->content_type), std::string(shell->data), {}};
      r.headers["Cache-Control"] = "no-store";
      r.headers["Content-Security-Policy"] =
          "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'";
      r.headers["X-Content-Type-Options"] = "nosniff";
      return r;
    };
  }
  server.get["/static/*"] = [](const Request& req) {
    const WebAsset* asset = FindWebAsset(req.path.substr(sizeof("/static/") - 1));
    if (asset == nullptr) return Error(absl::NotFoundError(absl::StrCat("no file ", req.path)));
    Response r{200, std::string(asset->content_type), std::string(asset->data), {}};
    r.headers["Cache-Control"] = "no-cache";
    r.headers["X-Content-Type-Options"] = "nosniff";
    return r;
  };
  server.post["/login"] = [this](const Request& req) { return SignIn(req); };
  server.post["/logout"] =
      Guard("POST /logout", [this](const Request& req, const auto&) { return SignOut(req); });
  auto read = [this](const char* entry, Response (WebApp::*fn)(const Request&) const) {
    return Guard(entry, [this, fn](const Request& req, const auto&) { return (this->*fn)(req); });
  };
  server.get["/api/whoami"] = Guard(
      "GET /api/whoami", [this](const Request& req, const auto& c) { return WhoAmI(req, c); });
  server.get["/api/floor"] = read("GET /api/floor", &WebApp::Floor);
  server.get["/api/jobs"] = read("GET /api/jobs", &WebApp::Jobs);
  server.get["/api/jobs/*"] = read("GET /api/jobs/*", &WebApp::JobPath);
  server.get["/api/artifacts/*"] = read("GET /api/artifacts/*", &WebApp::Artifact);
  server.get["/api/pipelines"] = read("GET /api/pipelines", &WebApp::Pipelines);
  server.get["/api/pipelines/*"] = read("GET /api/pipelines/*", &WebApp::Pipelines);
  server.get["/api/agents"] = read("GET /api/agents", &WebApp::Agents);
  server.get["/api/factory"] = read("GET /api/factory", &WebApp::Factory);
  auto change = [this](const char* entry,
                       Response (WebApp::*fn)(const Request&, const WebAuth::Caller&) const) {
    return Guard(entry, [this, fn](const Request& req, const WebAuth::Caller& c) {
      return (this->*fn)(req, c);
    });
  };
  server.post["/api/jobs/*"] = change("POST /api/jobs/*", &WebApp::JobAction);
  server.post["/api/pipelines/*"] = change("POST /api/pipelines/*", &WebApp::PipelineAction);
  server.post["/api/agents/*"] = change("POST /api/agents/*", &WebApp::AgentAction);
  server.post["/api/queues/*"] = change("POST /api/queues/*", &WebApp::QueueAction);
}

WebApp::Response WebApp::SignIn(const Request& req) const {
  // The form posts application/x-www-form-urlencoded: token=...
  if (absl::Status origin = src_.auth->CheckOrigin(req); !origin.ok()) return Error(origin);
  std::string token;
  for (absl::string_view field : absl::StrSplit(req.body, '&')) {
    if (absl::ConsumePrefix(&field, "token=")) token = web::PercentDecode(field);
  }
  absl::StatusOr<std::string> cookie = src_.auth->SignIn(token);
  if (!cookie.ok()) return Error(cookie.status());
  Response r = Json("{\"signedIn\":true}");
  r.headers["Set-Cookie"] = *cookie;
  return r;
}

WebApp::Response WebApp::SignOut(const Request& req) const {
  Response r = Json("{\"signedIn\":false}");
  r.headers["Set-Cookie"] = src_.auth->SignOut(req);
  return r;
}

WebApp::Response WebApp::JobAction(const Request& req, const WebAuth::Caller& caller) const {
  const std::vector<std::string> parts = web::PathAfter(req.path, "/api/jobs/");
  Scheduler* s = src_.scheduler;
  if (parts.size() == 2 && parts[1] == "cancel") {
    absl::StatusOr<farm::v1::Job> job = web::Await<farm::v1::Job>(
        [s, id = parts[0]](Done<farm::v1::Job> done) { s->Cancel(id, std::move(done)); });
    if (!job.ok()) return Error(job.status());
    FARM_LOG(INFO) << "[job=" << job->id() << "] cancel asked from the web by "
                   << caller.principal.name;
    return Json(*job);
  }
  if (parts.size() == 2 && parts[1] == "retry") return Retry(parts[0], req, caller);
  return Error(absl::NotFoundError(absl::StrCat("no action ", req.path)));
}

WebApp::Response WebApp::PipelineAction(const Request& req, const WebAuth::Caller& caller) const {
  const std::vector<std::string> parts = web::PathAfter(req.path, "/api/pipelines/");
  Scheduler* s = src_.scheduler;
  if (parts.size() == 2 && parts[1] == "cancel") {
    absl::StatusOr<farm::v1::Pipeline> p =
        web::Await<farm::v1::Pipeline>([s, id = parts[0]](Done<farm::v1::Pipeline> done) {
          s->CancelPipeline(id, std::move(done));
        });
    if (!p.ok()) return Error(p.status());
    FARM_LOG(INFO) << "[pipeline=" << p->id() << "] cancel asked from the web by "
                   << caller.principal.name;
    return Json(*p);
  }
  if (parts.size() == 2 && parts[1] == "retry") return Retry(parts[0], req, caller);
  return Error(absl::NotFoundError(absl::StrCat("no action ", req.path)));
}

WebApp::Response WebApp::Retry(const std::string& id, const Request& req,
                               const WebAuth::Caller& caller) const {
  std::string request_id = Param(req, "request_id");
  if (request_id.empty()) request_id = NewRequestId();
  Scheduler* s = src_.scheduler;
  absl::StatusOr<farm::v1::RetryResponse> retried =
      web::Await<farm::v1::RetryResponse>([s, id, request_id](Done<farm::v1::RetryResponse> done) {
        s->Retry(id, request_id, std::move(done));
      });
  if (!retried.ok()) return Error(retried.status());
  FARM_LOG(INFO) << "retry of " << id << " asked from the web by " << caller.principal.name;
  return Json(*retried);
}

WebApp::Response WebApp::AgentAction(const Request& req, const WebAuth::Caller& caller) const {
  const std::vector<std::string> parts = web::PathAfter(req.path, "/api/agents/");
  if (parts.size() != 2 || (parts[1] != "drain" && parts[1] != "resume")) {
    return Error(absl::NotFoundError(absl::StrCat("no action ", req.path)));
  }
  Scheduler* s = src_.scheduler;
  absl::StatusOr<farm::v1::AgentInfo> agent = web::Await<farm::v1::AgentInfo>(
      [s, name = parts[0], drain = parts[1] == "drain", by = caller.principal.name](
          Done<farm::v1::AgentInfo> done) { s->DrainAgent(name, drain, by, std::move(done)); });
  return agent.ok() ? Json(*agent) : Error(agent.status());
}

WebApp::Response WebApp::QueueAction(const Request& req, const WebAuth::Caller& caller) const {
  const std::vector<std::string> parts = web::PathAfter(req.path, "/api/queues/");
  const Labels selector = web::LabelsParam(req);
  Scheduler* s = src_.scheduler;
  if (parts.size() == 1 && parts[0] == "pause") {
    auto paused = web::Await<farm::v1::PauseQueueResponse>(
        [s, selector](Done<farm::v1::PauseQueueResponse> done) {
          s->PauseQueue(selector, std::move(done));
        });
    if (paused.ok()) FARM_LOG(INFO) << "queue paused from the web by " << caller.principal.name;
    return paused.ok() ? Json(*paused) : Error(paused.status());
  }
  if (parts.size() == 1 && parts[0] == "resume") {
    auto resumed = web::Await<farm::v1::ResumeQueueResponse>(
        [s, selector](Done<farm::v1::ResumeQueueResponse> done) {
          s->ResumeQueue(selector, std::move(done));
        });
    if (resumed.ok()) FARM_LOG(INFO) << "queue resumed from the web by " << caller.principal.name;
    return resumed.ok() ? Json(*resumed) : Error(resumed.status());
  }
  return Error(absl::NotFoundError(absl::StrCat("no action ", req.path)));
}

}  // namespace farm::coordinator
