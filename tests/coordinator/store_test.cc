#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "coordinator/store/memory_store.h"
#include "coordinator/store/rocksdb_store.h"
#include "tests/testing/status_matchers.h"

namespace farm::coordinator {
namespace {

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/farm-store-test-XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

enum class Kind { kMemory, kRocksDb };

class StoreTest : public ::testing::TestWithParam<Kind> {
 protected:
  void SetUp() override { Reopen(); }
  void Reopen() {
    store_.reset();
    if (GetParam() == Kind::kMemory) {
      if (memory_ == nullptr) memory_ = std::make_unique<MemoryStore>();
      return;
    }
    auto s = RocksDbStore::Open({dir_.path() + "/db"});
    ASSERT_OK(s);
    store_ = std::move(*s);
  }
  Store* store() { return GetParam() == Kind::kMemory ? memory_.get() : store_.get(); }

  std::vector<std::string> Keys(Cf cf, absl::string_view start, absl::string_view limit,
                                bool reverse) {
    std::vector<std::string> out;
    EXPECT_OK(store()->Scan(
        cf, start, limit,
        [&](absl::string_view k, absl::string_view) {
          out.emplace_back(k);
          return true;
        },
        reverse));
    return out;
  }

  TempDir dir_;
  std::unique_ptr<MemoryStore> memory_;
  std::unique_ptr<Store> store_;
};

TEST_P(StoreTest, BatchesApplyAtomicallyAndFamiliesAreSeparate) {
  WriteBatch b;
  b.Put(Cf::kJobs, "a", "1");
  b.Put(Cf::kQueue, "a", "queue");
  b.Put(Cf::kJobs, "b", "2");
  b.Delete(Cf::kJobs, "b");
  ASSERT_OK(store()->Write(b, /*sync=*/true));
  ASSERT_OK_AND_ASSIGN(auto a, store()->Get(Cf::kJobs, "a"));
  EXPECT_EQ(a, "1");
  ASSERT_OK_AND_ASSIGN(auto q, store()->Get(Cf::kQueue, "a"));
  EXPECT_EQ(q, "queue");
  ASSERT_OK_AND_ASSIGN(auto gone, store()->Get(Cf::kJobs, "b"));
  EXPECT_FALSE(gone.has_value());
  ASSERT_OK_AND_ASSIGN(auto none, store()->Get(Cf::kLogs, "a"));
  EXPECT_FALSE(none.has_value());
}

TEST_P(StoreTest, ScansAreOrderedBothWaysAndBounded) {
  WriteBatch b;
  for (std::string k : {"a1", "a2", "a3", "b1"}) b.Put(Cf::kLogs, k, "v");
  ASSERT_OK(store()->Write(b, true));
  EXPECT_EQ(Keys(Cf::kLogs, "a", "b", false), (std::vector<std::string>{"a1", "a2", "a3"}));
  EXPECT_EQ(Keys(Cf::kLogs, "a", "b", true), (std::vector<std::string>{"a3", "a2", "a1"}));
  EXPECT_EQ(Keys(Cf::kLogs, "a2", "", false), (std::vector<std::string>{"a2", "a3", "b1"}));
  EXPECT_EQ(Keys(Cf::kLogs, "", "a3", true), (std::vector<std::string>{"a2", "a1"}));
  EXPECT_EQ(Keys(Cf::kLogs, "", "", true), (std::vector<std::string>{"b1", "a3", "a2", "a1"}));
}

TEST_P(StoreTest, DataSurvivesReopen) {
  WriteBatch b;
  b.Put(Cf::kMeta, "next_seq", "x");
  ASSERT_OK(store()->Write(b, true));
  Reopen();
  ASSERT_OK_AND_ASSIGN(auto v, store()->Get(Cf::kMeta, "next_seq"));
  EXPECT_EQ(v, "x");
}

INSTANTIATE_TEST_SUITE_P(Stores, StoreTest, ::testing::Values(Kind::kMemory, Kind::kRocksDb),
                         [](const auto& info) {
                           return info.param == Kind::kMemory ? "Memory" : "RocksDb";
                         });

TEST(RocksDbStoreTest, SecondOpenOfTheSameDirectoryFailsClearly) {
  TempDir dir;
  auto first = RocksDbStore::Open({dir.path() + "/db"});
  ASSERT_OK(first);
  auto second = RocksDbStore::Open({dir.path() + "/db"});
  EXPECT_FALSE(second.ok());
  EXPECT_NE(std::string(second.status().message()).find(dir.path()), std::string::npos)
      << second.status();
}

}  // namespace
}  // namespace farm::coordinator
