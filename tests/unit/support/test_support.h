#pragma once
// Helpers shared by unit tests: tokens minted here, config errors as text.

#include <string>
#include <string_view>

namespace weir::test {

// An HS256 JWS of `payload` (JSON text) with header {"alg":"HS256"}.
std::string hs256(const std::string& secret, const std::string& payload);
// The ConfigError text of loading `yaml` as "t.yaml", or "" when it loads.
std::string config_error(const std::string& yaml);

}  // namespace weir::test
