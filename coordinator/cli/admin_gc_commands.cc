// `farmctl admin gc [--dry-run]` (role admin; issue 13, part 3): runs a garbage collection on
// the coordinator now (AdminService.CollectGarbage) and says what it removed, or with
// --dry-run what it would remove.
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "coordinator/cli/command_table.h"
#include "coordinator/cli/format.h"
#include "coordinator/cli/session.h"

namespace farm::cli {
namespace {

std::string Bytes(int64_t n) {
  if (n >= (int64_t{1} << 30)) return absl::StrCat(n >> 20, " MiB");
  if (n >= (int64_t{1} << 20)) return absl::StrCat(n >> 10, " KiB");
  return absl::StrCat(n, " bytes");
}

std::string GcText(const farm::v1::CollectGarbageResponse& r) {
  const char* verb = r.dry_run() ? "would be removed" : "removed";
  std::string text =
      absl::StrCat(r.dry_run() ? "dry run: nothing was changed\n" : "",
                   "jobs:             ", r.jobs(), " ", verb, " (", r.pipelines(), " pipelines)\n");
  absl::StrAppend(&text, "job output:       ", r.logs(), " jobs' output ", verb, " (",
                  Bytes(r.log_bytes()), ")\n");
  absl::StrAppend(&text, "events:           ", r.events(), " ", verb, "\n");
  absl::StrAppend(&text, "action cache:     ", r.action_cache_entries(), " results ", verb, "\n");
  if (r.dry_run() && r.blob_bytes() == 0) {
    absl::StrAppend(&text, "CAS:              nothing to evict (within --cas_max_bytes)\n");
  } else if (r.dry_run()) {
    absl::StrAppend(&text, "CAS:              up to ", Bytes(r.blob_bytes()),
                    " of least recently used blobs would be evicted (above --cas_max_bytes)\n");
  } else {
    absl::StrAppend(&text, "CAS:              ", r.blobs(), " blobs evicted (",
                    Bytes(r.blob_bytes()), ")\n");
    absl::StrAppend(&text, "store on disk:    ", Bytes(r.store_bytes()), " after compaction\n");
  }
  if (r.more()) {
    absl::StrAppend(&text, "more is due than one run handles: run `farmctl admin gc` again\n");
  }
  return text;
}

int AdminGc(Session& session) {
  farm::v1::CollectGarbageRequest req;
  req.set_dry_run(session.options().dry_run);
  absl::StatusOr<farm::v1::CollectGarbageResponse> resp = session.CallOnce(
      &farm::v1::AdminService::Stub::CollectGarbage, session.client().admin(), req);
  if (!resp.ok()) return session.Fail(resp.status());
  if (session.json()) return session.Print(ToJson(*resp));
  return session.Print(GcText(*resp));
}

}  // namespace

void RegisterRetentionCommands(std::vector<CommandDef>& table) {
  table.push_back(
      {"admin gc",
       Command::kAdminGc,
       {},
       false,
       {"dry-run"},
       "[--dry-run]",
       "garbage collection now: remove what is past its retention (role admin)",
       "Removes finished jobs past --job_retention (with their output; a pipeline's jobs\n"
       "once the pipeline has ended), the output of finished jobs past --log_retention or\n"
       "above --max_log_bytes, events past --event_retention and action-cache results\n"
       "past --action_cache_retention; evicts CAS blobs above --cas_max_bytes (never\n"
       "pinned artifacts); then compacts the store so that the space is given back. The\n"
       "coordinator does the same by itself over time (every --gc_interval). Jobs that\n"
       "have not ended and the jobs of pipelines that still run are never removed.\n"
       "With --dry-run it only reports what would be removed (CAS eviction not counted).\n"
       "A run handles at most 100,000 jobs; it says when more is due.\n",
       AdminGc});
}

}  // namespace farm::cli
