#pragma once
// Origin allowlist (Cross-Site WebSocket Hijacking defence): a browser's
// request whose Origin is not listed gets 403. Not authentication.
// YAML: `origins: [https://chat.example.com, 'null', '*']` on a route.

#include <memory>
#include <string>
#include <vector>

#include "config/filter_reader.h"
#include "filters/api.h"

namespace weir::filters {

class OriginFilter final : public Filter {
 public:
  // Entries as in the config: "scheme://host[:port]" (lower-case), "null" or "*".
  explicit OriginFilter(std::vector<std::string> allowed) : allowed_(std::move(allowed)) {}
  static std::shared_ptr<config::FilterSettings> parse(const config::FilterReader& value);

  unsigned hooks() const override { return kHandshake; }
  std::unique_ptr<Instance> instantiate() const override;
  bool same_as(const config::FilterSettings& other) const override;
  bool allows(std::string_view origin) const;
  const std::vector<std::string>& allowed() const { return allowed_; }

 private:
  std::vector<std::string> allowed_;
};

// "scheme://host[:port]" with no path, "null" or "*".
bool valid_origin(std::string_view origin);

}  // namespace weir::filters
