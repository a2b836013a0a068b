// farmctl's JSON output (format.h): protobuf's JSON mapping of farm.v1 messages, and the few
// objects farmctl assembles itself from them.
#include <google/protobuf/util/json_util.h>

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "coordinator/cli/format.h"

namespace farm::cli {

using farm::v1::Job;

std::string ToJson(const google::protobuf::Message& message, bool pretty) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = pretty;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  std::string json;
  // Fails only for messages with unresolvable Any fields, which farm.v1 has none of.
  const auto status = google::protobuf::util::MessageToJsonString(message, &json, options);
  if (!status.ok()) return absl::StrCat("{\"error\": \"", status.ToString(), "\"}\n");
  if (json.empty() || json.back() != '\n') json.push_back('\n');
  return json;
}

std::string JsonString(absl::string_view text) {
  std::string out = "\"";
  for (const char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          absl::StrAppendFormat(&out, "\\u%04x", static_cast<int>(c));
        } else {
          out += c;
        }
    }
  }
  out += "\"";
  return out;
}

std::string JsonValue(const google::protobuf::Message& message) {
  std::string json = ToJson(message, /*pretty=*/false);
  while (!json.empty() && json.back() == '\n') json.pop_back();
  return json;
}

std::string JsonObject(const std::vector<std::pair<std::string, std::string>>& members) {
  std::string out = "{";
  for (size_t i = 0; i < members.size(); ++i) {
    absl::StrAppend(&out, i == 0 ? "\n  " : ",\n  ", JsonString(members[i].first), ": ",
                    members[i].second);
  }
  absl::StrAppend(&out, members.empty() ? "}\n" : "\n}\n");
  return out;
}

std::string FormatArtifactsJson(const Job& job) {
  std::vector<std::string> items;
  for (const farm::v1::Artifact& artifact : job.artifacts()) items.push_back(JsonValue(artifact));
  return JsonObject({{"job_id", JsonString(job.id())},
                     {"state", JsonString(JobStateName(job.state()))},
                     {"artifacts", absl::StrCat("[", absl::StrJoin(items, ", "), "]")}});
}

}  // namespace farm::cli
