// cas: one blob of SIZE MiB of random bytes up and down through the REAPI ByteStream, with
// common::CasClient as farmctl and the agent use it, against what the same machine does locally
// in the same run: `sha256sum FILE` plus `cp FILE COPY`, the least a client's upload (hash,
// then copy) would cost without a network or a store.
//   - upload: DigestFile + UploadFile (ByteStream.Write in 1 MiB messages); the coordinator
//     hashes what it receives and fsyncs the blob before it answers. Checked with Stat.
//   - download: Download into a file (the client hashes as it writes and refuses a mismatch),
//     then the file is hashed again here, outside the timing, and compared with the digest.
// The source file is written and fsynced before anything is timed, so every reader finds it in
// the page cache and the disk is idle; the copies are deleted at once (their dirty pages never
// reach the disk). MB is 10^6 bytes; RSS is in MiB like the rest of the suite.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/cas_client.h"
#include "common/digest.h"
#include "common/status_macros.h"
#include "common/unique_fd.h"
#include "tests/bench/scenarios.h"

namespace farm::bench {
namespace {

double MiB(int64_t bytes) { return static_cast<double>(bytes) / (1 << 20); }

double Seconds(int64_t from_ns, int64_t to_ns) {
  return static_cast<double>(to_ns - from_ns) / 1e9;
}

// `bytes` of pseudo-random data (not compressible, not repeating), written and fsynced.
absl::Status WriteRandomFile(const std::string& path, int64_t bytes) {
  common::UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (fd.get() < 0) return absl::ErrnoToStatus(errno, absl::StrCat("cannot create ", path));
  std::mt19937_64 rng(std::random_device{}());
  std::vector<uint64_t> buf((1 << 20) / sizeof(uint64_t));
  for (int64_t left = bytes; left > 0;) {
    for (uint64_t& word : buf) word = rng();
    const size_t n = static_cast<size_t>(std::min<int64_t>(left, 1 << 20));
    for (size_t done = 0; done < n;) {
      const ssize_t w =
          ::write(fd.get(), reinterpret_cast<const char*>(buf.data()) + done, n - done);
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) return absl::ErrnoToStatus(errno, absl::StrCat("cannot write ", path));
      done += static_cast<size_t>(w);
    }
    left -= static_cast<int64_t>(n);
  }
  if (::fsync(fd.get()) != 0 || fd.Close() != 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("cannot sync ", path));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> FindTool(const std::string& name) {
  for (const char* dir : {"/usr/bin/", "/bin/"}) {
    const std::string path = dir + name;
    if (::access(path.c_str(), X_OK) == 0) return path;
  }
  return absl::NotFoundError(absl::StrCat("no ", name, " in /usr/bin or /bin"));
}

// Runs `tool args...` to completion; its run time in seconds. Its stdout goes to `out`.
absl::StatusOr<double> TimeTool(const std::string& tool, std::vector<std::string> args,
                                const std::string& out, absl::Duration timeout) {
  testing::SubprocessOptions options;
  FARM_ASSIGN_OR_RETURN(options.binary, FindTool(tool));
  options.args = std::move(args);
  options.stdout_path = out;
  options.stderr_path = out + ".err";
  const int64_t t0 = MonotonicNs();
  FARM_ASSIGN_OR_RETURN(auto process, testing::Subprocess::Start(options));
  FARM_ASSIGN_OR_RETURN(const int code, process->Wait(timeout));
  const int64_t t1 = MonotonicNs();
  if (code != 0) {
    absl::StatusOr<std::string> err = testing::ReadFile(options.stderr_path);
    return absl::InternalError(
        absl::StrCat(tool, " exited with ", code, ": ", err.ok() ? *err : std::string()));
  }
  return Seconds(t0, t1);
}

void RemoveFile(const std::string& path) {
  std::error_code ec;
  std::filesystem::remove(path, ec);
}

absl::StatusOr<std::vector<Metric>> RunCas(const BenchEnv& env, int64_t size_mib) {
  const int64_t bytes = size_mib << 20;
  const double mb = static_cast<double>(bytes) / 1e6;
  const double gb = mb / 1e3;
  // Far slower than any disk (1 MB/s), yet bounded.
  const absl::Duration timeout = absl::Seconds(60 + bytes / 1'000'000);

  FARM_ASSIGN_OR_RETURN(auto farm, BenchFarm::Create(env));
  FARM_RETURN_IF_ERROR(farm->StartCoordinator());
  const pid_t coordinator = farm->coordinator()->pid();
  const std::string file = farm->root() + "/blob";
  FARM_RETURN_IF_ERROR(WriteRandomFile(file, bytes));

  // The local baseline: hash, then copy, the way an upload must read and move the bytes.
  const std::string sha_out = file + ".sha256";
  FARM_ASSIGN_OR_RETURN(const double sha_s, TimeTool("sha256sum", {file}, sha_out, timeout));
  FARM_ASSIGN_OR_RETURN(const double cp_s,
                        TimeTool("cp", {file, file + ".copy"}, file + ".cp", timeout));
  RemoveFile(file + ".copy");
  // Context, not part of the baseline: cp copies inside the kernel (copy_file_range), which no
  // network upload can; dd moves the bytes through user memory, as the farm's client and
  // server must.
  FARM_ASSIGN_OR_RETURN(
      const double dd_s,
      TimeTool("dd", {"if=" + file, "of=" + file + ".copy", "bs=1M"}, file + ".dd", timeout));
  RemoveFile(file + ".copy");
  FARM_ASSIGN_OR_RETURN(const std::string sha_text, testing::ReadFile(sha_out));

  common::CasClient cas(farm->NewChannel(/*own_connection=*/true));
  // The capabilities call, once, outside the timing (any client makes it once per process).
  FARM_RETURN_IF_ERROR(cas.BatchLimit().status());

  FARM_ASSIGN_OR_RETURN(const ProcSample c0, SampleProcess(coordinator));
  const int64_t u0 = MonotonicNs();
  FARM_ASSIGN_OR_RETURN(const common::Digest digest, common::DigestFile(file));
  const int64_t u1 = MonotonicNs();
  FARM_RETURN_IF_ERROR(cas.UploadFile(file, digest));
  const int64_t u2 = MonotonicNs();
  FARM_ASSIGN_OR_RETURN(const ProcSample c1, SampleProcess(coordinator));

  if (digest.size != bytes || sha_text.substr(0, common::kSha256HexLength) != digest.hash) {
    return absl::InternalError(absl::StrCat("the file hashes to ", digest.ToString(),
                                            " but sha256sum says ",
                                            absl::StripAsciiWhitespace(sha_text)));
  }
  FARM_ASSIGN_OR_RETURN(const bool stored, cas.Stat(digest));
  if (!stored) {
    return absl::DataLossError(absl::StrCat("uploaded ", digest.ToString(),
                                            " but Stat says "
                                            "the store does not have it"));
  }

  const std::string down = file + ".down";
  FARM_ASSIGN_OR_RETURN(const ProcSample c2, SampleProcess(coordinator));
  const int64_t d0 = MonotonicNs();
  FARM_RETURN_IF_ERROR(cas.Download(digest, down));
  const int64_t d1 = MonotonicNs();
  FARM_ASSIGN_OR_RETURN(const ProcSample c3, SampleProcess(coordinator));
  FARM_ASSIGN_OR_RETURN(const common::Digest got, common::DigestFile(down));
  RemoveFile(down);
  if (got != digest) {
    return absl::DataLossError(
        absl::StrCat("downloaded ", got.ToString(), ", uploaded ", digest.ToString()));
  }

  const double baseline = mb / (sha_s + cp_s);
  const double upload = mb / Seconds(u0, u2);
  const double download = mb / Seconds(d0, d1);
  return std::vector<Metric>{
      {"upload_mb_per_s", upload, "MB/s"},
      {"download_mb_per_s", download, "MB/s"},
      {"baseline_mb_per_s", baseline, "MB/s"},
      {"upload_vs_baseline", upload / baseline, "x"},
      {"download_vs_baseline", download / baseline, "x"},
      {"sha256sum_mb_per_s", mb / sha_s, "MB/s"},
      {"cp_mb_per_s", mb / cp_s, "MB/s"},
      {"dd_copy_mb_per_s", mb / dd_s, "MB/s"},
      {"upload_stream_mb_per_s", mb / Seconds(u1, u2), "MB/s"},
      {"coordinator_upload_cpu_s_per_gb", (c1.cpu_seconds - c0.cpu_seconds) / gb, "s"},
      {"coordinator_download_cpu_s_per_gb", (c3.cpu_seconds - c2.cpu_seconds) / gb, "s"},
      {"coordinator_peak_rss_mb", MiB(c3.hwm_bytes), "MiB"},
  };
}

}  // namespace

Scenario CasScenario() {
  Scenario s;
  s.name = "cas";
  s.description = "blobs up and down through ByteStream, against sha256sum + cp in the same run";
  s.size_unit = "MiB";
  s.small = 128;
  s.large = 1024;
  s.quick_small = 16;
  s.quick_large = 64;
  s.growth_metrics = {"upload_mb_per_s", "download_mb_per_s"};
  s.targets = {{"upload_vs_baseline", Target::kAtLeast, 0.8},
               {"download_vs_baseline", Target::kAtLeast, 0.8}};
  s.run = RunCas;
  return s;
}

}  // namespace farm::bench
