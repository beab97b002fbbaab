#pragma once
// The dashboard's files (src/admin/dashboard/), compiled into the binary by
// CMake (cmake/embed_assets.cmake) so that the admin listener serves them
// with no files to install.

#include <string_view>

namespace weir::admin {

struct Asset {
  std::string_view path;          // "/", "/dashboard.js", ...
  std::string_view content_type;
  std::string_view body;
};

// The asset served at path, or null.
const Asset* find_asset(std::string_view path);

}  // namespace weir::admin
