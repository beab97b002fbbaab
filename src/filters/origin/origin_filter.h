#pragma once
// Origin allowlist (Cross-Site WebSocket Hijacking defence): a browser's
// request whose Origin is not listed gets 403. Not authentication.
// YAML on a route: `origins: [https://chat.example.com, 'https://*.example.com', 'null', '*']`,
// or `origins: {allow: [...], missing: allow}` to let requests without an
// Origin header (non-browser clients) through; by default they get 403.

#include <memory>
#include <string>
#include <vector>

#include "config/filter_reader.h"
#include "filters/api.h"

namespace weir::filters {

class OriginFilter final : public Filter {
 public:
  // Entries as in the config: "scheme://host[:port]" (lower-case), "null" or "*".
  explicit OriginFilter(std::vector<std::string> allowed, bool allow_missing = false)
      : allowed_(std::move(allowed)), allow_missing_(allow_missing) {}
  static std::shared_ptr<config::FilterSettings> parse(const config::FilterReader& value);

  unsigned hooks() const override { return kHandshake; }
  std::unique_ptr<Instance> instantiate() const override;
  bool same_as(const config::FilterSettings& other) const override;
  bool allows(std::string_view origin) const;
  const std::vector<std::string>& allowed() const { return allowed_; }

 private:
  std::vector<std::string> allowed_;
  bool allow_missing_;
};

// "scheme://host[:port]" with no path, "null" or "*"; with wildcard_ok,
// also "scheme://*.domain[:port]".
bool valid_origin(std::string_view origin, bool wildcard_ok = false);
// Whether an allowlist entry (lower-case) admits an Origin header value.
bool origin_matches(std::string_view entry, std::string_view origin);

}  // namespace weir::filters
