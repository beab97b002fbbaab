#pragma once
// Shared by the config tests: the full error text a YAML text loads to.

#include <string>

#include "config/config.h"

namespace weir::config::testing {

// The full error text for `yaml` (loaded as "t.yaml"), or "no error".
inline std::string error_of(const std::string& yaml) {
  try {
    load_string(yaml, "t.yaml");
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace weir::config::testing
