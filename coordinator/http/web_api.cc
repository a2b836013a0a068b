// The web API's reads (web_app.h), and the helpers of web_internal.h.
#include <algorithm>
#include <cmath>
#include <map>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/clock.h"
#include "common/digest.h"
#include "common/grpc_status.h"
#include "coordinator/http/web_app.h"
#include "coordinator/http/web_internal.h"
#include "coordinator/logs/log_reader.h"
#include "coordinator/scheduler/label_sets.h"
#include "coordinator/scheduler/queue_report.h"
#include "coordinator/store/keys.h"
#include "google/protobuf/util/json_util.h"

namespace farm::coordinator {
namespace web {

std::string ToJson(const google::protobuf::Message& message) {
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(message, &out);
  return out;
}

common::HttpServer::Response Json(std::string json, int status) {
  common::HttpServer::Response r;
  r.status = status;
  r.content_type = "application/json";
  r.body = std::move(json);
  r.headers["Cache-Control"] = "no-store";
  r.headers["X-Content-Type-Options"] = "nosniff";
  return r;
}

common::HttpServer::Response Json(const google::protobuf::Message& message) {
  return Json(ToJson(message));
}

common::HttpServer::Response Error(const absl::Status& status) {
  int http = 500;
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
      http = 400;
      break;
    case absl::StatusCode::kUnauthenticated:
      http = 401;
      break;
    case absl::StatusCode::kPermissionDenied:
      http = 403;
      break;
    case absl::StatusCode::kNotFound:
      http = 404;
      break;
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kAborted:
      http = 409;
      break;
    case absl::StatusCode::kResourceExhausted:
      http = 429;
      break;
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
      http = 503;
      break;
    default:
      break;
  }
  return Json(absl::StrCat("{\"error\":", Quote(status.message()), "}"), http);
}

std::string Quote(absl::string_view text) {
  std::string out = "\"";
  for (size_t i = 0; i < text.size();) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    // The length of a valid UTF-8 sequence starting here, or 0.
    size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
    for (size_t k = 1; k < n; ++k) {
      if (i + k >= text.size() || (static_cast<unsigned char>(text[i + k]) & 0xc0) != 0x80) n = 0;
    }
    if (n == 0) {
      out += "\\ufffd";
      ++i;
      continue;
    }
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      out += absl::StrCat("\\u00", absl::Hex(c, absl::kZeroPad2));
    } else {
      out.append(text.data() + i, n);
    }
    i += n;
  }
  return out + "\"";
}

std::vector<std::string> PathAfter(const std::string& path, absl::string_view prefix) {
  if (path.size() < prefix.size()) return {};
  return absl::StrSplit(absl::string_view(path).substr(prefix.size()), '/', absl::SkipEmpty());
}

std::string PercentDecode(absl::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    int hi = 0, lo = 0;
    auto hex = [](char c, int* v) {
      if (c >= '0' && c <= '9') return *v = c - '0', true;
      if (c >= 'a' && c <= 'f') return *v = c - 'a' + 10, true;
      if (c >= 'A' && c <= 'F') return *v = c - 'A' + 10, true;
      return false;
    };
    if (text[i] == '%' && i + 2 < text.size() && hex(text[i + 1], &hi) && hex(text[i + 2], &lo)) {
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else {
      out += text[i] == '+' ? ' ' : text[i];
    }
  }
  return out;
}

std::map<std::string, std::string> LabelsParam(const common::HttpServer::Request& req) {
  std::map<std::string, std::string> labels;
  for (absl::string_view kv : absl::StrSplit(Param(req, "labels"), ',', absl::SkipEmpty())) {
    std::pair<std::string, std::string> p = absl::StrSplit(kv, absl::MaxSplits('=', 1));
    labels[p.first] = p.second;
  }
  return labels;
}

std::string Param(const common::HttpServer::Request& req, const std::string& name) {
  auto it = req.query.find(name);
  return it == req.query.end() ? "" : it->second;
}

}  // namespace web

using web::Error;
using web::Json;
using web::Param;

WebApp::Response WebApp::WhoAmI(const Request& /*req*/, const WebAuth::Caller& caller) const {
  return Json(absl::StrCat("{\"name\":", web::Quote(caller.principal.name),
                           ",\"role\":", web::Quote(RoleName(caller.principal.role)),
                           ",\"csrf\":", web::Quote(caller.csrf),
                           ",\"signedIn\":", caller.signed_in ? "true" : "false",
                           ",\"insecure\":", src_.auth->insecure() ? "true" : "false", "}"));
}

namespace {

absl::StatusOr<farm::v1::ListAgentsResponse> AgentsNow(Scheduler* s) {
  return web::Await<farm::v1::ListAgentsResponse>(
      [s](Done<farm::v1::ListAgentsResponse> done) { s->ListAgents(std::move(done)); });
}

// The jobs waiting, queued or running now.
int64_t OpenNow(const Scheduler& s) {
  const auto counts = s.job_counts().Snapshot();
  return counts[farm::v1::WAITING] + counts[farm::v1::QUEUED] + counts[farm::v1::RUNNING];
}

// Per minute of the last hour: jobs that ended, and the p95 queue wait of the leases.
std::string MinuteSeries(EventReader* events, int64_t now_ms) {
  constexpr int kMinutes = 60;
  const int64_t since = (now_ms / 60'000 - kMinutes + 1) * 60'000;
  std::vector<int64_t> ended(kMinutes, 0);
  std::vector<std::vector<int64_t>> waits(kMinutes);
  std::map<std::string, int64_t> queued;  // job id -> when it last became ready
  (void)events->Scan(since, now_ms + 1, [&](const farm::v1::Event& e) {
    const size_t minute = static_cast<size_t>((e.time_ms() - since) / 60'000);
    if (minute >= static_cast<size_t>(kMinutes)) return true;
    if (e.kind() == farm::v1::JOB_QUEUED) queued[e.job_id()] = e.time_ms();
    if (e.kind() == farm::v1::JOB_ENDED) ++ended[minute];
    if (e.kind() == farm::v1::JOB_LEASED) {
      if (auto it = queued.find(e.job_id()); it != queued.end()) {
        waits[minute].push_back(e.time_ms() - it->second);
        queued.erase(it);
      }
    }
    return true;
  });
  std::vector<std::string> p95;
  for (std::vector<int64_t>& w : waits) {
    if (w.empty()) {
      p95.push_back("null");
      continue;
    }
    std::sort(w.begin(), w.end());
    const size_t rank = static_cast<size_t>(std::ceil(0.95 * static_cast<double>(w.size())));
    p95.push_back(absl::StrCat(w[std::clamp<size_t>(rank, 1, w.size()) - 1]));
  }
  return absl::StrCat("{\"since\":", since, ",\"ended\":[", absl::StrJoin(ended, ","),
                      "],\"waitP95Ms\":[", absl::StrJoin(p95, ","), "]}");
}

}  // namespace

WebApp::Response WebApp::Floor(const Request& /*req*/) const {
  Scheduler* s = src_.scheduler;
  absl::StatusOr<QueueSnapshot> snapshot = web::Await<QueueSnapshot>(
      [s](Done<QueueSnapshot> done) { s->SnapshotQueues(std::move(done)); });
  if (!snapshot.ok()) return Error(snapshot.status());
  absl::StatusOr<farm::v1::ListQueuesResponse> queues = BuildQueueReport(src_.store, *snapshot);
  if (!queues.ok()) return Error(queues.status());
  absl::StatusOr<farm::v1::ListAgentsResponse> agents = AgentsNow(s);
  if (!agents.ok()) return Error(agents.status());
  const int64_t now = common::RealClock()->NowMs();
  farm::v1::FactoryReportRequest req;
  req.set_since_ms(now - 3600'000);
  absl::StatusOr<farm::v1::FactoryReport> report =
      factory::BuildReport({src_.events, &s->reads(), nullptr, {}}, req, *agents, OpenNow(*s), now);
  if (!report.ok()) return Error(report.status());
  return Json(absl::StrCat(
      "{\"queues\":", web::ToJson(*queues), ",\"agents\":", web::ToJson(*agents),
      ",\"report\":", web::ToJson(*report), ",\"series\":", MinuteSeries(src_.events, now), "}"));
}

WebApp::Response WebApp::Jobs(const Request& req) const {
  farm::v1::ListJobsRequest list;
  farm::v1::JobState state = farm::v1::JOB_STATE_UNSPECIFIED;
  if (const std::string s = Param(req, "state"); !s.empty()) {
    if (!farm::v1::JobState_Parse(absl::AsciiStrToUpper(s), &state)) {
      return Error(absl::InvalidArgumentError(absl::StrCat("no job state \"", s, "\"")));
    }
  }
  list.set_state(state);
  int limit = 50;
  if (const std::string l = Param(req, "limit");
      !l.empty() && (!absl::SimpleAtoi(l, &limit) || limit < 1 || limit > 1000)) {
    return Error(absl::InvalidArgumentError("limit takes 1 to 1000"));
  }
  const Labels labels = web::LabelsParam(req);
  const std::string pipeline = Param(req, "pipeline");
  // Filters the store does not index: pages of jobs are read until `limit` match or
  // kMaxListScan were looked at; next_page_token goes on from there.
  farm::v1::ListJobsResponse out;
  std::string token = Param(req, "page_token");
  int scanned = 0;
  std::map<std::string, std::string> names;  // pipeline id -> name
  while (out.jobs_size() < limit && scanned < kMaxListScan) {
    list.set_limit(labels.empty() && pipeline.empty() ? limit - out.jobs_size() : 200);
    list.set_page_token(token);
    absl::StatusOr<farm::v1::ListJobsResponse> page = src_.scheduler->reads().ListJobs(list);
    if (!page.ok()) return Error(page.status());
    for (farm::v1::Job& job : *page->mutable_jobs()) {
      ++scanned;
      if (!LabelsMatch(ToLabels(job.spec().labels()), labels)) continue;
      if (!pipeline.empty()) {
        if (job.pipeline_id().empty()) continue;
        auto [it, is_new] = names.try_emplace(job.pipeline_id());
        if (is_new) {
          absl::StatusOr<farm::v1::Pipeline> p =
              src_.scheduler->reads().GetPipeline(job.pipeline_id());
          if (p.ok()) it->second = p->name();
        }
        if (it->second != pipeline) continue;
      }
      // The list shows what a row needs; the job page reads the rest.
      for (farm::v1::Attempt& a : *job.mutable_attempts()) a.clear_steps();
      job.mutable_spec()->clear_env();
      *out.add_jobs() = std::move(job);
      if (out.jobs_size() == limit) break;
    }
    token = page->next_page_token();
    if (token.empty()) break;
  }
  out.set_next_page_token(token);
  return Json(out);
}

WebApp::Response WebApp::JobPath(const Request& req) const {
  const std::vector<std::string> parts = web::PathAfter(req.path, "/api/jobs/");
  if (parts.size() == 2 && parts[1] == "log") return Log(parts[0], req);
  if (parts.size() != 1) return Error(absl::NotFoundError(absl::StrCat("no page ", req.path)));
  absl::StatusOr<farm::v1::Job> job = src_.scheduler->reads().GetJob(parts[0]);
  if (!job.ok()) return Error(job.status());
  return Json(*job);
}

WebApp::Response WebApp::Log(const std::string& job_id, const Request& req) const {
  std::optional<uint64_t> seq = keys::ParseJobId(job_id);
  uint32_t attempt = 0, step = 0;
  int64_t limit = kMaxLogPage, from = -1, before = -1;
  if (!seq.has_value() || !absl::SimpleAtoi(Param(req, "attempt"), &attempt) ||
      !absl::SimpleAtoi(Param(req, "step"), &step) ||
      (!Param(req, "limit").empty() && !absl::SimpleAtoi(Param(req, "limit"), &limit)) ||
      (!Param(req, "from").empty() && !absl::SimpleAtoi(Param(req, "from"), &from)) ||
      (!Param(req, "before").empty() && !absl::SimpleAtoi(Param(req, "before"), &before)) ||
      attempt < 1 || limit < 1 || (from < 0) == (before < 0)) {
    return Error(absl::InvalidArgumentError(
        "a log page needs a job id, attempt (from 1), step (from 0), and from=OFFSET or "
        "before=OFFSET"));
  }
  limit = std::min(limit, kMaxLogPage);
  absl::StatusOr<int64_t> length = CommittedLogLength(src_.store, *seq, attempt, step);
  if (!length.ok()) return Error(length.status());
  int64_t start =
      from >= 0 ? std::min(from, *length) : std::max<int64_t>(0, std::min(before, *length) - limit);
  const int64_t end = from >= 0 ? std::min(*length, start + limit) : std::min(before, *length);
  // The whole of [start, end): ReadLog may stop at a chunk boundary short of it.
  std::string data;
  while (start + static_cast<int64_t>(data.size()) < end) {
    const int64_t at = start + static_cast<int64_t>(data.size());
    absl::StatusOr<std::vector<StoredChunk>> chunks =
        ReadLog(src_.store, *seq, attempt, step, at, static_cast<size_t>(end - at));
    if (!chunks.ok()) return Error(chunks.status());
    const size_t before_read = data.size();
    for (const StoredChunk& c : *chunks) {
      if (c.offset != start + static_cast<int64_t>(data.size()) || c.offset >= end) break;
      data.append(c.data, 0, static_cast<size_t>(std::min<int64_t>(c.data.size(), end - c.offset)));
    }
    if (data.size() == before_read) break;  // nothing more stored (a gap cannot be read past)
  }
  if (before >= 0 && start > 0) {
    // Back from an offset: the page starts at a line, so that no line (nor character) is cut.
    const size_t newline = data.find('\n');
    const size_t cut = newline == std::string::npos ? data.size() : newline + 1;
    data.erase(0, cut);
    start += static_cast<int64_t>(cut);
  }
  Response r{200, "text/plain; charset=utf-8", std::move(data), {}};
  r.headers["X-Farm-Log-Start"] = absl::StrCat(start);
  r.headers["X-Farm-Log-End"] = absl::StrCat(start + static_cast<int64_t>(r.body.size()));
  r.headers["X-Farm-Log-Length"] = absl::StrCat(*length);
  r.headers["Cache-Control"] = "no-store";
  return r;
}

WebApp::Response WebApp::Artifact(const Request& req) const {
  std::vector<std::string> parts = web::PathAfter(req.path, "/api/artifacts/");
  if (parts.size() < 2) return Error(absl::NotFoundError("give /api/artifacts/JOB/PATH"));
  absl::StatusOr<farm::v1::Job> job = src_.scheduler->reads().GetJob(parts[0]);
  if (!job.ok()) return Error(job.status());
  const std::string path = absl::StrJoin(parts.begin() + 1, parts.end(), "/");
  for (const farm::v1::Artifact& a : job->artifacts()) {
    if (a.path() != path) continue;
    if (a.size() > kMaxArtifactBytes) {
      return Error(absl::FailedPreconditionError(
          absl::StrCat(path, " is ", a.size(), " bytes, more than the page serves (",
                       kMaxArtifactBytes, "): use farmctl download ", job->id())));
    }
    absl::StatusOr<std::string> bytes = src_.blobs->Read(common::Digest{a.hash(), a.size()});
    if (!bytes.ok()) return Error(bytes.status());
    Response r{200, "application/octet-stream", *std::move(bytes), {}};
    // The file's name, with nothing that could end the header's quoted string or line.
    std::string name = parts.back();
    for (char& c : name) {
      if (c == '"' || c == '\\' || static_cast<unsigned char>(c) < 0x20) c = '_';
    }
    r.headers["Content-Disposition"] = absl::StrCat("attachment; filename=\"", name, "\"");
    r.headers["X-Content-Type-Options"] = "nosniff";
    return r;
  }
  return Error(absl::NotFoundError(absl::StrCat("job ", job->id(), " has no artifact ", path)));
}

WebApp::Response WebApp::Pipelines(const Request& req) const {
  const std::vector<std::string> parts = web::PathAfter(req.path, "/api/pipelines");
  if (parts.size() == 1) {
    absl::StatusOr<farm::v1::Pipeline> p = src_.scheduler->reads().GetPipeline(parts[0]);
    return p.ok() ? Json(*p) : Error(p.status());
  }
  farm::v1::ListPipelinesRequest list;
  int limit = 50;
  if (!Param(req, "limit").empty() &&
      (!absl::SimpleAtoi(Param(req, "limit"), &limit) || limit < 1 || limit > 1000)) {
    return Error(absl::InvalidArgumentError("limit takes 1 to 1000"));
  }
  list.set_limit(limit);
  list.set_page_token(Param(req, "page_token"));
  absl::StatusOr<farm::v1::ListPipelinesResponse> out = src_.scheduler->reads().ListPipelines(list);
  return out.ok() ? Json(*out) : Error(out.status());
}

WebApp::Response WebApp::Agents(const Request& /*req*/) const {
  Scheduler* s = src_.scheduler;
  absl::StatusOr<farm::v1::ListAgentsResponse> agents = AgentsNow(s);
  return agents.ok() ? Json(*agents) : Error(agents.status());
}

WebApp::Response WebApp::Factory(const Request& req) const {
  Scheduler* s = src_.scheduler;
  absl::StatusOr<farm::v1::ListAgentsResponse> agents = AgentsNow(s);
  if (!agents.ok()) return Error(agents.status());
  const int64_t now = common::RealClock()->NowMs();
  int64_t hours = 24;
  if (!Param(req, "hours").empty() &&
      (!absl::SimpleAtoi(Param(req, "hours"), &hours) || hours < 1 || hours > 24 * 400)) {
    return Error(absl::InvalidArgumentError("hours takes 1 to 9600"));
  }
  farm::v1::FactoryReportRequest r;
  r.set_since_ms(now - hours * 3600'000);
  factory::OverstockSources overstock{&s->reads(), src_.blobs, src_.store, {}};
  absl::StatusOr<farm::v1::FactoryReport> report = factory::BuildReport(
      {src_.events, &s->reads(), src_.targets, overstock}, r, *agents, OpenNow(*s), now);
  return report.ok() ? Json(*report) : Error(report.status());
}

}  // namespace farm::coordinator
