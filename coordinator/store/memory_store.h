// An in-memory Store for unit tests. Thread-safe. Can be told to fail writes or reads, to
// exercise the callers' error paths.
#pragma once

#include <map>
#include <string>

#include "absl/synchronization/mutex.h"
#include "coordinator/store/store.h"

namespace farm::coordinator {

class MemoryStore : public Store {
 public:
  absl::StatusOr<std::optional<std::string>> Get(Cf cf, absl::string_view key) override;
  absl::Status Scan(Cf cf, absl::string_view start, absl::string_view limit, const ScanFn& fn,
                    bool reverse) override;
  absl::Status Write(const WriteBatch& batch, bool sync) override;

  // Every Write fails with `status` until called again with OK.
  void FailWrites(absl::Status status);
  // The next `times` reads (Get or Scan) of family `cf` fail with `status`.
  void FailReads(Cf cf, absl::Status status, int times);
  int64_t writes() const;

 private:
  mutable absl::Mutex mu_;
  std::map<std::string, std::string> data_[kNumCfs] ABSL_GUARDED_BY(mu_);
  absl::Status fail_ ABSL_GUARDED_BY(mu_);
  absl::Status read_fail_[kNumCfs] ABSL_GUARDED_BY(mu_);
  int read_fail_times_[kNumCfs] ABSL_GUARDED_BY(mu_) = {};

  // The injected read failure of `cf`, if one is due (and counts it).
  absl::Status ReadFault(Cf cf) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  int64_t writes_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace farm::coordinator
