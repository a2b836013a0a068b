// The web dashboard (issue 15), served on the HTTP port (http_port.h) with the gRPC port's TLS,
// identities (web_auth.h) and authorization table ("GET /api/jobs/*", ...).
//
// Pages: one HTML shell with its script and style, all compiled into the binary (web_assets.h;
// no CDN), for the stable URLs / (the floor), /jobs, /jobs/ID, /pipelines, /pipelines/ID,
// /agents, /factory and /login. The shell draws each page from the JSON API below and polls it
// while the page is open; without a credential it shows the sign-in form.
//
// JSON API (protobuf's JSON mapping of farm.v1 messages, or objects made of them):
//   GET  /api/whoami                the caller: name, role, CSRF token, insecure
//   GET  /api/floor                 queues, agents, the last hour's report and per-minute series
//   GET  /api/jobs?state&labels&pipeline&limit&page_token   jobs, newest first, filtered
//   GET  /api/jobs/ID               a job
//   GET  /api/jobs/ID/log?attempt&step&(from|before)&limit  raw output bytes of one step, with
//                                   X-Farm-Log-Start/-End/-Length headers (before: back from an
//                                   offset, starting at a line; at most kMaxLogPage bytes)
//   GET  /api/artifacts/ID/PATH     an artifact's bytes (at most kMaxArtifactBytes)
//   GET  /api/pipelines, /api/pipelines/ID, /api/agents, /api/factory?since
//   POST /api/jobs/ID/cancel|retry, /api/pipelines/ID/cancel|retry (submitter, admin)
//   POST /api/agents/NAME/drain|resume, /api/queues/pause|resume?labels (admin)
//   POST /login (form field token), POST /logout
// Errors: JSON {"error": MESSAGE} with the HTTP status of the code (400, 401, 403, 404, 409, 503).
//
// Thread-safety: handlers run on the HTTP server's threads; reads go to the store (JobReads),
// changes to the scheduler, whose replies they wait for (at most kCallTimeout).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/http_server.h"
#include "coordinator/cas/blob_store.h"
#include "coordinator/events/event_reader.h"
#include "coordinator/factory/factory_report.h"
#include "coordinator/http/web_auth.h"
#include "coordinator/scheduler/scheduler.h"

namespace farm::coordinator {

class WebApp {
 public:
  static constexpr int64_t kMaxLogPage = 256 << 10;
  static constexpr int64_t kMaxArtifactBytes = 64 << 20;
  static constexpr int kMaxListScan = 10'000;  // jobs examined by one filtered list call

  struct Sources {
    Scheduler* scheduler = nullptr;
    Store* store = nullptr;
    BlobStore* blobs = nullptr;
    EventReader* events = nullptr;
    const factory::TargetStore* targets = nullptr;
    WebAuth* auth = nullptr;
  };
  explicit WebApp(Sources sources) : src_(sources) {}

  // Adds the pages and the API to `server` (its get and post routes).
  void Register(common::HttpServer::Options& server);
  // Every route, as the authorization table names them ("GET /api/jobs/*").
  static std::vector<std::string> Served();

 private:
  using Request = common::HttpServer::Request;
  using Response = common::HttpServer::Response;
  using Handler = std::function<Response(const Request&, const WebAuth::Caller&)>;
  // `entry` ("POST /api/jobs/*"): who may call it; a POST must pass the CSRF check too.
  common::HttpServer::Handler Guard(std::string entry, Handler handler) const;

  // Reads (web_api.cc).
  Response WhoAmI(const Request& req, const WebAuth::Caller& caller) const;
  Response Floor(const Request& req) const;
  Response Jobs(const Request& req) const;
  Response JobPath(const Request& req) const;  // /api/jobs/ID and /api/jobs/ID/log
  Response Log(const std::string& job_id, const Request& req) const;
  Response Artifact(const Request& req) const;
  Response Pipelines(const Request& req) const;
  Response Agents(const Request& req) const;
  Response Factory(const Request& req) const;
  // Changes (web_actions.cc).
  Response JobAction(const Request& req, const WebAuth::Caller& caller) const;
  Response PipelineAction(const Request& req, const WebAuth::Caller& caller) const;
  Response AgentAction(const Request& req, const WebAuth::Caller& caller) const;
  Response QueueAction(const Request& req, const WebAuth::Caller& caller) const;
  Response Retry(const std::string& id, const Request& req, const WebAuth::Caller& caller) const;
  Response SignIn(const Request& req) const;
  Response SignOut(const Request& req) const;

  Sources src_;
};

}  // namespace farm::coordinator
