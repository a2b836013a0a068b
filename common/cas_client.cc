#include "common/cas_client.h"

#include <fcntl.h>
#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <functional>
#include <random>
#include <thread>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "build/bazel/remote/execution/v2/remote_execution.grpc.pb.h"
#include "common/backoff.h"
#include "common/grpc_status.h"
#include "common/posix_io.h"
#include "common/status_macros.h"
#include "common/unique_fd.h"
#include "google/bytestream/bytestream.grpc.pb.h"

namespace farm::common {

namespace reapi = ::build::bazel::remote::execution::v2;
namespace bytestream = ::google::bytestream;

struct CasClient::Stubs {
  std::unique_ptr<reapi::ContentAddressableStorage::Stub> cas;
  std::unique_ptr<bytestream::ByteStream::Stub> bytestream;
  std::unique_ptr<reapi::Capabilities::Stub> capabilities;
};

namespace {

// FindMissingBlobs requests hold at most this many digests (about 100 bytes each on the wire).
constexpr size_t kMaxDigestsPerFindMissing = 10'000;
// What a blob costs in a BatchUpdateBlobs request besides its bytes (digest, tags, lengths),
// rounded up; and what the request costs besides its blobs.
constexpr int64_t kBatchEntryOverhead = 128;
constexpr int64_t kBatchRequestOverhead = 1024;

std::string Key(const Digest& digest) { return digest.ToString(); }

reapi::Digest ToProto(const Digest& digest) {
  reapi::Digest proto;
  proto.set_hash(digest.hash);
  proto.set_size_bytes(digest.size);
  return proto;
}

std::string RandomHex(int bytes) {
  static thread_local std::mt19937_64 rng = [] {
    std::random_device device;
    return std::mt19937_64((static_cast<uint64_t>(device()) << 32) ^ device());
  }();
  std::string out;
  for (int i = 0; i < bytes; i += 8) absl::StrAppendFormat(&out, "%016x", rng());
  out.resize(static_cast<size_t>(bytes) * 2);
  return out;
}

// A random (version 4) UUID, as the upload resource name wants one.
std::string NewUuid() {
  std::string hex = RandomHex(16);
  hex[12] = '4';
  hex[16] = "89ab"[hex[16] % 4];
  return absl::StrCat(hex.substr(0, 8), "-", hex.substr(8, 4), "-", hex.substr(12, 4), "-",
                      hex.substr(16, 4), "-", hex.substr(20, 12));
}

// The Status with `prefix` in front of its message, same code.
absl::Status Annotate(const absl::Status& status, absl::string_view prefix) {
  if (status.ok()) return status;
  return absl::Status(status.code(), absl::StrCat(prefix, status.message()));
}

// Opens the file for reading and checks that it still has its digest's size.
absl::StatusOr<std::unique_ptr<UniqueFd>> OpenForUpload(const CasClient::FileUpload& file) {
  const int64_t size = file.digest.size;
  std::unique_ptr<UniqueFd> fd;
  if (file.open) {
    FARM_ASSIGN_OR_RETURN(UniqueFd opened, file.open());
    fd = std::make_unique<UniqueFd>(std::move(opened));
  } else {
    fd = std::make_unique<UniqueFd>(::open(file.path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd->get() < 0) return ErrnoStatus(errno, "cannot open");
  }
  struct stat st;
  if (::fstat(fd->get(), &st) != 0) return ErrnoStatus(errno, "cannot stat");
  if (!S_ISREG(st.st_mode)) return absl::FailedPreconditionError("not a regular file");
  if (st.st_size != size) {
    return absl::FailedPreconditionError(absl::StrCat("it is ", st.st_size, " bytes now but was ",
                                                      size, " when hashed (it changed)"));
  }
  return fd;
}

// Reads exactly `length` bytes at `offset` into `out`. FAILED_PRECONDITION when the file is
// shorter (it changed).
absl::Status ReadAt(int fd, int64_t offset, int64_t length, std::string* out) {
  out->resize(static_cast<size_t>(length));
  FARM_ASSIGN_OR_RETURN(const bool complete,
                        ReadExactlyAt(fd, out->data(), out->size(), offset, "cannot read"));
  if (!complete) return absl::FailedPreconditionError("it became shorter while being uploaded");
  return absl::OkStatus();
}

// Runs one call with a fresh context: deadline, wait_for_ready, registered with `cancel`.
absl::Status CallOnce(const CasClientOptions& options, int64_t deadline_ms, CancelSource* cancel,
                      const std::function<grpc::Status(grpc::ClientContext*)>& call) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(deadline_ms));
  context.set_wait_for_ready(options.wait_for_ready);
  if (cancel != nullptr && !cancel->Attach(&context)) return absl::CancelledError("cancelled");
  const grpc::Status status = call(&context);
  if (cancel != nullptr) cancel->Detach(&context);
  return FromGrpcStatus(status);
}

// Sleeps before a retry; false when `cancel` fired meanwhile.
bool Pause(CancelSource* cancel, int64_t ms) {
  if (cancel != nullptr) return !cancel->SleepFor(ms);
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return true;
}

// Runs `call` (a unary RPC) until it returns something other than UNAVAILABLE, or tries run out.
absl::Status CallWithRetries(const CasClientOptions& options, CancelSource* cancel,
                             const std::function<grpc::Status(grpc::ClientContext*)>& call) {
  Backoff backoff(options.initial_backoff_ms, options.max_backoff_ms);
  for (int attempt = 1;; ++attempt) {
    absl::Status status = CallOnce(options, options.rpc_timeout_ms, cancel, call);
    if (status.code() != absl::StatusCode::kUnavailable || attempt >= options.attempts) {
      return status;
    }
    if (!Pause(cancel, backoff.NextDelayMs())) return absl::CancelledError("cancelled");
  }
}

int64_t StreamDeadlineMs(const CasClientOptions& options, int64_t bytes) {
  const int64_t rate = std::max<int64_t>(options.min_stream_bytes_per_second, 1);
  return options.stream_timeout_ms + bytes / rate * 1000 + (bytes % rate) * 1000 / rate;
}

}  // namespace

CasClient::CasClient(std::shared_ptr<grpc::Channel> channel, CasClientOptions options)
    : options_(options), stubs_(std::make_unique<Stubs>()) {
  stubs_->cas = reapi::ContentAddressableStorage::NewStub(channel);
  stubs_->bytestream = bytestream::ByteStream::NewStub(channel);
  stubs_->capabilities = reapi::Capabilities::NewStub(channel);
}

CasClient::~CasClient() = default;

absl::StatusOr<std::vector<Digest>> CasClient::FindMissing(const std::vector<Digest>& digests,
                                                           CancelSource* cancel) {
  std::vector<Digest> unique;
  absl::flat_hash_set<std::string> seen;
  for (const Digest& digest : digests) {
    if (seen.insert(Key(digest)).second) unique.push_back(digest);
  }
  absl::flat_hash_set<std::string> missing;
  for (size_t begin = 0; begin < unique.size(); begin += kMaxDigestsPerFindMissing) {
    const size_t end = std::min(unique.size(), begin + kMaxDigestsPerFindMissing);
    reapi::FindMissingBlobsRequest request;
    for (size_t i = begin; i < end; ++i) *request.add_blob_digests() = ToProto(unique[i]);
    reapi::FindMissingBlobsResponse response;
    FARM_RETURN_IF_ERROR(Annotate(CallWithRetries(options_, cancel,
                                                  [&](grpc::ClientContext* context) {
                                                    return stubs_->cas->FindMissingBlobs(
                                                        context, request, &response);
                                                  }),
                                  "FindMissingBlobs: "));
    for (const reapi::Digest& digest : response.missing_blob_digests()) {
      missing.insert(absl::StrCat(digest.hash(), "/", digest.size_bytes()));
    }
  }
  std::vector<Digest> result;
  for (const Digest& digest : unique) {
    if (missing.contains(Key(digest))) result.push_back(digest);
  }
  return result;
}

absl::StatusOr<bool> CasClient::Stat(const Digest& digest, CancelSource* cancel) {
  FARM_ASSIGN_OR_RETURN(std::vector<Digest> missing, FindMissing({digest}, cancel));
  return missing.empty();
}

absl::StatusOr<int64_t> CasClient::BatchLimit(CancelSource* cancel) {
  {
    absl::MutexLock lock(&mu_);
    if (batch_limit_ > 0) return batch_limit_;
  }
  // Asked outside the lock: two threads asking at once is harmless.
  reapi::GetCapabilitiesRequest request;
  reapi::ServerCapabilities capabilities;
  const absl::Status status = CallWithRetries(options_, cancel, [&](grpc::ClientContext* context) {
    return stubs_->capabilities->GetCapabilities(context, request, &capabilities);
  });
  int64_t limit = options_.max_batch_bytes;
  if (status.ok()) {
    const int64_t server = capabilities.cache_capabilities().max_batch_total_size_bytes();
    if (server > 0) limit = std::min(limit, server);
  } else if (status.code() != absl::StatusCode::kUnimplemented) {
    return Annotate(status, "GetCapabilities: ");
  }
  absl::MutexLock lock(&mu_);
  batch_limit_ = limit;
  return limit;
}

absl::Status CasClient::UploadFile(const std::string& path, const Digest& digest,
                                   CancelSource* cancel) {
  return UploadFiles({FileUpload{path, "", digest}}, cancel);
}

absl::Status CasClient::UploadFiles(const std::vector<FileUpload>& files, CancelSource* cancel) {
  std::vector<const FileUpload*> small;
  std::vector<const FileUpload*> large;
  int64_t limit = 0;
  for (const FileUpload& file : files) {
    if (file.digest.size == 0) continue;
    if (file.digest.size <= kSmallBlobBytes) {
      if (limit == 0) {
        FARM_ASSIGN_OR_RETURN(limit, BatchLimit(cancel));
      }
      if (file.digest.size + kBatchEntryOverhead + kBatchRequestOverhead <= limit) {
        small.push_back(&file);
        continue;
      }
    }
    large.push_back(&file);
  }

  std::vector<const FileUpload*> batch;
  int64_t batch_bytes = kBatchRequestOverhead;
  for (const FileUpload* file : small) {
    const int64_t cost = file->digest.size + kBatchEntryOverhead;
    if (!batch.empty() && batch_bytes + cost > limit) {
      FARM_RETURN_IF_ERROR(UploadBatch(batch, cancel));
      batch.clear();
      batch_bytes = kBatchRequestOverhead;
    }
    batch.push_back(file);
    batch_bytes += cost;
  }
  if (!batch.empty()) FARM_RETURN_IF_ERROR(UploadBatch(batch, cancel));

  for (const FileUpload* file : large) FARM_RETURN_IF_ERROR(WriteStream(*file, cancel));
  return absl::OkStatus();
}

absl::Status CasClient::UploadBatch(const std::vector<const FileUpload*>& files,
                                    CancelSource* cancel) {
  reapi::BatchUpdateBlobsRequest request;
  absl::flat_hash_map<std::string, const FileUpload*> by_key;
  for (const FileUpload* file : files) {
    const std::string& name = file->label.empty() ? file->path : file->label;
    if (!by_key.emplace(Key(file->digest), file).second) continue;  // the same content twice
    absl::StatusOr<std::unique_ptr<UniqueFd>> fd = OpenForUpload(*file);
    if (!fd.ok()) return Annotate(fd.status(), absl::StrCat(name, ": "));
    reapi::BatchUpdateBlobsRequest::Request* entry = request.add_requests();
    *entry->mutable_digest() = ToProto(file->digest);
    FARM_RETURN_IF_ERROR(Annotate(ReadAt((*fd)->get(), 0, file->digest.size, entry->mutable_data()),
                                  absl::StrCat(name, ": ")));
  }
  reapi::BatchUpdateBlobsResponse response;
  FARM_RETURN_IF_ERROR(Annotate(CallWithRetries(options_, cancel,
                                                [&](grpc::ClientContext* context) {
                                                  return stubs_->cas->BatchUpdateBlobs(
                                                      context, request, &response);
                                                }),
                                "BatchUpdateBlobs: "));
  absl::flat_hash_set<std::string> confirmed;
  for (const auto& entry : response.responses()) {
    const std::string key = absl::StrCat(entry.digest().hash(), "/", entry.digest().size_bytes());
    auto it = by_key.find(key);
    if (it == by_key.end()) continue;
    if (entry.status().code() != 0) {
      const FileUpload* file = it->second;
      return absl::Status(
          static_cast<absl::StatusCode>(entry.status().code()),
          absl::StrCat(file->label.empty() ? file->path : file->label,
                       ": the store refused the upload: ", entry.status().message()));
    }
    confirmed.insert(key);
  }
  for (const auto& [key, file] : by_key) {
    if (!confirmed.contains(key)) {
      return absl::InternalError(absl::StrCat(file->label.empty() ? file->path : file->label,
                                              ": the store did not confirm the upload of ", key));
    }
  }
  return absl::OkStatus();
}

absl::Status CasClient::WriteStream(const FileUpload& file, CancelSource* cancel) {
  const std::string& name = file.label.empty() ? file.path : file.label;
  const int64_t size = file.digest.size;
  absl::StatusOr<std::unique_ptr<UniqueFd>> fd = OpenForUpload(file);
  if (!fd.ok()) return Annotate(fd.status(), absl::StrCat(name, ": "));
  const std::string resource =
      absl::StrCat("uploads/", NewUuid(), "/blobs/", file.digest.hash, "/", size);
  const int64_t chunk = std::max<int64_t>(options_.chunk_bytes, 1);

  Backoff backoff(options_.initial_backoff_ms, options_.max_backoff_ms);
  int failures = 0;
  int64_t offset = 0;
  for (;;) {
    // One Write stream from `offset` to the end.
    google::bytestream::WriteResponse response;
    absl::Status local;  // a failure on our side (reading the file) ends the upload
    const int64_t started_at = offset;
    absl::Status status =
        CallOnce(options_, StreamDeadlineMs(options_, size - offset), cancel,
                 [&](grpc::ClientContext* context) {
                   std::unique_ptr<grpc::ClientWriter<bytestream::WriteRequest>> writer =
                       stubs_->bytestream->Write(context, &response);
                   bytestream::WriteRequest request;
                   int64_t at = offset;
                   bool open = true;
                   do {
                     request.Clear();
                     if (at == offset) request.set_resource_name(resource);
                     request.set_write_offset(at);
                     const int64_t n = std::min(chunk, size - at);
                     local = ReadAt((*fd)->get(), at, n, request.mutable_data());
                     if (!local.ok()) {
                       context->TryCancel();
                       break;
                     }
                     request.set_finish_write(at + n == size);
                     open = writer->Write(request);
                     at += n;
                   } while (open && at < size);
                   if (open && local.ok()) writer->WritesDone();
                   return writer->Finish();
                 });
    if (!local.ok()) return Annotate(local, absl::StrCat(name, ": "));
    if (status.ok()) {
      if (response.committed_size() == size) return absl::OkStatus();
      return absl::InternalError(absl::StrCat(name, ": the store committed ",
                                              response.committed_size(), " of ", size, " bytes"));
    }
    if (status.code() != absl::StatusCode::kUnavailable) {
      return Annotate(status, absl::StrCat(name, ": ByteStream.Write: "));
    }
    if (++failures >= options_.attempts) {
      return Annotate(status, absl::StrCat(name, ": ByteStream.Write (", failures, " tries): "));
    }
    if (!Pause(cancel, backoff.NextDelayMs())) return absl::CancelledError("cancelled");

    // Where did the server get to? Resume from there.
    bytestream::QueryWriteStatusRequest query;
    query.set_resource_name(resource);
    bytestream::QueryWriteStatusResponse where;
    const absl::Status queried =
        CallWithRetries(options_, cancel, [&](grpc::ClientContext* context) {
          return stubs_->bytestream->QueryWriteStatus(context, query, &where);
        });
    if (queried.ok()) {
      if (where.complete()) return absl::OkStatus();
      offset = (where.committed_size() >= 0 && where.committed_size() <= size)
                   ? where.committed_size()
                   : 0;
    } else if (queried.code() == absl::StatusCode::kNotFound) {
      offset = 0;  // the server kept nothing of it
    } else {
      return Annotate(queried, absl::StrCat(name, ": ByteStream.QueryWriteStatus: "));
    }
    if (offset > started_at) {
      failures = 0;  // progress: only consecutive failures count
      backoff.Reset();
    }
  }
}

absl::Status CasClient::Download(const Digest& digest, const std::string& path, bool executable,
                                 CancelSource* cancel) {
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : path.substr(0, slash + 1);
  const std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  UniqueFd dir_fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir_fd.get() < 0) return ErrnoStatus(errno, absl::StrCat(path, ": cannot create"));
  return DownloadAt(digest, dir_fd.get(), base, path, executable, cancel);
}

absl::Status CasClient::DownloadAt(const Digest& digest, int dir, const std::string& base,
                                   absl::string_view path, bool executable, CancelSource* cancel) {
  const std::string label = Key(digest);
  if (base.empty() || base == "." || base == ".." || base.find('/') != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a file name"));
  }
  // Hidden, next to the destination: same file system, so the rename is atomic.
  const std::string temp = absl::StrCat(".", base, ".farm-", RandomHex(6));
  UniqueFd fd(::openat(dir, temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                       executable ? 0777 : 0666));
  if (fd.get() < 0) return ErrnoStatus(errno, absl::StrCat(path, ": cannot create"));
  bool keep = false;
  struct Cleanup {
    int dir;
    const std::string& temp;
    const bool& keep;
    ~Cleanup() {
      if (!keep) ::unlinkat(dir, temp.c_str(), 0);
    }
  } cleanup{dir, temp, keep};

  Sha256Hasher hasher;
  int64_t received = 0;
  absl::Status local;
  if (digest.size > 0) {
    Backoff backoff(options_.initial_backoff_ms, options_.max_backoff_ms);
    int failures = 0;
    const std::string resource = absl::StrCat("blobs/", digest.hash, "/", digest.size);
    for (;;) {
      const int64_t started_at = received;
      bytestream::ReadRequest request;
      request.set_resource_name(resource);
      request.set_read_offset(received);
      const absl::Status status =
          CallOnce(options_, StreamDeadlineMs(options_, digest.size - received), cancel,
                   [&](grpc::ClientContext* context) {
                     std::unique_ptr<grpc::ClientReader<bytestream::ReadResponse>> reader =
                         stubs_->bytestream->Read(context, request);
                     bytestream::ReadResponse response;
                     while (reader->Read(&response)) {
                       const std::string& data = response.data();
                       if (received + static_cast<int64_t>(data.size()) > digest.size) {
                         local = absl::DataLossError(absl::StrCat(
                             "blob ", label, ": the store sent more than ", digest.size, " bytes"));
                       } else {
                         local = WriteAll(fd.get(), data, "cannot write");
                       }
                       if (!local.ok()) {
                         context->TryCancel();
                         break;
                       }
                       hasher.Update(data);
                       received += static_cast<int64_t>(data.size());
                     }
                     return reader->Finish();
                   });
      if (!local.ok()) return Annotate(local, absl::StrCat(path, ": "));
      if (status.ok()) break;
      if (status.code() == absl::StatusCode::kNotFound) {
        return absl::NotFoundError(absl::StrCat("blob ", label, " is not in the store"));
      }
      if (status.code() != absl::StatusCode::kUnavailable) {
        return Annotate(status, absl::StrCat("blob ", label, ": ByteStream.Read: "));
      }
      if (received > started_at) {
        failures = 0;
        backoff.Reset();
      }
      if (++failures >= options_.attempts) {
        return Annotate(status,
                        absl::StrCat("blob ", label, ": ByteStream.Read (", failures, " tries): "));
      }
      if (!Pause(cancel, backoff.NextDelayMs())) return absl::CancelledError("cancelled");
    }
  }
  if (received != digest.size) {
    return absl::DataLossError(
        absl::StrCat("blob ", label, ": received ", received, " bytes, expected ", digest.size));
  }
  const std::string hash = hasher.Finish().hash;
  if (hash != digest.hash) {
    return absl::DataLossError(
        absl::StrCat("blob ", label, ": the bytes received hash to ", hash, ", not to the digest"));
  }
  if (fd.Close() != 0) return ErrnoStatus(errno, absl::StrCat(path, ": cannot write"));
  if (::renameat(dir, temp.c_str(), dir, base.c_str()) != 0) {
    return ErrnoStatus(errno, absl::StrCat(path, ": cannot replace"));
  }
  keep = true;
  return absl::OkStatus();
}

}  // namespace farm::common
