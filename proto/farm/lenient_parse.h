// Parsing a request whose strings are not UTF-8, so that the service can refuse it by name.
//
// proto3 `string` fields must hold UTF-8, and the generated parser fails the whole message
// when one does not. gRPC's callback server turns that parse failure into UNIMPLEMENTED with
// no message, before any handler runs, so a client sending a label that is not UTF-8 was told
// the coordinator does not know the RPC. The request types of farm.v1 are therefore
// deserialized with DeserializeKeepingText (see farm/request_traits.h): a message that fails
// the strict parse only because of such strings is parsed again leniently, keeping the bytes
// as they came, and the service's text check (common/text.h) answers INVALID_ARGUMENT naming
// the field. A message that is malformed otherwise still fails as before.
//
// Thread-safe.
#pragma once

#include <google/protobuf/message.h>
#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/status.h>

#include <string>

namespace farm::proto {

// Parses `bytes` into `message` (cleared first) like ParseFromString, except that a string
// field may hold bytes that are not UTF-8: they are kept as they are. False when `bytes` is
// not a valid encoding of the message type for another reason.
bool ParseKeepingInvalidUtf8(const std::string& bytes, google::protobuf::Message* message);

// gRPC deserialization with that fallback: the strict parse, then (only when it fails)
// ParseKeepingInvalidUtf8; the strict parse's error when both fail.
grpc::Status DeserializeKeepingText(grpc::ByteBuffer* buffer, google::protobuf::Message* message);

}  // namespace farm::proto
