#include "filters/filter.h"

#include "filters/origin/origin_filter.h"

namespace weir::filters {

Verdict Chain::run_handshake(const HandshakeContext& ctx) const {
  for (const auto& f : handshake_) {
    Verdict v = f->on_handshake(ctx);
    if (v.status != 0) return v;
  }
  return {};
}

std::vector<Chain> build_chains(const config::Config& cfg) {
  std::vector<Chain> chains(cfg.routes.size());
  for (std::size_t i = 0; i < cfg.routes.size(); ++i) {
    const auto& r = cfg.routes[i];
    if (!r.origins.empty()) chains[i].add(std::make_unique<OriginFilter>(r.origins));
  }
  return chains;
}

}  // namespace weir::filters
