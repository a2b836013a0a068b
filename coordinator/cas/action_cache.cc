#include "coordinator/cas/action_cache.h"

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "coordinator/cas/action_cache_keys.h"
#include "coordinator/store/keys.h"

namespace farm::coordinator {
namespace {

namespace reapi = build::bazel::remote::execution::v2;

std::string Key(absl::string_view instance, const common::Digest& action) {
  return absl::StrCat(instance, absl::string_view("\0", 1), action.ToString());
}

absl::StatusOr<common::Digest> FromProto(const reapi::Digest& d, absl::string_view field) {
  absl::StatusOr<common::Digest> out = common::MakeDigest(d.hash(), d.size_bytes());
  if (!out.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": ", out.status().message()));
  }
  return out;
}

absl::Status AddFiles(const reapi::Directory& dir, absl::string_view where,
                      std::vector<common::Digest>* out) {
  for (const auto& f : dir.files()) {
    FARM_ASSIGN_OR_RETURN(common::Digest d,
                          FromProto(f.digest(), absl::StrCat(where, "/", f.name())));
    out->push_back(std::move(d));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<common::Digest>> ActionCache::DirectReferences(
    const reapi::ActionResult& result) {
  std::vector<common::Digest> refs;
  for (const auto& f : result.output_files()) {
    FARM_ASSIGN_OR_RETURN(common::Digest d,
                          FromProto(f.digest(), absl::StrCat("output file ", f.path())));
    refs.push_back(std::move(d));
  }
  for (const auto& dir : result.output_directories()) {
    FARM_ASSIGN_OR_RETURN(
        common::Digest d,
        FromProto(dir.tree_digest(), absl::StrCat("output directory ", dir.path(), " tree")));
    refs.push_back(std::move(d));
    if (dir.has_root_directory_digest()) {
      FARM_ASSIGN_OR_RETURN(common::Digest root,
                            FromProto(dir.root_directory_digest(),
                                      absl::StrCat("output directory ", dir.path(), " root")));
      refs.push_back(std::move(root));
    }
  }
  if (result.has_stdout_digest()) {
    FARM_ASSIGN_OR_RETURN(common::Digest d, FromProto(result.stdout_digest(), "stdout"));
    refs.push_back(std::move(d));
  }
  if (result.has_stderr_digest()) {
    FARM_ASSIGN_OR_RETURN(common::Digest d, FromProto(result.stderr_digest(), "stderr"));
    refs.push_back(std::move(d));
  }
  return refs;
}

absl::StatusOr<reapi::ActionResult> ActionCache::Get(absl::string_view instance,
                                                     const common::Digest& action) {
  const std::string key = Key(instance, action);
  FARM_ASSIGN_OR_RETURN(std::optional<std::string> raw, store_->Get(Cf::kActionCache, key));
  if (!raw.has_value()) {
    return absl::NotFoundError(absl::StrCat("no cached result for action ", action.ToString()));
  }
  reapi::ActionResult result;
  std::string why;
  if (!result.ParseFromString(*raw)) {
    why = "its stored entry does not parse";
  } else {
    absl::StatusOr<std::vector<common::Digest>> refs = DirectReferences(result);
    if (!refs.ok()) {
      why = std::string(refs.status().message());
    } else {
      // Files inside output directories are only known from their Tree blobs.
      for (const auto& dir : result.output_directories()) {
        const common::Digest tree{dir.tree_digest().hash(), dir.tree_digest().size_bytes()};
        absl::StatusOr<std::string> bytes = blobs_->Read(tree);
        if (!bytes.ok()) {
          if (bytes.status().code() == absl::StatusCode::kNotFound ||
              bytes.status().code() == absl::StatusCode::kDataLoss) {
            why = absl::StrCat("the tree of output directory ", dir.path(), " is gone");
            break;
          }
          return bytes.status();
        }
        reapi::Tree parsed;
        if (!parsed.ParseFromString(*bytes)) {
          why = absl::StrCat("the tree of output directory ", dir.path(), " does not parse");
          break;
        }
        absl::Status s = AddFiles(parsed.root(), dir.path(), &*refs);
        for (int i = 0; s.ok() && i < parsed.children_size(); ++i) {
          s = AddFiles(parsed.children(i), dir.path(), &*refs);
        }
        if (!s.ok()) {
          why = std::string(s.message());
          break;
        }
      }
      if (why.empty()) {
        FARM_ASSIGN_OR_RETURN(std::vector<common::Digest> missing, blobs_->FindMissing(*refs));
        if (!missing.empty()) {
          why = absl::StrCat(missing.size(), " blob(s) it refers to are no longer in the CAS (",
                             missing.front().ToString(), "...)");
        }
      }
    }
  }
  if (!why.empty()) {
    // A result that cannot be used is as good as absent; dropping it keeps the family from
    // filling up with results of evicted outputs.
    WriteBatch drop;
    drop.Delete(Cf::kActionCache, key);
    if (absl::Status s = store_->Write(drop, /*sync=*/false); !s.ok()) {
      FARM_LOG(WARNING) << "dropping action cache entry " << action << ": " << s;
    }
    return absl::NotFoundError(
        absl::StrCat("cached result for action ", action.ToString(), " is unusable: ", why));
  }
  return result;
}

absl::StatusOr<reapi::ActionResult> ActionCache::Update(absl::string_view instance,
                                                        const common::Digest& action,
                                                        const reapi::ActionResult& result) {
  FARM_ASSIGN_OR_RETURN(std::vector<common::Digest> refs, DirectReferences(result));
  const size_t bytes = result.ByteSizeLong();
  if (bytes > kMaxActionResultBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "action result of ", bytes, " bytes is above the limit of ", kMaxActionResultBytes));
  }
  FARM_ASSIGN_OR_RETURN(std::vector<common::Digest> missing, blobs_->FindMissing(refs));
  if (!missing.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("the action result refers to ", missing.size(), " blob(s) not in the CAS (",
                     missing.front().ToString(), "...); upload them first"));
  }
  WriteBatch batch;
  const std::string key = Key(instance, action);
  batch.Put(Cf::kActionCache, key, result.SerializeAsString());
  // Its age, for retention (a replaced result's older "a" key is dropped by Expire).
  const int64_t now = clock_->NowMs();
  batch.Put(Cf::kRetention, AcStoredKey(key), keys::U64(static_cast<uint64_t>(now)));
  batch.Put(Cf::kRetention, AgeKey(now, key), "");
  FARM_RETURN_IF_ERROR(store_->Write(batch, /*sync=*/true));
  return result;
}

}  // namespace farm::coordinator
