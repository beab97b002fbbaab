#pragma once
// Origin allowlist (Cross-Site WebSocket Hijacking defence): a browser's
// request whose Origin is not listed gets 403. Not authentication.

#include <string>
#include <vector>

#include "filters/filter.h"

namespace weir::filters {

class OriginFilter final : public HandshakeFilter {
 public:
  // Entries as in the config: "scheme://host[:port]", "null" or "*".
  explicit OriginFilter(std::vector<std::string> allowed) : allowed_(std::move(allowed)) {}
  std::string_view name() const override { return "origin"; }
  Verdict on_handshake(const HandshakeContext& ctx) const override;
  bool allows(std::string_view origin) const;

 private:
  std::vector<std::string> allowed_;
};

}  // namespace weir::filters
