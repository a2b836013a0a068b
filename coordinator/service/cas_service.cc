// ReapiServices: owns the pool and the four REAPI services; Capabilities and ActionCache live
// here, ContentAddressableStorage and ByteStream in cas_service_cas.cc and
// cas_service_bytestream.cc; the helpers they share are defined here too.
#include "coordinator/service/cas_service.h"

#include <grpcpp/grpcpp.h>

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "coordinator/service/cas_service_internal.h"

namespace farm::coordinator {
namespace reapi_internal {

absl::StatusOr<common::Digest> FromProto(const reapi::Digest& d) {
  return common::MakeDigest(d.hash(), d.size_bytes());
}

reapi::Digest ToProto(const common::Digest& d) {
  reapi::Digest out;
  out.set_hash(d.hash);
  out.set_size_bytes(d.size);
  return out;
}

void SetStatus(const absl::Status& s, google::rpc::Status* out) {
  out->set_code(static_cast<int>(s.code()));
  out->set_message(std::string(s.message()));
}

absl::Status CheckDigestFunction(reapi::DigestFunction::Value f) {
  if (f == reapi::DigestFunction::UNKNOWN || f == reapi::DigestFunction::SHA256) {
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(
      absl::StrCat("digest function ", reapi::DigestFunction::Value_Name(f),
                   " is not supported; this server uses SHA256 only"));
}

absl::Status TooBig(absl::string_view what, int64_t value, int64_t limit,
                    absl::string_view advice) {
  return absl::InvalidArgumentError(
      absl::StrCat(what, " ", value, " is above this server's limit of ", limit, "; ", advice));
}

namespace {

using common::Digest;

class CapabilitiesService final : public reapi::Capabilities::CallbackService {
 public:
  grpc::ServerUnaryReactor* GetCapabilities(grpc::CallbackServerContext* ctx,
                                            const reapi::GetCapabilitiesRequest* req,
                                            reapi::ServerCapabilities* resp) override {
    auto* cache = resp->mutable_cache_capabilities();
    cache->add_digest_functions(reapi::DigestFunction::SHA256);
    cache->mutable_action_cache_update_capabilities()->set_update_enabled(true);
    cache->set_max_batch_total_size_bytes(kMaxBatchTotalBytes);
    // The cache stores symlink targets as given; it never resolves them.
    cache->set_symlink_absolute_path_strategy(reapi::SymlinkAbsolutePathStrategy::ALLOWED);
    resp->mutable_low_api_version()->set_major(2);
    resp->mutable_high_api_version()->set_major(2);
    resp->mutable_high_api_version()->set_minor(3);
    auto* reactor = ctx->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
};

class ActionCacheService final : public reapi::ActionCache::CallbackService {
 public:
  ActionCacheService(ActionCache* cache, common::IoPool* pool) : cache_(cache), pool_(pool) {}

  grpc::ServerUnaryReactor* GetActionResult(grpc::CallbackServerContext* ctx,
                                            const reapi::GetActionResultRequest* req,
                                            reapi::ActionResult* resp) override {
    return OnPool(ctx, pool_, [this, req, resp]() -> absl::Status {
      FARM_RETURN_IF_ERROR(CheckDigestFunction(req->digest_function()));
      FARM_ASSIGN_OR_RETURN(Digest action, FromProto(req->action_digest()));
      FARM_ASSIGN_OR_RETURN(*resp, cache_->Get(req->instance_name(), action));
      return absl::OkStatus();
    });
  }

  grpc::ServerUnaryReactor* UpdateActionResult(grpc::CallbackServerContext* ctx,
                                               const reapi::UpdateActionResultRequest* req,
                                               reapi::ActionResult* resp) override {
    return OnPool(ctx, pool_, [this, req, resp]() -> absl::Status {
      FARM_RETURN_IF_ERROR(CheckDigestFunction(req->digest_function()));
      FARM_ASSIGN_OR_RETURN(Digest action, FromProto(req->action_digest()));
      FARM_ASSIGN_OR_RETURN(*resp,
                            cache_->Update(req->instance_name(), action, req->action_result()));
      return absl::OkStatus();
    });
  }

 private:
  ActionCache* const cache_;
  common::IoPool* const pool_;
};

}  // namespace
}  // namespace reapi_internal

ReapiServices::ReapiServices(BlobStore* blobs, ActionCache* action_cache, int io_threads)
    : pool_(io_threads, "reapi") {
  services_.push_back(std::make_unique<reapi_internal::CapabilitiesService>());
  services_.push_back(reapi_internal::NewCasService(blobs, &pool_));
  services_.push_back(std::make_unique<reapi_internal::ActionCacheService>(action_cache, &pool_));
  services_.push_back(reapi_internal::NewByteStreamService(blobs, &pool_));
}

ReapiServices::~ReapiServices() = default;

std::vector<std::string> ReapiServices::Names() {
  namespace reapi = build::bazel::remote::execution::v2;
  return {reapi::Capabilities::service_full_name(),
          reapi::ContentAddressableStorage::service_full_name(),
          reapi::ActionCache::service_full_name(),
          google::bytestream::ByteStream::service_full_name()};
}

void ReapiServices::Register(grpc::ServerBuilder& builder) {
  for (const auto& service : services_) builder.RegisterService(service.get());
}

}  // namespace farm::coordinator
