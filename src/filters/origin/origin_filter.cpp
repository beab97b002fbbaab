#include "filters/origin/origin_filter.h"

namespace weir::filters {

bool OriginFilter::allows(std::string_view origin) const {
  for (const auto& o : allowed_)
    if (o == "*" || http::iequals(o, origin)) return true;
  return false;
}

Verdict OriginFilter::on_handshake(const HandshakeContext& ctx) const {
  if (allows(ctx.request.get("origin"))) return {};
  return {403, "origin not allowed"};
}

}  // namespace weir::filters
