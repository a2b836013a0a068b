// `farmctl factory`: the value stream of the farm, of each label pool and of each pipeline over a
// window (JobService.GetFactoryReport), as a table, the quality of what left the line, the
// bottleneck with capacity advice, Little's law checked, the overstock and the targets
// (`factory target set|list|rm`). `farmctl provenance`: what made a job's artifacts, and its
// verification.
#include <stdlib.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "common/channel.h"
#include "common/digest.h"
#include "common/dsse.h"
#include "common/duration.h"
#include "common/posix_io.h"
#include "common/status_macros.h"
#include "coordinator/cli/command_table.h"
#include "coordinator/cli/format.h"
#include "coordinator/cli/session.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"

namespace farm::cli {
namespace {

using farm::v1::FlowFigures;

// Durations in a table: whole seconds from 10 s on ("4m10s"), "-" for none.
std::string Span(int64_t ms, int64_t count) {
  return count == 0 ? "-" : common::FormatDurationRoundedMs(ms);
}

std::string Percent(double share) { return absl::StrFormat("%.0f%%", 100 * share); }

std::string Row(const FlowFigures& f) {
  const std::string util = f.slots() > 0 || f.utilisation() > 0 ? Percent(f.utilisation()) : "-";
  const std::string fpy =
      f.succeeded() + f.failed() > 0 ? Percent(f.first_pass_yield()) : std::string("-");
  const std::string eff = f.lead().count() > 0 ? Percent(f.flow_efficiency()) : "-";
  return absl::StrFormat("%-28s %8.1f %8.1f %5d %7.2f %8s %8s %8s %8s %8s %8s %5s %5s %5s\n",
                         f.scope(), f.arrivals_per_hour(), f.completions_per_hour(), f.wip_now(),
                         f.wip_avg(), Span(f.queue_wait().p50_ms(), f.queue_wait().count()),
                         Span(f.queue_wait().p95_ms(), f.queue_wait().count()),
                         Span(f.run().p50_ms(), f.run().count()),
                         Span(f.run().p95_ms(), f.run().count()),
                         Span(f.lead().p50_ms(), f.lead().count()),
                         Span(f.lead().p95_ms(), f.lead().count()), eff, util, fpy);
}

std::string Quality(const FlowFigures& f) {
  std::string text = absl::StrCat(
      "Quality: first-pass yield ",
      f.succeeded() + f.failed() > 0 ? Percent(f.first_pass_yield()) : "-", " (", f.first_pass(),
      " of ", f.succeeded() + f.failed(), " finished jobs succeeded on their first attempt; ",
      f.succeeded(), " succeeded, ", f.failed(), " failed, ", f.cancelled(), " cancelled)\n");
  absl::StrAppend(&text, "  re-runs: ", f.reruns_lost(), " after a lost agent, ", f.reruns_exit(),
                  " after a failed attempt (retry rules); ", f.retried(),
                  " jobs run again by an operator\n");
  return text;
}

// Each pipeline's stages, its bottleneck first.
std::string StagesText(const farm::v1::FactoryReport& r) {
  if (r.stages().empty()) return "";
  std::string text =
      absl::StrFormat("\nPipeline stages:\n  %-36s %5s %9s %9s %9s %9s\n", "pipeline / stage",
                      "jobs", "blocked", "wait p95", "run p50", "run p95");
  for (const farm::v1::StageFigures& st : r.stages()) {
    absl::StrAppend(&text,
                    absl::StrFormat("  %-36s %5d %9s %9s %9s %9s%s\n",
                                    absl::StrCat(st.pipeline(), " / ", st.stage()), st.jobs(),
                                    Span(st.blocked().p50_ms(), st.blocked().count()),
                                    Span(st.queue_wait().p95_ms(), st.queue_wait().count()),
                                    Span(st.run().p50_ms(), st.run().count()),
                                    Span(st.run().p95_ms(), st.run().count()),
                                    st.bottleneck() ? "  <- the pipeline's bottleneck" : ""));
  }
  return text;
}

std::string Bytes(int64_t n) { return FormatBytes(n); }

std::string OverstockText(const farm::v1::Overstock& o) {
  std::string text =
      absl::StrCat("\nOverstock: ", o.unused_artifacts(), " of ", o.artifacts(), " artifacts (",
                   Bytes(o.unused_bytes()), " of ", Bytes(o.artifact_bytes()),
                   ") never downloaded nor used by a downstream job, from ", o.jobs_read(),
                   " jobs that ended", o.sampled() ? " (the newest; more ended)" : "", "\n");
  absl::StrAppend(&text, "  CAS ", Bytes(o.cas_bytes()), " by time since last use:");
  for (const farm::v1::Overstock::Age& a : o.cas_by_age()) {
    absl::StrAppend(&text, " ", a.age(), " ", Bytes(a.bytes()), " (", a.blobs(), ")");
  }
  absl::StrAppend(&text, "\n  logs: ", Bytes(o.log_bytes()), " written (",
                  Bytes(static_cast<int64_t>(o.log_bytes_per_day())), "/day); ",
                  Bytes(o.log_store_bytes()), " stored\n");
  const farm::v1::CollectGarbageResponse& g = o.reclaimable();
  absl::StrAppend(&text, "  retention would reclaim now: ", g.jobs(), " jobs, output of ", g.logs(),
                  " (", Bytes(g.log_bytes()), "), ", g.events(), " events, ", g.blobs(),
                  " CAS blobs (", Bytes(g.blob_bytes()), ")\n");
  return text;
}

std::string Figure(const farm::v1::TargetCondition& c, double v, int64_t count) {
  if (count == 0) return "-";
  if (c.figure() == "first-pass yield") return Percent(v);
  return common::FormatDurationRoundedMs(static_cast<int64_t>(v));
}

std::string TargetsText(const farm::v1::FactoryReport& r, absl::TimeZone tz) {
  if (r.targets().empty()) return "";
  std::string text = absl::StrCat(
      "\nTargets (now against the target; before: ",
      absl::FormatTime("%Y-%m-%d %H:%M", absl::FromUnixMillis(r.compare_since_ms()), tz), " to ",
      absl::FormatTime("%Y-%m-%d %H:%M", absl::FromUnixMillis(r.compare_until_ms()), tz), "):\n",
      absl::StrFormat("  %-32s %-17s %8s %8s %8s  %-7s %s\n", "scope", "figure", "target", "now",
                      "before", "", "trend"));
  for (const farm::v1::TargetCondition& c : r.targets()) {
    absl::StrAppend(
        &text, absl::StrFormat("  %-32s %-17s %8s %8s %8s  %-7s %s\n", c.scope(), c.figure(),
                               Figure(c, c.target(), 1), Figure(c, c.current(), c.current_count()),
                               Figure(c, c.previous(), c.previous_count()),
                               c.current_count() == 0 ? "no data" : (c.met() ? "met" : "MISSED"),
                               c.trend()));
  }
  return text;
}

std::string ReportText(const farm::v1::FactoryReport& r, absl::TimeZone tz) {
  const int64_t window = r.until_ms() - r.since_ms();
  std::string text = absl::StrCat(
      "The factory floor from ",
      absl::FormatTime("%Y-%m-%d %H:%M", absl::FromUnixMillis(r.since_ms()), tz), " to ",
      absl::FormatTime("%Y-%m-%d %H:%M", absl::FromUnixMillis(r.until_ms()), tz), " (",
      common::FormatDurationMs(window >= 60'000 ? window / 60'000 * 60'000 : window), "), ",
      r.events(), " events read\n\n");
  absl::StrAppend(
      &text, absl::StrFormat("%-28s %8s %8s %5s %7s %8s %8s %8s %8s %8s %8s %5s %5s %5s\n", "",
                             "in/h", "out/h", "WIP", "WIP avg", "wait p50", "p95", "run p50", "p95",
                             "lead p50", "p95", "flow", "util", "FPY"));
  absl::StrAppend(&text, Row(r.farm()));
  for (const FlowFigures& f : r.pools()) absl::StrAppend(&text, Row(f));
  for (const FlowFigures& f : r.pipelines()) absl::StrAppend(&text, Row(f));
  absl::StrAppend(&text, "\n", Quality(r.farm()));
  if (r.flaky().empty()) {
    absl::StrAppend(&text, "  flaky steps: none (no step definition both passed and failed)\n");
  } else {
    absl::StrAppend(&text,
                    "  flaky steps (one definition, same inputs, both passed and failed):\n");
    for (const farm::v1::FlakyStep& s : r.flaky()) {
      absl::StrAppend(&text, "    ", s.job(), " / ", s.step(), ": passed ", s.passed(), ", failed ",
                      s.failed(), " (", s.fingerprint(), ")\n");
    }
  }
  absl::StrAppend(&text, "\nBottleneck: ",
                  r.bottleneck().empty()
                      ? "none (nothing ran in the window)"
                      : absl::StrCat(r.bottleneck(), ": ", r.bottleneck_reason()),
                  "\n");
  if (!r.advice().empty()) {
    absl::StrAppend(&text,
                    "Capacity (M/M/c queue, Erlang C, from the measured arrivals and run "
                    "times):\n");
    for (const farm::v1::CapacityAdvice& a : r.advice())
      absl::StrAppend(&text, "  ", a.text(), "\n");
  }
  const FlowFigures& f = r.farm();
  absl::StrAppend(
      &text, absl::StrFormat("Little's law: average WIP %.2f, throughput x lead time %.2f: %s\n",
                             f.wip_avg(), f.littles_wip(),
                             f.littles_holds() ? "holds within 10%" : "does NOT hold"));
  absl::StrAppend(&text, StagesText(r), OverstockText(r.overstock()), TargetsText(r, tz));
  for (const std::string& note : r.notes()) absl::StrAppend(&text, "Note: ", note, "\n");
  return text;
}

int Targets(Session& session) {
  const CliOptions& options = session.options();
  auto& admin = session.client().admin();
  if (options.factory_action == "target set") {
    farm::v1::SetFactoryTargetRequest req;
    farm::v1::FactoryTarget* t = req.mutable_target();
    t->mutable_labels()->insert(options.labels.begin(), options.labels.end());
    t->set_pipeline(options.pipeline_name);
    t->set_p95_wait_ms(options.p95_wait_ms);
    t->set_p95_lead_ms(options.p95_lead_ms);
    t->set_first_pass_yield(options.first_pass_yield);
    absl::StatusOr<farm::v1::SetFactoryTargetResponse> set =
        session.CallOnce(&farm::v1::AdminService::Stub::SetFactoryTarget, admin, req);
    if (!set.ok()) return session.Fail(set.status());
    if (session.json()) return session.Print(ToJson(*set));
    return session.Print(absl::StrCat(set->replaced() ? "replaced" : "set", " the target of ",
                                      set->target().scope(), "\n"));
  }
  if (options.factory_action == "target rm") {
    farm::v1::DeleteFactoryTargetRequest req;
    req.mutable_labels()->insert(options.labels.begin(), options.labels.end());
    req.set_pipeline(options.pipeline_name);
    absl::StatusOr<farm::v1::DeleteFactoryTargetResponse> rm =
        session.CallOnce(&farm::v1::AdminService::Stub::DeleteFactoryTarget, admin, req);
    if (!rm.ok()) return session.Fail(rm.status());
    if (session.json()) return session.Print(ToJson(*rm));
    return session.Print(absl::StrCat("removed the target of ", rm->deleted().scope(), "\n"));
  }
  absl::StatusOr<farm::v1::ListFactoryTargetsResponse> list =
      session.CallOnce(&farm::v1::AdminService::Stub::ListFactoryTargets, admin,
                       farm::v1::ListFactoryTargetsRequest());
  if (!list.ok()) return session.Fail(list.status());
  if (session.json()) return session.Print(ToJson(*list));
  std::string text;
  for (const farm::v1::FactoryTarget& t : list->targets()) {
    absl::StrAppend(&text, t.scope(), ":");
    if (t.p95_wait_ms() > 0) {
      absl::StrAppend(&text, " p95 wait ", common::FormatDurationRoundedMs(t.p95_wait_ms()));
    }
    if (t.p95_lead_ms() > 0) {
      absl::StrAppend(&text, " p95 lead ", common::FormatDurationRoundedMs(t.p95_lead_ms()));
    }
    if (t.first_pass_yield() > 0) {
      absl::StrAppend(&text, " first-pass yield ", Percent(t.first_pass_yield()));
    }
    absl::StrAppend(&text, " (set by ", t.set_by().empty() ? "-" : t.set_by(), ")\n");
  }
  return session.Print(text.empty() ? "no targets\n" : text);
}

int Factory(Session& session) {
  const CliOptions& options = session.options();
  if (!options.factory_action.empty()) return Targets(session);
  const int64_t now_ms = session.io().clock.NowMs();
  farm::v1::FactoryReportRequest req;
  req.set_since_ms(options.since.has_value() ? options.since->Resolve(now_ms)
                                             : now_ms - 24 * 3600'000);
  if (options.until.has_value()) req.set_until_ms(options.until->Resolve(now_ms));
  req.set_pipeline(options.pipeline_name);
  req.mutable_labels()->insert(options.labels.begin(), options.labels.end());
  req.set_target_wait_ms(options.p95_wait_ms);
  if (options.compare.has_value()) {
    req.set_compare_since_ms(options.compare->first.Resolve(now_ms));
    req.set_compare_until_ms(options.compare->second.Resolve(now_ms));
  }
  absl::StatusOr<farm::v1::FactoryReport> report =
      session.CallOnce(&farm::v1::JobService::Stub::GetFactoryReport, session.client().jobs(), req);
  if (!report.ok()) return session.Fail(report.status());
  if (session.json()) return session.Print(ToJson(*report));
  return session.Print(ReportText(*report, session.io().time_zone));
}

// The descriptors (subjects or dependencies) of a statement: name, sha256 and size.
struct Named {
  std::string name;
  common::Digest digest;
};

// The field `name` of `s` when it holds an object (or a list); null otherwise.
const google::protobuf::Value* FieldOf(const google::protobuf::Struct& s, const char* name) {
  auto it = s.fields().find(name);
  return it == s.fields().end() ? nullptr : &it->second;
}
const google::protobuf::Struct* ObjectOf(const google::protobuf::Struct& s, const char* name) {
  const google::protobuf::Value* v = FieldOf(s, name);
  return v != nullptr && v->has_struct_value() ? &v->struct_value() : nullptr;
}

absl::StatusOr<Named> DescriptorOf(const google::protobuf::Value& v, absl::string_view where) {
  const google::protobuf::Struct* d = v.has_struct_value() ? &v.struct_value() : nullptr;
  const google::protobuf::Value* name = d != nullptr ? FieldOf(*d, "name") : nullptr;
  const google::protobuf::Struct* digest = d != nullptr ? ObjectOf(*d, "digest") : nullptr;
  const google::protobuf::Struct* notes = d != nullptr ? ObjectOf(*d, "annotations") : nullptr;
  const google::protobuf::Value* sha = digest != nullptr ? FieldOf(*digest, "sha256") : nullptr;
  const google::protobuf::Value* size = notes != nullptr ? FieldOf(*notes, "size") : nullptr;
  if (name == nullptr || sha == nullptr || size == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("a ", where, " lacks its name, its sha256 or its size annotation"));
  }
  absl::StatusOr<common::Digest> parsed =
      common::MakeDigest(sha->string_value(), static_cast<int64_t>(size->number_value()));
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, " ", name->string_value(), ": ", parsed.status().message()));
  }
  return Named{name->string_value(), *std::move(parsed)};
}

// The subjects, then the resolved dependencies.
absl::StatusOr<std::vector<Named>> Descriptors(const google::protobuf::Struct& statement) {
  const google::protobuf::Value* subjects = FieldOf(statement, "subject");
  const google::protobuf::Struct* predicate = ObjectOf(statement, "predicate");
  const google::protobuf::Struct* definition =
      predicate != nullptr ? ObjectOf(*predicate, "buildDefinition") : nullptr;
  const google::protobuf::Value* deps =
      definition != nullptr ? FieldOf(*definition, "resolvedDependencies") : nullptr;
  if (subjects == nullptr || !subjects->has_list_value()) {
    return absl::InvalidArgumentError("the statement has no subject list");
  }
  std::vector<Named> out;
  for (const google::protobuf::Value& v : subjects->list_value().values()) {
    FARM_ASSIGN_OR_RETURN(out.emplace_back(), DescriptorOf(v, "subject"));
  }
  if (deps == nullptr) return out;
  for (const google::protobuf::Value& v : deps->list_value().values()) {
    FARM_ASSIGN_OR_RETURN(out.emplace_back(), DescriptorOf(v, "dependency"));
  }
  return out;
}

// The file's text, at most `max_bytes` of it.
absl::StatusOr<std::string> ReadLimited(const std::string& path, int64_t max_bytes) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return common::ErrnoStatus(errno, absl::StrCat("open ", path));
  std::string text(static_cast<size_t>(max_bytes) + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  if (in.bad()) return common::ErrnoStatus(errno, absl::StrCat("read ", path));
  text.resize(static_cast<size_t>(in.gcount()));
  if (static_cast<int64_t>(text.size()) > max_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": larger than ", max_bytes, " bytes: not a provenance file"));
  }
  return text;
}

// Fetches each blob into `dir` and hashes it. DATA_LOSS naming the first that the store does not
// hold as named (missing, corrupt, or other bytes); other errors: farmctl could not find out.
absl::Status CheckBlobs(Session& session, const std::vector<Named>& blobs, const std::string& dir) {
  for (size_t i = 0; i < blobs.size(); ++i) {
    const std::string path = absl::StrCat(dir, "/", i);
    const absl::Status got = session.cas().Download(blobs[i].digest, path);
    absl::StatusOr<common::Digest> actual =
        got.ok() ? common::DigestFile(path) : absl::StatusOr<common::Digest>(got);
    ::unlink(path.c_str());
    if (absl::IsNotFound(got) || absl::IsDataLoss(got)) {
      return absl::DataLossError(
          absl::StrCat(blobs[i].name, " (", blobs[i].digest.ToString(), "): ", got.message()));
    }
    if (!actual.ok()) return actual.status();
    if (*actual != blobs[i].digest) {
      return absl::DataLossError(absl::StrCat(blobs[i].name, ": the store holds ",
                                              actual->ToString(), ", the statement names ",
                                              blobs[i].digest.ToString()));
    }
  }
  return absl::OkStatus();
}

// The statement does not hold: one line, exit 1 (farmctl could find out, and it is false).
int NotVerified(Session& session, const absl::Status& why) {
  session.io().err << "farmctl: NOT verified: " << why.message() << "\n";
  return kExitNotVerified;
}

int Verify(Session& session) {
  constexpr int64_t kMaxEnvelopeBytes = 64 << 20;
  absl::StatusOr<std::string> file = ReadLimited(session.options().file, kMaxEnvelopeBytes);
  if (!file.ok()) return session.Fail(file.status());
  absl::StatusOr<common::ClientSecurity> security =
      common::LoadClientSecurity(session.options().security);
  if (!security.ok()) return session.Fail(security.status());
  if (security->ca_pem.empty()) {
    return session.Fail(absl::FailedPreconditionError(
        "provenance verify checks the signature against a CA: give --tls_ca or FARM_TLS_CA"));
  }
  absl::StatusOr<common::OpenedEnvelope> opened = common::OpenEnvelope(*file, security->ca_pem);
  if (!opened.ok()) return NotVerified(session, opened.status());
  google::protobuf::Struct statement;
  if (opened->type != common::kInTotoPayloadType ||
      !google::protobuf::util::JsonStringToMessage(opened->payload, &statement).ok()) {
    return NotVerified(session,
                       absl::InvalidArgumentError("the payload is not an in-toto statement"));
  }
  absl::StatusOr<std::vector<Named>> blobs = Descriptors(statement);
  if (!blobs.ok()) return NotVerified(session, blobs.status());
  char dir[] = "/tmp/farmctl-verify-XXXXXX";
  if (::mkdtemp(dir) == nullptr) return session.Fail(common::ErrnoStatus(errno, "mkdtemp"));
  const absl::Status checked = CheckBlobs(session, *blobs, dir);
  ::rmdir(dir);
  if (absl::IsDataLoss(checked)) return NotVerified(session, checked);
  if (!checked.ok()) return session.Fail(checked);
  return session.Print(absl::StrCat("verified: signed by ", opened->signer, "; ", blobs->size(),
                                    " digests match the stored blobs\n"));
}

int Provenance(Session& session) {
  if (session.options().verify) return Verify(session);
  farm::v1::GetProvenanceRequest req;
  req.set_job_id(session.options().job_id);
  absl::StatusOr<farm::v1::Provenance> p =
      session.CallOnce(&farm::v1::JobService::Stub::GetProvenance, session.client().jobs(), req);
  if (!p.ok()) return session.Fail(p.status(), req.job_id());
  if (!p->signed_()) {
    session.io().err << "farmctl: note: the coordinator serves without TLS: the statement is "
                        "not signed\n";
  }
  return session.Print(p->envelope().back() == '\n' ? p->envelope() : p->envelope() + "\n");
}

}  // namespace

void RegisterFactoryCommands(std::vector<CommandDef>& table) {
  table.push_back(
      {"factory",
       Command::kFactory,
       {},
       true,
       {"since", "until", "pipeline", "labels", "p95-wait", "p95-lead", "first-pass-yield",
        "compare"},
       "[target set|list|rm] [--since=T] [--until=T] [--pipeline=NAME] [--labels=k=v,...] "
       "[--p95-wait=D] [--p95-lead=D] [--first-pass-yield=X] [--compare=FROM,TO]",
       "the value stream: flow, quality, the bottleneck and capacity advice, from the events",
       "Over the window (default: the last 24h), for the farm, each label pool and each\n"
       "pipeline: arrivals and completions per hour (in/h, out/h), work in progress now and\n"
       "averaged, queue wait, run and lead time (p50, p95), flow efficiency (run / lead time),\n"
       "utilisation of the pool's slots and first-pass yield. Then re-runs by cause, flaky\n"
       "steps, the bottleneck, how many agents would bring each pool's p95 wait under\n"
       "--p95-wait (default 30s; M/M/c queueing), and Little's law checked within 10%.\n"
       "--pipeline and --labels keep only those jobs. Then each pipeline's stages (its\n"
       "bottleneck: the stage whose jobs wait and run longest), the overstock (artifacts\n"
       "nobody used, CAS bytes by age, log growth, what retention would reclaim), and each\n"
       "target against its figure now and in the --compare window (default: a week\n"
       "earlier). --output=json: one FactoryReport.\n"
       "factory target set --labels=k=v,... and/or --pipeline=NAME, with --p95-wait,\n"
       "--p95-lead and/or --first-pass-yield (admin): records the targets of that scope\n"
       "(jobs whose labels include those, of that pipeline), replacing its old ones.\n"
       "factory target list; factory target rm --labels=... --pipeline=... (admin).\n",
       Factory});
  table.push_back(
      {"provenance",
       Command::kProvenance,
       {"JOB"},
       true,
       {},
       "JOB | verify FILE",
       "what made a job's artifacts: an in-toto statement (SLSA provenance), signed",
       "provenance JOB prints a DSSE envelope (JSON) holding an in-toto statement whose\n"
       "subjects are the job's artifacts, with a SLSA provenance predicate: the job's spec,\n"
       "the attempt and agent that made them, every input digest back to the first job of\n"
       "its pipeline, and each step's verdict. Signed with the coordinator's TLS key.\n"
       "provenance verify FILE checks the signature against the CA (--tls_ca or\n"
       "$FARM_TLS_CA) and that every digest it names matches the blob the store holds;\n"
       "exit 0 when all do, 1 naming the first that does not, 4 when it cannot find out.\n",
       Provenance});
}

}  // namespace farm::cli
