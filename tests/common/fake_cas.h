// An in-memory stand-in for the coordinator's REAPI CAS (ContentAddressableStorage, ByteStream,
// Capabilities) for the client-side tests: common::CasClient, the agent's artifact upload and
// farmctl's download and `cas` commands. It checks what a real store checks (digests of what it
// receives, write offsets, resource names) and counts and injects what the tests need to see:
// batches, streams, broken streams, corrupted reads.
//
// Use it on its own (Start() binds 127.0.0.1:0) or register its services on another test
// server (services()).
//
// Thread-safe.
#pragma once

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "build/bazel/remote/execution/v2/remote_execution.grpc.pb.h"
#include "google/bytestream/bytestream.grpc.pb.h"

namespace farm::testing {

class FakeCas {
 public:
  struct Stats {
    int find_missing_calls = 0;
    int batch_update_calls = 0;
    std::vector<int> batch_sizes;  // blobs per BatchUpdateBlobs call
    int write_streams = 0;         // ByteStream.Write calls
    int64_t write_bytes = 0;       // data bytes received by Write
    std::vector<std::string> write_resources;
    int query_write_status_calls = 0;
    int read_streams = 0;
    std::vector<int64_t> read_offsets;  // read_offset of each Read
    int capabilities_calls = 0;
  };

  FakeCas();
  ~FakeCas();

  // Serves on 127.0.0.1:0; returns "127.0.0.1:PORT" ("" on failure).
  std::string Start();
  // The three services, to register on a server the test builds itself. Owned by this object.
  std::vector<grpc::Service*> services();

  // Stores a blob directly; returns its "HASH/SIZE".
  std::string Put(const std::string& data);
  // Stores `data` under `key` ("HASH/SIZE") without checking: a corrupt blob.
  void PutRaw(const std::string& key, const std::string& data);
  bool Has(const std::string& key) const;
  // The blob's bytes, or "" when absent.
  std::string Get(const std::string& key) const;
  size_t blob_count() const;

  // What GetCapabilities reports as max_batch_total_size_bytes (0: no limit).
  void SetMaxBatchBytes(int64_t bytes);
  // The next `count` Write streams each end with UNAVAILABLE once they have received
  // `after_bytes` bytes (what was received stays committed, as QueryWriteStatus reports).
  void BreakNextWrites(int count, int64_t after_bytes);
  // The next `count` Read streams end with UNAVAILABLE after sending `after_bytes` bytes.
  void BreakNextReads(int count, int64_t after_bytes);
  // The next `count` FindMissingBlobs calls fail with UNAVAILABLE.
  void FailNextFindMissing(int count);
  // Read chunks are this large (default 64 KiB).
  void SetReadChunkBytes(int64_t bytes);

  Stats stats() const;

 private:
  class CasService;
  class ByteStreamService;
  class CapabilitiesService;

  struct Upload {
    std::string data;  // committed so far
    bool complete = false;
  };

  mutable absl::Mutex mu_;
  std::map<std::string, std::string> blobs_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, Upload> uploads_ ABSL_GUARDED_BY(mu_);  // by resource name
  int64_t max_batch_bytes_ ABSL_GUARDED_BY(mu_) = 4 << 20;
  int writes_to_break_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t break_write_after_ ABSL_GUARDED_BY(mu_) = 0;
  int reads_to_break_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t break_read_after_ ABSL_GUARDED_BY(mu_) = 0;
  int find_missing_to_fail_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t read_chunk_bytes_ ABSL_GUARDED_BY(mu_) = 64 << 10;
  Stats stats_ ABSL_GUARDED_BY(mu_);

  std::unique_ptr<CasService> cas_;
  std::unique_ptr<ByteStreamService> bytestream_;
  std::unique_ptr<CapabilitiesService> capabilities_;
  std::unique_ptr<grpc::Server> server_;
};

}  // namespace farm::testing
