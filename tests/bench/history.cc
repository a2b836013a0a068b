// farm-bench-history --data_dir=DIR --events=N [--hours=24]: writes an event history of about N
// events into a coordinator's data directory (its job store, DIR/db), as the coordinator itself
// records them, for the factory scenario: jobs of 4 label pools arriving evenly over the last
// HOURS, each submitted, queued, leased, its step started and finished, its attempt and the job
// ended (7 events); 5% fail, and one step definition in 50 is flaky. No job records: the
// factory report reads the events alone. The coordinator must not be running.
#include <cstdint>
#include <iostream>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "coordinator/store/keys.h"
#include "coordinator/store/rocksdb_store.h"
#include "farm/v1/farm.pb.h"

ABSL_FLAG(std::string, data_dir, "", "the coordinator's --data_dir");
ABSL_FLAG(int64_t, events, 1'000'000, "about how many events to write");
ABSL_FLAG(int64_t, hours, 24, "spread over this many hours before now");

namespace farm::bench {
namespace {

using coordinator::Cf;
namespace keys = coordinator::keys;

constexpr int kEventsPerJob = 7;
constexpr size_t kBatchEvents = 20'000;

struct Writer {
  coordinator::Store* store;
  coordinator::WriteBatch batch;
  uint64_t seq = 0;
  size_t pending = 0;

  absl::Status Add(farm::v1::Event e) {
    e.set_seq(++seq);
    batch.Put(Cf::kEvents, keys::EventKey(e.time_ms(), e.seq()), e.SerializeAsString());
    if (++pending < kBatchEvents) return absl::OkStatus();
    return Flush();
  }
  absl::Status Flush() {
    if (pending == 0) return absl::OkStatus();
    absl::Status s = store->Write(batch, /*sync=*/false);
    batch = coordinator::WriteBatch();
    pending = 0;
    return s;
  }
};

absl::Status Run(const std::string& data_dir, int64_t events, int64_t hours) {
  coordinator::RocksDbStoreOptions options;
  options.path = data_dir + "/db";
  absl::StatusOr<std::unique_ptr<coordinator::RocksDbStore>> store =
      coordinator::RocksDbStore::Open(options);
  if (!store.ok()) return store.status();
  Writer w{store->get()};
  std::vector<uint64_t> pools;
  for (const char* os : {"linux", "mac", "windows", "bsd"}) {
    const std::string canonical = keys::CanonicalLabels({{"os", os}});
    pools.push_back(keys::LabelSetId(canonical));
    std::string key(keys::kLabelSetPrefix);
    keys::AppendU64(key, pools.back());
    w.batch.Put(Cf::kMeta, key, canonical);
  }
  std::mt19937_64 rng(1);
  std::exponential_distribution<double> wait_s(1 / 20.0);
  std::exponential_distribution<double> run_s(1 / 120.0);
  const int64_t jobs = events / kEventsPerJob;
  const int64_t end = absl::ToUnixMillis(absl::Now()) - 3'600'000;  // all ended an hour ago
  const int64_t start = end - hours * 3'600'000;
  for (int64_t j = 0; j < jobs; ++j) {
    const int64_t submitted = start + (end - start) * j / jobs;
    const int64_t leased = submitted + static_cast<int64_t>(1000 * wait_s(rng));
    const int64_t ended = leased + static_cast<int64_t>(1000 * run_s(rng));
    const bool failed = rng() % 20 == 0;
    farm::v1::Event e;
    e.set_job_id(absl::StrCat(j + 1));
    e.set_labelset(pools[static_cast<size_t>(j) % pools.size()]);
    auto at = [&](farm::v1::EventKind kind, int64_t t) {
      farm::v1::Event copy = e;
      copy.set_kind(kind);
      copy.set_time_ms(t);
      return copy;
    };
    farm::v1::Event submitted_e = at(farm::v1::JOB_SUBMITTED, submitted);
    submitted_e.set_job_name(absl::StrCat("build-", j % 500));
    for (farm::v1::Event ev : {submitted_e, at(farm::v1::JOB_QUEUED, submitted)}) {
      if (absl::Status s = w.Add(ev); !s.ok()) return s;
    }
    farm::v1::Event lease = at(farm::v1::JOB_LEASED, leased);
    lease.set_attempt(1);
    lease.set_agent(absl::StrCat("agent-", j % 40));
    farm::v1::Event step = at(farm::v1::STEP_STARTED, leased);
    step.set_step("test");
    farm::v1::Event done = at(farm::v1::STEP_FINISHED, ended);
    done.set_step("test");
    done.set_step_fingerprint(absl::StrCat(j % 500, "f"));
    done.set_step_state(failed ? farm::v1::STEP_FAILED : farm::v1::STEP_SUCCEEDED);
    farm::v1::Event attempt = at(farm::v1::ATTEMPT_ENDED, ended);
    attempt.set_attempt(1);
    attempt.set_outcome(failed ? farm::v1::ATTEMPT_FAILED : farm::v1::ATTEMPT_SUCCEEDED);
    farm::v1::Event job = at(farm::v1::JOB_ENDED, ended);
    job.set_attempt(1);
    job.set_state(failed ? farm::v1::FAILED : farm::v1::SUCCEEDED);
    for (farm::v1::Event ev : {lease, step, done, attempt, job}) {
      if (absl::Status s = w.Add(ev); !s.ok()) return s;
    }
  }
  return w.Flush();
}

}  // namespace
}  // namespace farm::bench

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const std::string dir = absl::GetFlag(FLAGS_data_dir);
  if (dir.empty()) {
    std::cerr << "farm-bench-history: --data_dir is required\n";
    return 64;
  }
  absl::Status s = farm::bench::Run(dir, absl::GetFlag(FLAGS_events), absl::GetFlag(FLAGS_hours));
  if (!s.ok()) {
    std::cerr << "farm-bench-history: " << s << "\n";
    return 1;
  }
  return 0;
}
