#include "farm/lenient_parse.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>
#include <google/protobuf/dynamic_message.h>
#include <grpcpp/support/proto_buffer_reader.h>

#include <memory>
#include <mutex>
#include <vector>

namespace farm::proto {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::DescriptorPool;
using google::protobuf::DescriptorProto;
using google::protobuf::DynamicMessageFactory;
using google::protobuf::FieldDescriptor;
using google::protobuf::FieldDescriptorProto;
using google::protobuf::FileDescriptor;
using google::protobuf::FileDescriptorProto;
using google::protobuf::Message;
using google::protobuf::Reflection;

// `message` with its strings made `bytes` (whose content is not checked) and its map entries
// plain messages (a map key cannot be `bytes`; on the wire a map is its repeated entries).
void Loosen(DescriptorProto* message) {
  if (message->options().map_entry()) message->mutable_options()->clear_map_entry();
  for (FieldDescriptorProto& field : *message->mutable_field()) {
    if (field.type() == FieldDescriptorProto::TYPE_STRING) {
      field.set_type(FieldDescriptorProto::TYPE_BYTES);
    }
  }
  for (DescriptorProto& nested : *message->mutable_nested_type()) Loosen(&nested);
}

// The loosened twins of the generated message types, built on first use: one pool for the
// process. Only requests that failed the strict parse come here.
class LenientTypes {
 public:
  static LenientTypes& Get() {
    static LenientTypes* const types = new LenientTypes();
    return *types;
  }

  // The twin of `type`, or nullptr when its file cannot be rebuilt.
  const Message* Prototype(const Descriptor* type) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!AddFile(type->file())) return nullptr;
    const Descriptor* twin = pool_.FindMessageTypeByName(type->full_name());
    return twin == nullptr ? nullptr : factory_.GetPrototype(twin);
  }

 private:
  bool AddFile(const FileDescriptor* file) {
    if (pool_.FindFileByName(file->name()) != nullptr) return true;
    for (int i = 0; i < file->dependency_count(); ++i) {
      if (!AddFile(file->dependency(i))) return false;
    }
    FileDescriptorProto proto;
    file->CopyTo(&proto);
    for (DescriptorProto& message : *proto.mutable_message_type()) Loosen(&message);
    return pool_.BuildFile(proto) != nullptr;
  }

  std::mutex mu_;
  DescriptorPool pool_;  // guarded by mu_, as is factory_
  DynamicMessageFactory factory_{&pool_};
};

void CopyFields(const Message& from, Message* to);

#define FARM_COPY_SINGULAR(CPPTYPE, Type)          \
  case FieldDescriptor::CPPTYPE_##CPPTYPE:         \
    out->Set##Type(to, t, in->Get##Type(from, f)); \
    break;

// Copies the singular field `f` of `from` to its twin `t` of `to`.
void CopySingular(const Message& from, const FieldDescriptor* f, Message* to,
                  const FieldDescriptor* t) {
  const Reflection* in = from.GetReflection();
  const Reflection* out = to->GetReflection();
  switch (f->cpp_type()) {
    FARM_COPY_SINGULAR(INT32, Int32)
    FARM_COPY_SINGULAR(INT64, Int64)
    FARM_COPY_SINGULAR(UINT32, UInt32)
    FARM_COPY_SINGULAR(UINT64, UInt64)
    FARM_COPY_SINGULAR(DOUBLE, Double)
    FARM_COPY_SINGULAR(FLOAT, Float)
    FARM_COPY_SINGULAR(BOOL, Bool)
    FARM_COPY_SINGULAR(ENUM, EnumValue)
    FARM_COPY_SINGULAR(STRING, String)
    case FieldDescriptor::CPPTYPE_MESSAGE:
      CopyFields(in->GetMessage(from, f), out->MutableMessage(to, t));
      break;
  }
}

#undef FARM_COPY_SINGULAR

#define FARM_COPY_REPEATED(CPPTYPE, Type)                     \
  case FieldDescriptor::CPPTYPE_##CPPTYPE:                    \
    out->Add##Type(to, t, in->GetRepeated##Type(from, f, i)); \
    break;

// Appends element `i` of the repeated field `f` of `from` to its twin `t` of `to` (a map's
// entries too: reflection sees a map as its repeated entries).
void CopyElement(const Message& from, const FieldDescriptor* f, int i, Message* to,
                 const FieldDescriptor* t) {
  const Reflection* in = from.GetReflection();
  const Reflection* out = to->GetReflection();
  switch (f->cpp_type()) {
    FARM_COPY_REPEATED(INT32, Int32)
    FARM_COPY_REPEATED(INT64, Int64)
    FARM_COPY_REPEATED(UINT32, UInt32)
    FARM_COPY_REPEATED(UINT64, UInt64)
    FARM_COPY_REPEATED(DOUBLE, Double)
    FARM_COPY_REPEATED(FLOAT, Float)
    FARM_COPY_REPEATED(BOOL, Bool)
    FARM_COPY_REPEATED(ENUM, EnumValue)
    FARM_COPY_REPEATED(STRING, String)
    case FieldDescriptor::CPPTYPE_MESSAGE:
      CopyFields(in->GetRepeatedMessage(from, f, i), out->AddMessage(to, t));
      break;
  }
}

#undef FARM_COPY_REPEATED

// Copies every field of `from` (a twin) into `to` by field number; `string` and `bytes` share
// their C++ type, so the values carry over unchanged.
void CopyFields(const Message& from, Message* to) {
  const Reflection* in = from.GetReflection();
  std::vector<const FieldDescriptor*> fields;
  in->ListFields(from, &fields);
  for (const FieldDescriptor* f : fields) {
    const FieldDescriptor* t = to->GetDescriptor()->FindFieldByNumber(f->number());
    if (t == nullptr || t->cpp_type() != f->cpp_type() || t->is_repeated() != f->is_repeated()) {
      continue;  // cannot happen: the twin is built from the same file
    }
    if (!f->is_repeated()) {
      CopySingular(from, f, to, t);
      continue;
    }
    for (int i = 0; i < in->FieldSize(from, f); ++i) CopyElement(from, f, i, to, t);
  }
  to->GetReflection()->MutableUnknownFields(to)->MergeFrom(in->GetUnknownFields(from));
}

}  // namespace

bool ParseKeepingInvalidUtf8(const std::string& bytes, Message* message) {
  const Message* prototype = LenientTypes::Get().Prototype(message->GetDescriptor());
  if (prototype == nullptr) return false;
  std::unique_ptr<Message> lenient(prototype->New());
  if (!lenient->ParseFromString(bytes)) return false;
  message->Clear();
  CopyFields(*lenient, message);
  return true;
}

grpc::Status DeserializeKeepingText(grpc::ByteBuffer* buffer, Message* message) {
  // As grpc::GenericDeserialize, with the fallback.
  if (buffer == nullptr) return grpc::Status(grpc::StatusCode::INTERNAL, "No payload");
  grpc::Status status;
  {
    grpc::ProtoBufferReader reader(buffer);
    if (!reader.status().ok()) return reader.status();
    if (!message->ParseFromZeroCopyStream(&reader)) {
      status = grpc::Status(grpc::StatusCode::INTERNAL, message->InitializationErrorString());
    }
  }
  if (!status.ok()) {
    std::string bytes;
    grpc::ProtoBufferReader reader(buffer);
    const void* data = nullptr;
    int size = 0;
    while (reader.Next(&data, &size)) bytes.append(static_cast<const char*>(data), size);
    if (ParseKeepingInvalidUtf8(bytes, message)) status = grpc::Status::OK;
  }
  buffer->Clear();
  return status;
}

}  // namespace farm::proto
