#include "coordinator/cli/commands.h"

#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/backoff.h"
#include "common/cas_client.h"
#include "common/channel.h"
#include "common/digest.h"
#include "common/duration.h"
#include "common/grpc_status.h"
#include "common/job_file.h"
#include "common/job_limits.h"
#include "common/job_state.h"
#include "common/pipeline_file.h"
#include "common/status_macros.h"
#include "coordinator/cli/format.h"
#include "coordinator/cli/log_printer.h"
#include "coordinator/cli/pipeline_progress.h"
#include "farm/v1/farm.grpc.pb.h"

namespace farm::cli {
namespace {

using common::IsTerminal;
using farm::v1::Job;
using farm::v1::JobState;
using farm::v1::Pipeline;

// The codes after which a submit may be tried again (with the same request id).
bool IsRetryable(const absl::Status& status) {
  return status.code() == absl::StatusCode::kUnavailable ||
         status.code() == absl::StatusCode::kDeadlineExceeded;
}

// A request id no other client will choose: 128 random bits.
std::string NewRequestId() {
  std::random_device device;
  std::uniform_int_distribution<uint64_t> dist;
  std::mt19937_64 rng((static_cast<uint64_t>(device()) << 32) ^ device());
  return absl::StrFormat("%016x%016x", dist(rng), dist(rng));
}

static_assert(common::kMaxPipelineFileBytes == common::kMaxJobFileBytes,
              "submit reads a file before it knows which kind it is");

// What `submit` sends: a job, or a pipeline (exactly one of them is set).
struct SubmitSpec {
  std::optional<farm::v1::JobSpec> job;
  std::optional<farm::v1::PipelineSpec> pipeline;
};

// Whether `text` is a pipeline file rather than a job file: its root is a mapping with a `jobs`
// key. Text that is not YAML at all counts as a job file, whose parser then says what is wrong.
bool IsPipelineText(const std::string& text) {
  try {
    const YAML::Node root = YAML::Load(text);
    if (!root.IsMap()) return false;
    for (auto it = root.begin(); it != root.end(); ++it) {
      if (it->first.IsScalar() && it->first.Scalar() == "jobs") return true;
    }
    return false;
  } catch (const std::exception&) {  // YAML::Exception: malformed, or nested too deeply
    return false;
  }
}

// Up to one byte past the file limit of `in`.
absl::StatusOr<std::string> ReadLimited(std::istream& in, const std::string& name) {
  std::string text;
  char buffer[64 << 10];
  while (text.size() <= static_cast<size_t>(common::kMaxJobFileBytes) && in.good()) {
    in.read(buffer, sizeof(buffer));
    text.append(buffer, static_cast<size_t>(in.gcount()));
  }
  if (in.bad()) return absl::DataLossError(absl::StrCat(name, ": cannot read"));
  return text;
}

// Reads a job or pipeline file from `in`, one byte past the limit at most, and parses it.
absl::StatusOr<SubmitSpec> ReadSpecFromStream(std::istream& in, const std::string& name) {
  FARM_ASSIGN_OR_RETURN(const std::string text, ReadLimited(in, name));
  if (text.size() > static_cast<size_t>(common::kMaxJobFileBytes)) {
    return absl::InvalidArgumentError(absl::StrCat(
        name, ": the job file is larger than the limit of ", common::kMaxJobFileBytes, " bytes"));
  }
  SubmitSpec spec;
  if (IsPipelineText(text)) {
    FARM_ASSIGN_OR_RETURN(spec.pipeline, common::ParsePipelineFile(text, name));
  } else {
    FARM_ASSIGN_OR_RETURN(spec.job, common::ParseJobFile(text, name));
  }
  return spec;
}

// Loads the job or pipeline file at `path`. A regular file is looked at first and then loaded
// by LoadPipelineFile or LoadJobFile; a pipe (`<(...)`) or device is read once; a path that
// cannot be read gets LoadJobFile's error.
absl::StatusOr<SubmitSpec> LoadSpec(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) == 0 && !S_ISDIR(st.st_mode)) {
    std::ifstream in(path, std::ios::binary);
    if (in.is_open() && !S_ISREG(st.st_mode)) return ReadSpecFromStream(in, path);
    if (in.is_open()) {
      absl::StatusOr<std::string> text = ReadLimited(in, path);
      if (text.ok() && IsPipelineText(*text)) {
        SubmitSpec spec;
        FARM_ASSIGN_OR_RETURN(spec.pipeline, common::LoadPipelineFile(path));
        return spec;
      }
    }
  }
  SubmitSpec spec;
  FARM_ASSIGN_OR_RETURN(spec.job, common::LoadJobFile(path));
  return spec;
}

// The size of the terminal behind `fd`; false when it is not one.
bool TerminalSize(int fd, int* width, int* height) {
  if (fd < 0 || !::isatty(fd)) return false;
  struct winsize size = {};
  if (::ioctl(fd, TIOCGWINSZ, &size) == 0) {
    *width = size.ws_col;
    *height = size.ws_row;
  } else {
    *width = *height = 0;
  }
  return true;
}

std::string JoinPath(absl::string_view dir, absl::string_view relative) {
  if (dir.empty() || dir == ".") return std::string(relative);
  return absl::StrCat(absl::StripSuffix(dir, "/"), "/", relative);
}

// A download filter as a user may type it ("./out/", "out//x") in the form paths are recorded.
std::string NormalizeFilter(absl::string_view raw) {
  std::vector<absl::string_view> parts;
  for (absl::string_view part : absl::StrSplit(raw, '/')) {
    if (!part.empty() && part != ".") parts.push_back(part);
  }
  return absl::StrJoin(parts, "/");
}

// " (its artifacts: a, b, ... and N more)" or " (it has none)", for "no such artifact".
std::string DescribeArtifactPaths(const Job& job) {
  if (job.artifacts().empty()) return " (it has none)";
  constexpr int kShown = 5;
  std::vector<std::string> paths;
  for (int i = 0; i < job.artifacts_size() && i < kShown; ++i) {
    paths.push_back(job.artifacts(i).path());
  }
  std::string more = job.artifacts_size() > kShown
                         ? absl::StrCat(" and ", job.artifacts_size() - kShown, " more")
                         : "";
  return absl::StrCat(" (its artifacts: ", absl::StrJoin(paths, ", "), more, ")");
}

absl::Status ErrnoStatus(int err, absl::string_view what) {
  return absl::Status(absl::ErrnoToStatusCode(err), absl::StrCat(what, ": ", std::strerror(err)));
}

std::string RealPath(const std::string& path) {
  char buffer[PATH_MAX];
  if (::realpath(path.c_str(), buffer) == nullptr) return "";
  return buffer;
}

bool Inside(const std::string& root, const std::string& path) {
  return path == root || (absl::StartsWith(path, root) &&
                          (root == "/" || (path.size() > root.size() && path[root.size()] == '/')));
}

// Creates `dir` (and its parents) when missing; returns it with symlinks resolved.
absl::StatusOr<std::string> PrepareDirectory(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return absl::PermissionDeniedError(absl::StrCat(dir, ": cannot create: ", ec.message()));
  const std::string root = RealPath(dir);
  if (root.empty()) return ErrnoStatus(errno, dir);
  struct stat st;
  if (::stat(root.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat(dir, ": not a directory"));
  }
  return root;
}

// Makes the directories for artifact `path` under `root` (the resolved DIR; `dir` is how the
// user named it) and returns the file's full path. Refuses (PERMISSION_DENIED) a path that is
// not plainly relative, or whose directories lead outside DIR through a symbolic link: a
// recorded path comes from the coordinator and is not trusted to stay inside DIR.
absl::StatusOr<std::string> PrepareTarget(const std::string& root, const std::string& dir,
                                          const std::string& path) {
  if (absl::Status s = common::ValidateArtifactPath(path); !s.ok()) {
    return absl::PermissionDeniedError(
        absl::StrCat("refusing to write artifact \"", path, "\" outside ", dir, ": ", s.message()));
  }
  std::vector<std::string> parts = absl::StrSplit(path, '/');
  std::string current = root;
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    current = absl::StrCat(current, "/", parts[i]);
    struct stat st;
    if (::lstat(current.c_str(), &st) != 0) {
      if (errno != ENOENT) return ErrnoStatus(errno, JoinPath(dir, path));
      if (::mkdir(current.c_str(), 0777) != 0 && errno != EEXIST) {
        return ErrnoStatus(errno, absl::StrCat(JoinPath(dir, path), ": cannot create directory"));
      }
      continue;
    }
    if (S_ISLNK(st.st_mode)) {
      const std::string real = RealPath(current);
      if (real.empty() || !Inside(root, real)) {
        return absl::PermissionDeniedError(absl::StrCat(
            "refusing to write artifact \"", path, "\": ",
            JoinPath(dir,
                     absl::StrJoin(parts.begin(), parts.begin() + static_cast<long>(i) + 1, "/")),
            " is a symbolic link leading outside ", dir));
      }
      if (::stat(real.c_str(), &st) != 0) return ErrnoStatus(errno, JoinPath(dir, path));
    }
    if (!S_ISDIR(st.st_mode)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "cannot write artifact \"", path, "\": ",
          JoinPath(dir,
                   absl::StrJoin(parts.begin(), parts.begin() + static_cast<long>(i) + 1, "/")),
          " exists and is not a directory"));
    }
  }
  return absl::StrCat(root, "/", path);
}

class Client {
 public:
  Client(const CliOptions& options, CliIo& io, std::shared_ptr<grpc::Channel> channel)
      : options_(options),
        io_(io),
        channel_(channel),
        jobs_(farm::v1::JobService::NewStub(channel)),
        admin_(farm::v1::AdminService::NewStub(channel)),
        cas_(channel, CasOptions(options)) {}

  int Run() {
    switch (options_.command) {
      case Command::kSubmit:
        return Submit();
      case Command::kGet:
        return Get();
      case Command::kList:
        return List();
      case Command::kLogs:
        return Logs();
      case Command::kWait:
        return Wait();
      case Command::kCancel:
        return Cancel();
      case Command::kAgents:
        return Agents();
      case Command::kArtifacts:
        return Artifacts();
      case Command::kDownload:
        return Download();
      case Command::kCasPut:
        return CasPut();
      case Command::kCasGet:
        return CasGet();
      case Command::kCasStat:
        return CasStat();
      case Command::kHelp:
        break;
    }
    io_.out << UsageText();
    return kExitSucceeded;
  }

 private:
  bool json() const { return options_.output == OutputFormat::kJson; }

  TextContext Context() const { return {io_.clock.NowMs(), io_.time_zone}; }

  int Fail(const absl::Status& status, absl::string_view job_id = "") {
    io_.err << "farmctl: " << DescribeRpcError(status, options_.coordinator, job_id) << "\n";
    io_.err.flush();
    return kExitError;
  }

  int Print(const std::string& text) {
    io_.out << text;
    io_.out.flush();
    return kExitSucceeded;
  }

  void SetDeadline(grpc::ClientContext& context) const {
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::milliseconds(options_.rpc_timeout_ms));
  }

  absl::StatusOr<Job> GetJob(const std::string& job_id) {
    grpc::ClientContext context;
    SetDeadline(context);
    farm::v1::GetJobRequest request;
    request.set_job_id(job_id);
    Job job;
    FARM_RETURN_IF_ERROR(common::FromGrpcStatus(jobs_->Get(&context, request, &job)));
    return job;
  }

  // Makes a submit call (Submit or SubmitPipeline: `call` sends the one request, with its one
  // request_id, in the given context) until it answers. UNAVAILABLE and DEADLINE_EXCEEDED are
  // retried with the same request (so a retry never makes a second job) until submit_retry_ms
  // has passed since the first try. While the connection is down, the wait between tries is a
  // wait for the channel to connect again (a coordinator restarting on its address), and the
  // next try goes out as soon as it has; while it is up (the coordinator itself answered
  // UNAVAILABLE, or did not answer in time), a jittered exponential backoff. A retry's deadline
  // is rpc_timeout_ms, cut to the end of the budget. Returns UNAVAILABLE or DEADLINE_EXCEEDED
  // only when the budget ran out.
  template <typename Response>
  absl::StatusOr<Response> SubmitWithRetries(
      const std::function<grpc::Status(grpc::ClientContext*, Response*)>& call) {
    const absl::Time give_up = absl::Now() + absl::Milliseconds(options_.submit_retry_ms);
    common::Backoff backoff(options_.retry_initial_backoff_ms, options_.retry_max_backoff_ms);
    absl::Status previous;  // the error of the try before, to report
    for (int attempt = 1;; ++attempt) {
      absl::Time deadline = absl::Now() + absl::Milliseconds(options_.rpc_timeout_ms);
      const bool cut = attempt > 1 && give_up < deadline;
      if (cut) deadline = give_up;
      grpc::ClientContext context;
      context.set_deadline(absl::ToChronoTime(deadline));
      Response response;
      absl::Status status = common::FromGrpcStatus(call(&context, &response));
      if (status.ok()) return response;
      if (!IsRetryable(status)) return status;
      // A try cut short by the end of the budget that times out says nothing new about the
      // coordinator: the error before it is the one that explains the failure.
      if (cut && status.code() == absl::StatusCode::kDeadlineExceeded && !previous.ok()) {
        status = previous;
      }
      previous = status;

      const absl::Time now = absl::Now();
      if (now >= give_up) return status;
      // GetState(true) also starts a reconnection of an idle channel.
      if (channel_->GetState(/*try_to_connect=*/true) == GRPC_CHANNEL_READY) {
        const absl::Duration delay = absl::Milliseconds(backoff.NextDelayMs());
        // A try that would start at the very end of the budget could only time out.
        if (now + delay >= give_up) return status;
        absl::SleepFor(delay);
      } else if (!channel_->WaitForConnected(absl::ToChronoTime(give_up))) {
        // Waiting on the channel is what drives its reconnection: between fail-fast calls it
        // would otherwise only be retried by gRPC's backup poller, seconds late.
        return status;
      }
    }
  }

  // Reports a failed submit of a job or a pipeline (`what`); returns the exit code.
  int FailSubmit(const absl::Status& status, absl::string_view what) {
    if (status.code() == absl::StatusCode::kInvalidArgument) {
      io_.err << "farmctl: the coordinator refused the " << what << ": "
              << OneLine(status.message()) << "\n";
      return kExitError;
    }
    if (IsRetryable(status)) {
      io_.err << "farmctl: " << DescribeRpcError(status, options_.coordinator)
              << "; gave up after retrying for "
              << common::FormatDurationMs(options_.submit_retry_ms) << "\n";
      return kExitError;
    }
    return Fail(status);
  }

  // Reads WatchLogs for `request`, passing every message to `on_message`, until the stream ends.
  // With request.follow, a stream broken by UNAVAILABLE (or closed by the coordinator without
  // a final state, e.g. as it shuts down) is reopened with backoff; the new stream starts over,
  // so `on_message` sees old chunks again (LogPrinter skips them).
  // Returns the job's final state (UNSPECIFIED when not following and the job has not ended);
  // DEADLINE_EXCEEDED when `deadline` passes first; the stream's error otherwise.
  absl::StatusOr<JobState> Watch(
      const farm::v1::WatchLogsRequest& request,
      const std::function<bool(const farm::v1::WatchLogsResponse&)>& on_message,
      std::optional<absl::Time> deadline) {
    common::Backoff backoff(options_.retry_initial_backoff_ms, options_.retry_max_backoff_ms);
    std::optional<absl::Time> outage_since;
    for (;;) {
      grpc::ClientContext context;
      if (deadline.has_value()) context.set_deadline(absl::ToChronoTime(*deadline));
      std::unique_ptr<grpc::ClientReader<farm::v1::WatchLogsResponse>> reader =
          jobs_->WatchLogs(&context, request);
      farm::v1::WatchLogsResponse message;
      JobState final_state = farm::v1::JOB_STATE_UNSPECIFIED;
      bool output_ok = true;
      while (reader->Read(&message)) {
        outage_since.reset();
        backoff.Reset();
        if (!on_message(message)) {
          output_ok = false;
          context.TryCancel();
          break;
        }
        if (message.final_state() != farm::v1::JOB_STATE_UNSPECIFIED) {
          final_state = message.final_state();
        }
      }
      const absl::Status status = common::FromGrpcStatus(reader->Finish());
      if (!output_ok) return absl::DataLossError("cannot write the output");
      if (final_state != farm::v1::JOB_STATE_UNSPECIFIED) return final_state;
      if (status.ok() && !request.follow()) return final_state;
      if (deadline.has_value() && absl::Now() >= *deadline) {
        return absl::DeadlineExceededError("timed out waiting for the job");
      }
      const bool broken = status.ok() || status.code() == absl::StatusCode::kUnavailable;
      if (!request.follow() || !broken) return status;

      const absl::Time now = absl::Now();
      if (!outage_since.has_value()) {
        outage_since = now;
        io_.err << "farmctl: "
                << (status.ok() ? absl::StrCat("the coordinator at ", options_.coordinator,
                                               " closed the stream")
                                : DescribeRpcError(status, options_.coordinator))
                << "; reconnecting\n";
        io_.err.flush();
      } else if (now - *outage_since > absl::Milliseconds(options_.reconnect_give_up_ms)) {
        return status.ok() ? absl::UnavailableError("the coordinator keeps closing the stream")
                           : status;
      }
      absl::Duration delay = absl::Milliseconds(backoff.NextDelayMs());
      if (deadline.has_value()) delay = std::min(delay, *deadline - now);
      if (channel_->GetState(/*try_to_connect=*/false) == GRPC_CHANNEL_READY) {
        absl::SleepFor(delay);  // the coordinator itself said UNAVAILABLE: back off
      } else {
        // The connection is down: retry the moment it is back, or after the delay.
        channel_->WaitForConnected(absl::ToChronoTime(now + delay));
      }
    }
  }

  // Follows a job's output to the end, writing it through `printer` (null: discard).
  absl::StatusOr<JobState> FollowJob(const std::string& job_id, const std::string& step,
                                     LogPrinter* printer, std::optional<absl::Time> deadline) {
    farm::v1::WatchLogsRequest request;
    request.set_job_id(job_id);
    request.set_follow(true);
    request.set_step(step);
    return Watch(
        request,
        [printer](const farm::v1::WatchLogsResponse& message) {
          if (printer == nullptr) return true;
          for (const farm::v1::LogChunk& chunk : message.chunks()) {
            if (!printer->Write(chunk)) return false;
          }
          return true;
        },
        deadline);
  }

  int Submit() {
    absl::StatusOr<SubmitSpec> spec =
        options_.file == "-" ? ReadSpecFromStream(io_.in, "<stdin>") : LoadSpec(options_.file);
    if (!spec.ok()) {
      // The parser's "FILE:LINE:COLUMN: ..." is the whole message, as compilers print it.
      io_.err << OneLine(spec.status().message()) << "\n";
      return kExitError;
    }
    if (spec->pipeline.has_value()) return SubmitPipeline(*std::move(spec->pipeline));
    const int step_count = spec->job->steps_size();
    farm::v1::SubmitJobRequest request;
    *request.mutable_spec() = *std::move(spec->job);
    request.set_request_id(NewRequestId());
    absl::StatusOr<farm::v1::SubmitJobResponse> response =
        SubmitWithRetries<farm::v1::SubmitJobResponse>(
            [&](grpc::ClientContext* context, farm::v1::SubmitJobResponse* out) {
              return jobs_->Submit(context, request, out);
            });
    if (!response.ok()) return FailSubmit(response.status(), "job");
    const std::string& job_id = response->job_id();
    if (!options_.wait && !options_.follow) {
      return Print(json() ? ToJson(*response) : absl::StrCat(job_id, "\n"));
    }
    if (!json()) Print(absl::StrCat(job_id, "\n"));

    // With JSON output stdout holds one document, so followed output goes to stderr.
    std::optional<LogPrinter> printer;
    if (options_.follow) {
      std::ostream& logs = json() ? io_.err : io_.out;
      printer.emplace(&logs, &io_.err, /*step_headers=*/step_count > 1);
    }
    absl::StatusOr<JobState> final_state =
        FollowJob(job_id, "", printer.has_value() ? &*printer : nullptr, std::nullopt);
    if (!final_state.ok()) return Fail(final_state.status(), job_id);
    return Finish(job_id, *final_state);
  }

  // The rest of `submit` for a pipeline file: the id (or the Pipeline as JSON), and with --wait
  // or --follow the wait for its end, and its outcome as the exit code.
  int SubmitPipeline(farm::v1::PipelineSpec spec) {
    farm::v1::SubmitPipelineRequest request;
    *request.mutable_spec() = std::move(spec);
    request.set_request_id(NewRequestId());
    absl::StatusOr<farm::v1::SubmitPipelineResponse> response =
        SubmitWithRetries<farm::v1::SubmitPipelineResponse>(
            [&](grpc::ClientContext* context, farm::v1::SubmitPipelineResponse* out) {
              return jobs_->SubmitPipeline(context, request, out);
            });
    if (!response.ok()) return FailSubmit(response.status(), "pipeline");
    const std::string id = response->pipeline().id();
    if (!options_.wait && !options_.follow) {
      return Print(json() ? ToJson(response->pipeline()) : absl::StrCat(id, "\n"));
    }
    if (!json()) Print(absl::StrCat(id, "\n"));

    // The progress goes where a job's followed output would: stdout, or stderr when stdout
    // holds the JSON document.
    std::ostream& view = json() ? io_.err : io_.out;
    const int view_fd = json() ? io_.err_fd : io_.out_fd;
    int width = 0;
    int height = 0;
    PipelineProgress progress({TerminalSize(view_fd, &width, &height), io_.time_zone});
    const auto on_snapshot = [&](const Pipeline& pipeline) {
      if (TerminalSize(view_fd, &width, &height)) {  // the terminal may have been resized
        view << progress.Update(pipeline, io_.clock.NowMs(), width, height);
      } else {
        view << progress.Update(pipeline, io_.clock.NowMs());
      }
      view.flush();
      return view.good();
    };
    Pipeline last = response->pipeline();
    absl::StatusOr<Pipeline> ended = PollPipeline(
        id, options_.follow ? on_snapshot : std::function<bool(const Pipeline&)>(), std::nullopt,
        /*submitted=*/true, &last);
    if (!ended.ok()) return Fail(ended.status(), id);
    const std::string summary = FormatPipelineSummary(*ended, io_.clock.NowMs());
    if (options_.follow) {
      view << summary << "\n";
      view.flush();
    } else if (!json()) {
      io_.err << "==> " << summary << "\n";
      io_.err.flush();
    }
    if (json()) Print(ToJson(*ended));
    return ExitCodeForState(ended->state());
  }

  absl::StatusOr<Pipeline> GetPipeline(const std::string& id, std::optional<absl::Time> deadline) {
    absl::Time call_deadline = absl::Now() + absl::Milliseconds(options_.rpc_timeout_ms);
    if (deadline.has_value()) call_deadline = std::min(call_deadline, *deadline);
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(call_deadline));
    farm::v1::GetPipelineRequest request;
    request.set_pipeline_id(id);
    Pipeline pipeline;
    FARM_RETURN_IF_ERROR(common::FromGrpcStatus(jobs_->GetPipeline(&context, request, &pipeline)));
    return pipeline;
  }

  // Asks for the pipeline every pipeline_poll_ms until it has ended, passing each answer to
  // `on_snapshot` (may be empty; false from it: the output failed, DATA_LOSS). Unless
  // `submitted` (the pipeline was just made), the first call's error is returned as it is (like
  // `wait JOB`'s first Get); after that, while the coordinator is unreachable (UNAVAILABLE, or no
  // answer in time), it says so once on stderr and keeps asking, with backoff, for up to
  // reconnect_give_up_ms. Returns the ended pipeline; DEADLINE_EXCEEDED when `deadline` passes
  // first (the first call is made in any case), with `*last` the latest answer; other errors as
  // they come.
  absl::StatusOr<Pipeline> PollPipeline(const std::string& id,
                                        const std::function<bool(const Pipeline&)>& on_snapshot,
                                        std::optional<absl::Time> deadline, bool submitted,
                                        Pipeline* last) {
    common::Backoff backoff(options_.retry_initial_backoff_ms, options_.retry_max_backoff_ms);
    std::optional<absl::Time> outage_since;
    for (bool first = true;; first = false) {
      absl::StatusOr<Pipeline> pipeline = GetPipeline(id, first ? std::nullopt : deadline);
      if (first && !pipeline.ok() && !(submitted && IsRetryable(pipeline.status()))) {
        return pipeline.status();
      }
      absl::Duration delay = absl::Milliseconds(options_.pipeline_poll_ms);
      if (pipeline.ok()) {
        if (outage_since.has_value()) {
          outage_since.reset();
          backoff.Reset();
        }
        *last = *pipeline;
        if (on_snapshot && !on_snapshot(*pipeline)) {
          return absl::DataLossError("cannot write the output");
        }
        if (IsTerminal(pipeline->state())) return pipeline;
      } else if (IsRetryable(pipeline.status()) &&
                 !(deadline.has_value() && absl::Now() >= *deadline)) {
        const absl::Time now = absl::Now();
        if (!outage_since.has_value()) {
          outage_since = now;
          io_.err << "farmctl: " << DescribeRpcError(pipeline.status(), options_.coordinator)
                  << "; reconnecting\n";
          io_.err.flush();
        } else if (now - *outage_since > absl::Milliseconds(options_.reconnect_give_up_ms)) {
          return pipeline.status();
        }
        delay = std::max(delay, absl::Milliseconds(backoff.NextDelayMs()));
      } else if (!IsRetryable(pipeline.status())) {
        return pipeline.status();
      }
      const absl::Time now = absl::Now();
      if (deadline.has_value()) {
        if (now >= *deadline) {
          return absl::DeadlineExceededError(absl::StrCat("timed out waiting for ", id));
        }
        delay = std::min(delay, *deadline - now);
      }
      if (outage_since.has_value() &&
          channel_->GetState(/*try_to_connect=*/true) != GRPC_CHANNEL_READY) {
        // The connection is down: ask again the moment it is back, or after the delay.
        channel_->WaitForConnected(absl::ToChronoTime(now + delay));
      } else {
        absl::SleepFor(delay);
      }
    }
  }

  // Reports a job that has ended: the Job as JSON, or a summary line on stderr (stdout of
  // `submit` holds the job id and the job's output only). Returns the outcome's exit code.
  int Finish(const std::string& job_id, JobState final_state) {
    absl::StatusOr<Job> job = GetJob(job_id);
    if (!job.ok()) {
      if (json()) return Fail(job.status(), job_id);
      job = Job();
      job->set_id(job_id);
      job->set_state(final_state);
    }
    if (json()) {
      Print(ToJson(*job));
    } else {
      io_.err << "==> " << FormatOutcomeLine(*job) << "\n";
      io_.err.flush();
    }
    return ExitCodeForState(job->state());
  }

  int Get() {
    if (IsPipelineId(options_.job_id)) {
      absl::StatusOr<Pipeline> pipeline = GetPipeline(options_.job_id, std::nullopt);
      if (!pipeline.ok()) return Fail(pipeline.status(), options_.job_id);
      return Print(json() ? ToJson(*pipeline) : FormatPipelineText(*pipeline, Context()));
    }
    absl::StatusOr<Job> job = GetJob(options_.job_id);
    if (!job.ok()) return Fail(job.status(), options_.job_id);
    return Print(json() ? ToJson(*job) : FormatJobText(*job, Context()));
  }

  int List() {
    if (options_.pipelines) return ListPipelines();
    grpc::ClientContext context;
    SetDeadline(context);
    farm::v1::ListJobsRequest request;
    request.set_state(options_.state);
    request.set_limit(options_.limit);
    farm::v1::ListJobsResponse response;
    const absl::Status status = common::FromGrpcStatus(jobs_->List(&context, request, &response));
    if (!status.ok()) return Fail(status);
    return Print(json() ? ToJson(response) : FormatJobListText(response, Context()));
  }

  int ListPipelines() {
    grpc::ClientContext context;
    SetDeadline(context);
    farm::v1::ListPipelinesRequest request;
    request.set_limit(options_.limit);
    farm::v1::ListPipelinesResponse response;
    const absl::Status status =
        common::FromGrpcStatus(jobs_->ListPipelines(&context, request, &response));
    if (!status.ok()) return Fail(status);
    return Print(json() ? ToJson(response) : FormatPipelineListText(response, Context()));
  }

  int Agents() {
    grpc::ClientContext context;
    SetDeadline(context);
    farm::v1::ListAgentsResponse response;
    const absl::Status status = common::FromGrpcStatus(
        admin_->ListAgents(&context, farm::v1::ListAgentsRequest(), &response));
    if (!status.ok()) return Fail(status);
    return Print(json() ? ToJson(response) : FormatAgentsText(response, Context()));
  }

  int Cancel() {
    if (IsPipelineId(options_.job_id)) return CancelPipeline();
    grpc::ClientContext context;
    SetDeadline(context);
    farm::v1::CancelJobRequest request;
    request.set_job_id(options_.job_id);
    farm::v1::CancelJobResponse response;
    const absl::Status status = common::FromGrpcStatus(jobs_->Cancel(&context, request, &response));
    if (!status.ok()) return Fail(status, options_.job_id);
    const Job& job = response.job();
    if (json()) return Print(ToJson(job));
    if (IsTerminal(job.state())) {
      return Print(job.state() == farm::v1::CANCELLED
                       ? absl::StrCat("job ", options_.job_id, " CANCELLED\n")
                       : absl::StrCat("job ", options_.job_id,
                                      " had already ended: ", JobStateName(job.state()), "\n"));
    }
    return Print(absl::StrCat("job ", options_.job_id, ": cancel requested (it was ",
                              JobStateName(job.state()), ")\n"));
  }

  int CancelPipeline() {
    const std::string& id = options_.job_id;
    grpc::ClientContext context;
    SetDeadline(context);
    farm::v1::CancelPipelineRequest request;
    request.set_pipeline_id(id);
    Pipeline pipeline;
    const absl::Status status =
        common::FromGrpcStatus(jobs_->CancelPipeline(&context, request, &pipeline));
    if (!status.ok()) return Fail(status, id);
    if (json()) return Print(ToJson(pipeline));
    if (IsTerminal(pipeline.state())) {
      return Print(pipeline.state() == farm::v1::CANCELLED
                       ? absl::StrCat("pipeline ", id, " CANCELLED\n")
                       : absl::StrCat("pipeline ", id, " had already ended: ",
                                      JobStateName(pipeline.state()), "\n"));
    }
    const int running = pipeline.jobs_size() - CountDoneJobs(pipeline);
    return Print(absl::StrCat("pipeline ", id, ": cancel requested (", running,
                              running == 1 ? " job" : " jobs", " still ending)\n"));
  }

  int Logs() {
    absl::StatusOr<Job> job = GetJob(options_.job_id);
    if (!job.ok()) return Fail(job.status(), options_.job_id);
    std::vector<std::string> names;
    for (const auto& step : job->spec().steps()) names.push_back(step.name());
    if (!options_.step.empty() &&
        std::find(names.begin(), names.end(), options_.step) == names.end()) {
      io_.err << "farmctl: job " << options_.job_id << " has no step named \"" << options_.step
              << "\" (its steps: " << absl::StrJoin(names, ", ") << ")\n";
      return kExitError;
    }

    farm::v1::WatchLogsRequest request;
    request.set_job_id(options_.job_id);
    request.set_follow(options_.follow);
    request.set_step(options_.step);
    LogPrinter printer(&io_.out, json() ? nullptr : &io_.err,
                       /*step_headers=*/options_.step.empty() && names.size() > 1);
    farm::v1::WatchLogsResponse merged;  // JSON without --follow: one document at the end
    absl::StatusOr<JobState> final_state = Watch(
        request,
        [&](const farm::v1::WatchLogsResponse& message) {
          if (!json()) {
            for (const farm::v1::LogChunk& chunk : message.chunks()) {
              if (!printer.Write(chunk)) return false;
            }
            return true;
          }
          farm::v1::WatchLogsResponse fresh;
          fresh.set_final_state(message.final_state());
          for (const farm::v1::LogChunk& chunk : message.chunks()) {
            farm::v1::LogChunk part = printer.Fresh(chunk);
            if (!part.data().empty()) *fresh.add_chunks() = std::move(part);
          }
          if (!options_.follow) {
            merged.MergeFrom(fresh);
            return true;
          }
          // Following: JSON Lines, one message per line as it arrives.
          if (fresh.chunks().empty() && fresh.final_state() == farm::v1::JOB_STATE_UNSPECIFIED) {
            return true;
          }
          io_.out << ToJson(fresh, /*pretty=*/false);
          io_.out.flush();
          return io_.out.good();
        },
        std::nullopt);
    if (!final_state.ok()) return Fail(final_state.status(), options_.job_id);
    if (json() && !options_.follow) {
      merged.set_final_state(*final_state);
      Print(ToJson(merged));
    }
    return options_.follow ? ExitCodeForState(*final_state) : kExitSucceeded;
  }

  int Wait() {
    std::optional<absl::Time> deadline;
    if (options_.timeout_ms.has_value()) {
      deadline = absl::Now() + absl::Milliseconds(*options_.timeout_ms);
    }
    if (IsPipelineId(options_.job_id)) return WaitPipeline(deadline);
    absl::StatusOr<Job> job = GetJob(options_.job_id);
    if (!job.ok()) return Fail(job.status(), options_.job_id);
    if (!IsTerminal(job->state())) {
      absl::StatusOr<JobState> final_state =
          FollowJob(options_.job_id, "", /*printer=*/nullptr, deadline);
      if (!final_state.ok() && final_state.status().code() == absl::StatusCode::kDeadlineExceeded &&
          deadline.has_value()) {
        if (absl::StatusOr<Job> now = GetJob(options_.job_id); now.ok()) job = std::move(now);
        if (json()) Print(ToJson(*job));
        io_.err << "farmctl: job " << options_.job_id << " is still " << JobStateName(job->state())
                << " after " << common::FormatDurationMs(*options_.timeout_ms) << "\n";
        return kExitWaitTimedOut;
      }
      if (!final_state.ok()) return Fail(final_state.status(), options_.job_id);
      absl::StatusOr<Job> ended = GetJob(options_.job_id);
      if (!ended.ok()) return Fail(ended.status(), options_.job_id);
      job = std::move(ended);
    }
    Print(json() ? ToJson(*job) : absl::StrCat(FormatOutcomeLine(*job), "\n"));
    return ExitCodeForState(job->state());
  }

  int WaitPipeline(std::optional<absl::Time> deadline) {
    const std::string& id = options_.job_id;
    Pipeline last;
    absl::StatusOr<Pipeline> ended = PollPipeline(id, {}, deadline, /*submitted=*/false, &last);
    if (!ended.ok() && ended.status().code() == absl::StatusCode::kDeadlineExceeded &&
        deadline.has_value() && !last.id().empty()) {
      if (json()) Print(ToJson(last));
      io_.err << "farmctl: pipeline " << id << " is still " << JobStateName(last.state())
              << " after " << common::FormatDurationMs(*options_.timeout_ms) << " ("
              << CountDoneJobs(last) << "/" << last.jobs_size() << " jobs done)\n";
      return kExitWaitTimedOut;
    }
    if (!ended.ok()) return Fail(ended.status(), id);
    Print(json() ? ToJson(*ended)
                 : absl::StrCat(FormatPipelineSummary(*ended, io_.clock.NowMs()), "\n"));
    return ExitCodeForState(ended->state());
  }

  static common::CasClientOptions CasOptions(const CliOptions& options) {
    common::CasClientOptions cas;
    cas.rpc_timeout_ms = options.rpc_timeout_ms;
    cas.attempts = options.cas_attempts;
    cas.initial_backoff_ms = options.retry_initial_backoff_ms;
    cas.max_backoff_ms = options.retry_max_backoff_ms;
    return cas;
  }

  // A CAS or file-system error: one line, without "job ... not found" readings of NOT_FOUND.
  int FailCas(const absl::Status& status) {
    if (status.code() == absl::StatusCode::kUnavailable ||
        status.code() == absl::StatusCode::kDeadlineExceeded ||
        status.code() == absl::StatusCode::kUnimplemented) {
      return Fail(status);
    }
    io_.err << "farmctl: " << OneLine(status.message()) << "\n";
    io_.err.flush();
    return kExitError;
  }

  int Artifacts() {
    absl::StatusOr<Job> job = GetJob(options_.job_id);
    if (!job.ok()) return Fail(job.status(), options_.job_id);
    return Print(json() ? FormatArtifactsJson(*job) : FormatArtifactsText(*job));
  }

  int Download() {
    absl::StatusOr<Job> job = GetJob(options_.job_id);
    if (!job.ok()) return Fail(job.status(), options_.job_id);
    const std::string dir = options_.output_path.empty() ? "." : options_.output_path;
    if (!IsTerminal(job->state())) {
      io_.err << "farmctl: job " << job->id() << " is " << JobStateName(job->state())
              << "; its artifacts are recorded when it ends (farmctl wait " << job->id() << ")\n";
      return kExitError;
    }

    // Which artifacts: all, or those named by PATH (a file, or a directory: everything below).
    std::vector<const farm::v1::Artifact*> selected;
    if (options_.paths.empty()) {
      for (const farm::v1::Artifact& artifact : job->artifacts()) selected.push_back(&artifact);
    } else {
      std::vector<bool> taken(static_cast<size_t>(job->artifacts_size()), false);
      for (const std::string& raw : options_.paths) {
        const std::string path = NormalizeFilter(raw);
        bool any = false;
        for (int i = 0; i < job->artifacts_size(); ++i) {
          const std::string& candidate = job->artifacts(i).path();
          if (path.empty() || candidate == path || absl::StartsWith(candidate, path + "/")) {
            any = true;
            if (!taken[static_cast<size_t>(i)]) {
              taken[static_cast<size_t>(i)] = true;
              selected.push_back(&job->artifacts(i));
            }
          }
        }
        if (!any) {
          io_.err << "farmctl: job " << options_.job_id << " has no artifact \"" << raw << "\""
                  << DescribeArtifactPaths(*job) << "\n";
          return kExitError;
        }
      }
    }
    if (selected.empty()) {
      io_.err << "farmctl: " << FormatArtifactsText(*job);
      if (json()) {
        Print(JsonObject(
            {{"job_id", JsonString(job->id())}, {"dir", JsonString(dir)}, {"artifacts", "[]"}}));
      }
      return kExitSucceeded;
    }

    absl::StatusOr<std::string> root = PrepareDirectory(dir);
    if (!root.ok()) return FailCas(root.status());
    int64_t bytes = 0;
    std::vector<std::string> written;
    for (const farm::v1::Artifact* artifact : selected) {
      absl::StatusOr<std::string> target = PrepareTarget(*root, dir, artifact->path());
      if (!target.ok()) return FailCas(target.status());
      absl::StatusOr<common::Digest> digest =
          common::MakeDigest(artifact->hash(), artifact->size());
      if (!digest.ok()) {
        return FailCas(absl::InvalidArgumentError(absl::StrCat(
            artifact->path(), ": the job records a bad digest: ", digest.status().message())));
      }
      const absl::Status fetched = cas_.Download(*digest, *target, artifact->executable());
      if (!fetched.ok()) {
        return FailCas(
            absl::Status(fetched.code(), absl::StrCat(artifact->path(), ": ", fetched.message())));
      }
      bytes += artifact->size();
      const std::string shown = dir == "." ? artifact->path() : JoinPath(dir, artifact->path());
      written.push_back(shown);
      if (!json()) io_.out << shown << "\n";
    }
    if (json()) {
      std::vector<std::string> items;
      for (const farm::v1::Artifact* artifact : selected) items.push_back(JsonValue(*artifact));
      return Print(JsonObject({{"job_id", JsonString(job->id())},
                               {"dir", JsonString(dir)},
                               {"artifacts", absl::StrCat("[", absl::StrJoin(items, ", "), "]")}}));
    }
    io_.out.flush();
    io_.err << "downloaded " << written.size() << (written.size() == 1 ? " file" : " files") << " ("
            << FormatBytes(bytes) << ") of job " << job->id() << " into " << dir
            << ", digests verified\n";
    io_.err.flush();
    return kExitSucceeded;
  }

  int CasPut() {
    absl::StatusOr<common::Digest> digest = common::DigestFile(options_.file);
    if (!digest.ok()) return FailCas(digest.status());
    absl::StatusOr<bool> present = cas_.Stat(*digest);
    if (!present.ok()) return FailCas(present.status());
    if (!*present) {
      if (absl::Status s = cas_.UploadFile(options_.file, *digest); !s.ok()) return FailCas(s);
    }
    if (json()) {
      return Print(JsonObject({{"digest", JsonString(digest->ToString())},
                               {"hash", JsonString(digest->hash)},
                               {"size", absl::StrCat(digest->size)},
                               {"uploaded", *present ? "false" : "true"}}));
    }
    return Print(absl::StrCat(digest->ToString(), "\n"));
  }

  int CasGet() {
    absl::StatusOr<common::Digest> digest = common::ParseDigest(options_.digest);
    if (!digest.ok()) return FailCas(digest.status());
    if (absl::Status s = cas_.Download(*digest, options_.output_path); !s.ok()) return FailCas(s);
    if (json()) {
      return Print(JsonObject({{"digest", JsonString(digest->ToString())},
                               {"path", JsonString(options_.output_path)},
                               {"size", absl::StrCat(digest->size)}}));
    }
    io_.err << "wrote " << options_.output_path << " (" << FormatBytes(digest->size)
            << "), digest verified\n";
    io_.err.flush();
    return kExitSucceeded;
  }

  int CasStat() {
    absl::StatusOr<common::Digest> digest = common::ParseDigest(options_.digest);
    if (!digest.ok()) return FailCas(digest.status());
    absl::StatusOr<bool> present = cas_.Stat(*digest);
    if (!present.ok()) return FailCas(present.status());
    if (json()) {
      Print(JsonObject(
          {{"digest", JsonString(digest->ToString())}, {"present", *present ? "true" : "false"}}));
    } else {
      Print(absl::StrCat(digest->ToString(), *present ? " present\n" : " missing\n"));
    }
    return *present ? kExitSucceeded : kExitBlobMissing;
  }

  const CliOptions& options_;
  CliIo& io_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<farm::v1::JobService::Stub> jobs_;
  std::unique_ptr<farm::v1::AdminService::Stub> admin_;
  common::CasClient cas_;
};

}  // namespace

int RunCommand(const CliOptions& options, CliIo& io) {
  if (options.command == Command::kHelp) {
    io.out << (options.help_topic.empty() ? UsageText() : CommandUsageText(options.help_topic));
    io.out.flush();
    return kExitSucceeded;
  }
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = common::MakeChannel(options.coordinator);
  if (!channel.ok()) {
    io.err << "farmctl: " << OneLine(channel.status().message()) << "\n";
    return kExitUsage;
  }
  return Client(options, io, *std::move(channel)).Run();
}

int RunFarmctl(const std::vector<std::string>& args, absl::string_view env_coordinator, CliIo& io) {
  if (args.empty()) {
    io.err << UsageText();
    return kExitUsage;
  }
  absl::StatusOr<CliOptions> options = ParseArgs(args, env_coordinator);
  if (!options.ok()) {
    io.err << "farmctl: " << options.status().message() << "\n";
    return kExitUsage;
  }
  return RunCommand(*options, io);
}

}  // namespace farm::cli
