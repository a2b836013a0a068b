// `farmctl factory`: the value stream of the farm, of each label pool and of each pipeline over a
// window (JobService.GetFactoryReport), as a table, the quality of what left the line, the
// bottleneck with capacity advice, and Little's law checked.
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "common/duration.h"
#include "coordinator/cli/command_table.h"
#include "coordinator/cli/format.h"
#include "coordinator/cli/session.h"

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
  for (const std::string& note : r.notes()) absl::StrAppend(&text, "Note: ", note, "\n");
  return text;
}

int Factory(Session& session) {
  const CliOptions& options = session.options();
  const int64_t now_ms = session.io().clock.NowMs();
  farm::v1::FactoryReportRequest req;
  req.set_since_ms(options.since.has_value() ? options.since->Resolve(now_ms)
                                             : now_ms - 24 * 3600'000);
  if (options.until.has_value()) req.set_until_ms(options.until->Resolve(now_ms));
  req.set_pipeline(options.pipeline_name);
  req.mutable_labels()->insert(options.labels.begin(), options.labels.end());
  req.set_target_wait_ms(options.p95_wait_ms);
  absl::StatusOr<farm::v1::FactoryReport> report =
      session.CallOnce(&farm::v1::JobService::Stub::GetFactoryReport, session.client().jobs(), req);
  if (!report.ok()) return session.Fail(report.status());
  if (session.json()) return session.Print(ToJson(*report));
  return session.Print(ReportText(*report, session.io().time_zone));
}

}  // namespace

void RegisterFactoryCommands(std::vector<CommandDef>& table) {
  table.push_back(
      {"factory",
       Command::kFactory,
       {},
       false,
       {"since", "until", "pipeline", "labels", "p95-wait"},
       "[--since=T] [--until=T] [--pipeline=NAME] [--labels=k=v,...] [--p95-wait=D]",
       "the value stream: flow, quality, the bottleneck and capacity advice, from the events",
       "Over the window (default: the last 24h), for the farm, each label pool and each\n"
       "pipeline: arrivals and completions per hour (in/h, out/h), work in progress now and\n"
       "averaged, queue wait, run and lead time (p50, p95), flow efficiency (run / lead time),\n"
       "utilisation of the pool's slots and first-pass yield. Then re-runs by cause, flaky\n"
       "steps, the bottleneck, how many agents would bring each pool's p95 wait under\n"
       "--p95-wait (default 30s; M/M/c queueing), and Little's law checked within 10%.\n"
       "--pipeline and --labels keep only those jobs. --output=json: one FactoryReport.\n",
       Factory});
}

}  // namespace farm::cli
