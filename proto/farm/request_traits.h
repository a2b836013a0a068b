// How gRPC deserializes the farm.v1 requests: with farm::proto::DeserializeKeepingText
// (farm/lenient_parse.h), so that a request whose strings are not UTF-8 reaches the service,
// which refuses it with INVALID_ARGUMENT naming the field, instead of failing as UNIMPLEMENTED
// before any handler runs. Serialization is gRPC's own.
//
// The generated farm/v1/farm.grpc.pb.h includes this header (the gRPC plugin's
// additional_header_includes, proto/CMakeLists.txt), so that every use of these types with
// gRPC sees the same specializations. Include farm.grpc.pb.h, not this.
#pragma once

#include <grpcpp/impl/codegen/proto_utils.h>

#include "farm/lenient_parse.h"
#include "farm/v1/farm.pb.h"

namespace farm::proto {

// The traits of one request type: gRPC's serialization, the fallback on deserialization.
template <typename Request>
class RequestTraits {
 public:
  static grpc::Status Serialize(const grpc::protobuf::MessageLite& msg, grpc::ByteBuffer* bb,
                                bool* own_buffer) {
    return grpc::GenericSerialize<grpc::ProtoBufferWriter, Request>(msg, bb, own_buffer);
  }
  static grpc::Status Deserialize(grpc::ByteBuffer* buffer, grpc::protobuf::MessageLite* msg) {
    return DeserializeKeepingText(buffer, static_cast<Request*>(msg));
  }
};

}  // namespace farm::proto

namespace grpc {

#define FARM_LENIENT_REQUEST(Type)                  \
  template <>                                       \
  class SerializationTraits<::farm::v1::Type, void> \
      : public ::farm::proto::RequestTraits<::farm::v1::Type> {};

// Every farm.v1 request with a string in it (ListAgentsRequest and ListTokensRequest have none).
FARM_LENIENT_REQUEST(SubmitJobRequest)
FARM_LENIENT_REQUEST(GetJobRequest)
FARM_LENIENT_REQUEST(ListJobsRequest)
FARM_LENIENT_REQUEST(CancelJobRequest)
FARM_LENIENT_REQUEST(WatchLogsRequest)
FARM_LENIENT_REQUEST(SubmitPipelineRequest)
FARM_LENIENT_REQUEST(GetPipelineRequest)
FARM_LENIENT_REQUEST(ListPipelinesRequest)
FARM_LENIENT_REQUEST(CancelPipelineRequest)
FARM_LENIENT_REQUEST(ListEventsRequest)
FARM_LENIENT_REQUEST(RegisterRequest)
FARM_LENIENT_REQUEST(LeaseRequest)
FARM_LENIENT_REQUEST(HeartbeatRequest)
FARM_LENIENT_REQUEST(LogUploadChunk)
FARM_LENIENT_REQUEST(StepStartedRequest)
FARM_LENIENT_REQUEST(StepFinishedRequest)
FARM_LENIENT_REQUEST(CompleteJobRequest)
FARM_LENIENT_REQUEST(CreateTokenRequest)
FARM_LENIENT_REQUEST(RevokeTokenRequest)
// Agent enrollment.
FARM_LENIENT_REQUEST(CreateEnrollTokenRequest)
FARM_LENIENT_REQUEST(EnrollRequest)
// Secrets (ListSecretsRequest has no string).
FARM_LENIENT_REQUEST(SetSecretRequest)
FARM_LENIENT_REQUEST(DeleteSecretRequest)
// Admin agents.
FARM_LENIENT_REQUEST(DrainAgentRequest)
FARM_LENIENT_REQUEST(ResumeAgentRequest)
FARM_LENIENT_REQUEST(RemoveAgentRequest)
FARM_LENIENT_REQUEST(LabelAgentRequest)
// Admin queues (ListQueuesRequest has no string).
FARM_LENIENT_REQUEST(PauseQueueRequest)
FARM_LENIENT_REQUEST(ResumeQueueRequest)
FARM_LENIENT_REQUEST(ReprioritizeJobRequest)
FARM_LENIENT_REQUEST(RetryRequest)
FARM_LENIENT_REQUEST(BulkCancelRequest)
// Issue 13: backup (GetStatusRequest has no string).
FARM_LENIENT_REQUEST(BackupRequest)
// Issue 14: the factory report.
FARM_LENIENT_REQUEST(FactoryReportRequest)
FARM_LENIENT_REQUEST(GetProvenanceRequest)
FARM_LENIENT_REQUEST(SetFactoryTargetRequest)
FARM_LENIENT_REQUEST(DeleteFactoryTargetRequest)
// ListFactoryTargetsRequest has no string.

#undef FARM_LENIENT_REQUEST

}  // namespace grpc
