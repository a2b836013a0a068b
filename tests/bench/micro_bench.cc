// Micro-benchmarks (Google Benchmark) for the floors under the scenarios' figures, measured on
// the machine that runs them: SHA-256 over memory (the CAS hashes every byte it stores) and one
// RocksDB write with and without fsync (every acknowledged change is one synced write, shared
// by a group of commands). farm-micro-bench --benchmark_filter=... runs a subset.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/digest.h"
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

}  // namespace
}  // namespace farm::bench

BENCHMARK_MAIN();
