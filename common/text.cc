#include "common/text.h"

#include <google/protobuf/descriptor.h>

#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"

namespace farm::common {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

// A C1 control (U+0080..U+009F) is 0xC2 followed by its own value.
bool IsC1(absl::string_view text, size_t pos, size_t len) {
  return len == 2 && static_cast<unsigned char>(text[pos]) == 0xC2 &&
         static_cast<unsigned char>(text[pos + 1]) < 0xA0;
}

bool IsC0OrDel(unsigned char c) { return c < 0x20 || c == 0x7F; }

// Appends `text` to *out escaped as Quote (`quoted`) or EscapeControls say, keeping the C0
// controls in `keep`; stops before the character that would take it past `max_bytes` of
// `text`. Returns how many bytes of `text` it appended.
size_t AppendEscaped(absl::string_view text, size_t max_bytes, absl::string_view keep, bool quoted,
                     std::string* out) {
  size_t pos = 0;
  while (pos < text.size()) {
    const unsigned char c = static_cast<unsigned char>(text[pos]);
    const size_t len = Utf8CharLength(text, pos);
    const size_t consumed = len == 0 ? 1 : len;
    if (pos + consumed > max_bytes) break;
    if (len == 0) {
      absl::StrAppendFormat(out, "\\x%02x", c);
    } else if (IsC1(text, pos, len)) {
      absl::StrAppendFormat(out, "\\u%04x", static_cast<unsigned char>(text[pos + 1]));
    } else if (IsC0OrDel(c) && keep.find(static_cast<char>(c)) != absl::string_view::npos) {
      out->push_back(static_cast<char>(c));
    } else if (IsC0OrDel(c)) {
      if (quoted && c == '\n') {
        out->append("\\n");
      } else if (quoted && c == '\t') {
        out->append("\\t");
      } else if (quoted && c == '\r') {
        out->append("\\r");
      } else {
        absl::StrAppendFormat(out, "\\x%02x", c);
      }
    } else if (quoted && (c == '"' || c == '\\')) {
      out->push_back('\\');
      out->push_back(static_cast<char>(c));
    } else {
      out->append(text.data() + pos, len);
    }
    pos += consumed;
  }
  return pos;
}

// The fields of farm.v1 requests that hold free text; every other string is a name.
bool IsFreeText(const FieldDescriptor* field) {
  static const auto* const kFreeText = new absl::flat_hash_set<std::string>({
      "farm.v1.StepSpec.run",
      "farm.v1.JobSpec.EnvEntry.value",
      "farm.v1.StepSpec.EnvEntry.value",
      "farm.v1.PipelineSpec.EnvEntry.value",
      "farm.v1.StepResult.message",
      "farm.v1.CompleteJobRequest.reason",
  });
  return kFreeText->contains(field->full_name());
}

TextKind KindOf(const FieldDescriptor* field) {
  return IsFreeText(field) ? TextKind::kFreeText : TextKind::kName;
}

absl::Status CheckMessage(const Message& message, const std::string& path);

// A map field, read through reflection as its repeated entries (key = 1, value = 2).
absl::Status CheckMap(const Message& message, const FieldDescriptor* field,
                      const std::string& where) {
  const Reflection* reflection = message.GetReflection();
  const int size = reflection->FieldSize(message, field);
  for (int i = 0; i < size; ++i) {
    const Message& entry = reflection->GetRepeatedMessage(message, field, i);
    const Reflection* entry_reflection = entry.GetReflection();
    const FieldDescriptor* key_field = field->message_type()->map_key();
    const FieldDescriptor* value_field = field->message_type()->map_value();
    std::string key_text = absl::StrCat("[", i, "]");
    if (key_field->type() == FieldDescriptor::TYPE_STRING) {
      std::string scratch;
      const std::string& key = entry_reflection->GetStringReference(entry, key_field, &scratch);
      FARM_RETURN_IF_ERROR(ValidateText(absl::StrCat(where, " key"), key, TextKind::kName));
      key_text = absl::StrCat("[", Quote(key), "]");
    }
    if (value_field->type() == FieldDescriptor::TYPE_STRING) {
      std::string scratch;
      FARM_RETURN_IF_ERROR(ValidateText(
          absl::StrCat(where, key_text),
          entry_reflection->GetStringReference(entry, value_field, &scratch), KindOf(value_field)));
    } else if (value_field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      FARM_RETURN_IF_ERROR(CheckMessage(entry_reflection->GetMessage(entry, value_field),
                                        absl::StrCat(where, key_text)));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckField(const Message& message, const FieldDescriptor* field,
                        const std::string& where) {
  const Reflection* reflection = message.GetReflection();
  if (field->is_map()) return CheckMap(message, field, where);
  const bool message_type = field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE;
  if (!message_type && field->type() != FieldDescriptor::TYPE_STRING) return absl::OkStatus();
  if (!field->is_repeated()) {
    if (message_type) return CheckMessage(reflection->GetMessage(message, field), where);
    std::string scratch;
    return ValidateText(where, reflection->GetStringReference(message, field, &scratch),
                        KindOf(field));
  }
  for (int i = 0; i < reflection->FieldSize(message, field); ++i) {
    const std::string item = absl::StrCat(where, "[", i, "]");
    if (message_type) {
      FARM_RETURN_IF_ERROR(CheckMessage(reflection->GetRepeatedMessage(message, field, i), item));
      continue;
    }
    std::string scratch;
    FARM_RETURN_IF_ERROR(ValidateText(
        item, reflection->GetRepeatedStringReference(message, field, i, &scratch), KindOf(field)));
  }
  return absl::OkStatus();
}

absl::Status CheckMessage(const Message& message, const std::string& path) {
  std::vector<const FieldDescriptor*> fields;
  message.GetReflection()->ListFields(message, &fields);
  for (const FieldDescriptor* field : fields) {
    FARM_RETURN_IF_ERROR(
        CheckField(message, field, path.empty() ? field->name() : path + "." + field->name()));
  }
  return absl::OkStatus();
}

}  // namespace

size_t Utf8CharLength(absl::string_view text, size_t pos) {
  const unsigned char c = static_cast<unsigned char>(text[pos]);
  size_t extra = 0;
  uint32_t code = 0;
  if (c < 0x80) return 1;
  if ((c & 0xE0) == 0xC0) {
    extra = 1;
    code = c & 0x1F;
  } else if ((c & 0xF0) == 0xE0) {
    extra = 2;
    code = c & 0x0F;
  } else if ((c & 0xF8) == 0xF0) {
    extra = 3;
    code = c & 0x07;
  } else {
    return 0;
  }
  if (pos + extra >= text.size()) return 0;
  for (size_t k = 1; k <= extra; ++k) {
    const unsigned char cc = static_cast<unsigned char>(text[pos + k]);
    if ((cc & 0xC0) != 0x80) return 0;
    code = (code << 6) | (cc & 0x3F);
  }
  // Overlong forms, surrogates and values past U+10FFFF are not UTF-8.
  static constexpr uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
  if (code < kMin[extra] || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF)) return 0;
  return extra + 1;
}

std::string Quote(absl::string_view text, size_t max_bytes) {
  std::string out = "\"";
  const size_t shown = AppendEscaped(text, max_bytes, /*keep=*/"", /*quoted=*/true, &out);
  out.push_back('"');
  if (shown < text.size()) absl::StrAppend(&out, "... (", text.size(), " bytes)");
  return out;
}

std::string EscapeControls(absl::string_view text, absl::string_view keep) {
  std::string out;
  out.reserve(text.size());
  AppendEscaped(text, text.size(), keep, /*quoted=*/false, &out);
  return out;
}

absl::Status ValidateText(absl::string_view field, absl::string_view text, TextKind kind) {
  for (size_t pos = 0; pos < text.size();) {
    const unsigned char c = static_cast<unsigned char>(text[pos]);
    const size_t len = Utf8CharLength(text, pos);
    const char* problem = nullptr;
    if (len == 0) {
      problem = "is not valid UTF-8";
    } else if (c == 0) {
      problem = "contains a NUL byte";
    } else if ((IsC0OrDel(c) || IsC1(text, pos, len)) &&
               !(kind == TextKind::kFreeText && (c == '\n' || c == '\t' || c == '\r'))) {
      problem = "contains a control character";
    }
    if (problem != nullptr) {
      // Past what the quote shows, say where.
      const std::string at = pos >= kMaxEchoBytes ? absl::StrCat(" at byte ", pos) : "";
      return absl::InvalidArgumentError(absl::StrCat(field, " ", Quote(text), ": ", problem, at));
    }
    pos += len;
  }
  return absl::OkStatus();
}

absl::Status ValidateRequestText(const Message& message) { return CheckMessage(message, ""); }

}  // namespace farm::common
