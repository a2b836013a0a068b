// Micro-benchmarks (Google Benchmark) for the floors under the scenarios' figures, measured on
// the machine that runs them: SHA-256 over memory (the CAS hashes every byte it stores) and one
// RocksDB write with and without fsync (every acknowledged change is one synced write, shared
// by a group of commands), and secret redaction over a build log (every byte of every job's
// output goes through it, in the agent and again in the coordinator). farm-micro-bench
// --benchmark_filter=... runs a subset.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/digest.h"
#include "common/redactor.h"
#include "coordinator/store/keys.h"
#include "coordinator/store/rocksdb_store.h"
#include "tests/testing/temp_dir.h"

namespace farm::bench {
namespace {

void BM_Sha256(benchmark::State& state) {
  const std::string data(static_cast<size_t>(state.range(0)), 'x');
  for (auto _ : state) {
    common::Sha256Hasher hasher;
    hasher.Update(data);
    benchmark::DoNotOptimize(hasher.Finish());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * state.range(0));
}
BENCHMARK(BM_Sha256)->Arg(4 << 10)->Arg(1 << 20);

// One write of one job-sized record; arg 1 syncs (the coordinator's setting), 0 does not.
void BM_RocksDbWrite(benchmark::State& state) {
  auto dir = testing::TempDir::Create("farm-micro-bench");
  if (!dir.ok()) return state.SkipWithError(dir.status().ToString().c_str());
  coordinator::RocksDbStoreOptions options;
  options.path = dir->Join("db");
  auto store = coordinator::RocksDbStore::Open(options);
  if (!store.ok()) return state.SkipWithError(store.status().ToString().c_str());
  const bool sync = state.range(0) != 0;
  const std::string value(300, 'j');
  uint64_t seq = 0;
  for (auto _ : state) {
    coordinator::WriteBatch batch;
    batch.Put(coordinator::Cf::kJobs, coordinator::keys::U64(++seq), value);
    absl::Status s = (*store)->Write(batch, sync);
    if (!s.ok()) return state.SkipWithError(s.ToString().c_str());
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_RocksDbWrite)->Arg(1)->Arg(0)->UseRealTime();

// Redacts 8 MiB of build-log-like text in 4 KiB chunks (the agent's reads) with range(0) random
// alphanumeric secrets of 16 to 48 bytes, one occurrence about every 50 KiB; bytes/s is the
// redactor's throughput.
void BM_Redactor(benchmark::State& state) {
  std::mt19937 rng(42);
  auto random_text = [&](size_t size) {
    static constexpr char kAlnum[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    std::string s;
    for (size_t i = 0; i < size; ++i) s += kAlnum[rng() % (sizeof(kAlnum) - 1)];
    return s;
  };
  std::vector<common::NamedSecret> secrets;
  for (int i = 0; i < state.range(0); ++i) {
    secrets.push_back({absl::StrCat("S", i), random_text(16 + rng() % 33)});
  }
  auto patterns = common::RedactionPatterns::Create(secrets);
  if (!patterns.ok()) return state.SkipWithError(patterns.status().ToString().c_str());
  std::string log;
  for (int line = 0; log.size() < (8u << 20); ++line) {
    absl::StrAppend(&log, "[", line, "/9000] Building CXX object coordinator/scheduler/CMakeFiles/",
                    "engine.dir/engine_", line % 97, ".cc.o -O2 -Wall token=", random_text(8),
                    "\n");
    if (!secrets.empty() && line % 512 == 0) {
      absl::StrAppend(&log, "export KEY=", secrets[line % secrets.size()].value, "\n");
    }
  }
  std::string out;
  for (auto _ : state) {
    common::Redactor redactor(*patterns);
    out.clear();
    for (size_t at = 0; at < log.size(); at += 4096) {
      redactor.Feed(absl::string_view(log).substr(at, 4096), &out);
    }
    redactor.Flush(&out);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * log.size()));
}
BENCHMARK(BM_Redactor)->Arg(0)->Arg(1)->Arg(10)->Arg(100)->Arg(1000);

}  // namespace
}  // namespace farm::bench

BENCHMARK_MAIN();
