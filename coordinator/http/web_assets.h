// The web dashboard's files (coordinator/http/web/: the page's shell, script and style),
// compiled into the coordinator by cmake/EmbedFiles.cmake, so that the page needs nothing from
// the network and a coordinator's page always matches its API.
#pragma once

#include "absl/strings/string_view.h"

namespace farm::coordinator {

struct WebAsset {
  absl::string_view name;  // "app.js"
  absl::string_view content_type;
  absl::string_view data;
};

// The file of that name; null when there is none.
const WebAsset* FindWebAsset(absl::string_view name);

}  // namespace farm::coordinator
