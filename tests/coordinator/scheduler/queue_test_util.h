// The fixture of the queue index's tests (queue_index_test.cc, queue_pauses_test.cc).
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "coordinator/scheduler/queue_index.h"
#include "tests/coordinator/scheduler/part_test_util.h"

namespace farm::coordinator {

class QueuePartTest : public PartTest {
 protected:
  // Pops everything an agent with `labels` may run, in order, in one committed transaction.
  std::vector<uint64_t> Drain(QueueIndex& q, const Labels& labels) {
    std::vector<uint64_t> out;
    Txn txn(&store_);
    while (true) {
      absl::StatusOr<std::optional<uint64_t>> seq = q.PopFor(txn, labels);
      EXPECT_OK(seq);
      if (!seq.ok() || !seq->has_value()) break;
      out.push_back(**seq);
    }
    Commit(txn);
    return out;
  }

  LabelSets sets_;
};

}  // namespace farm::coordinator
