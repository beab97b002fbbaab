// Client request head: parse, validate, route, and build what goes upstream.
#include <string>

#include "config/config.h"
#include "http/head.h"
#include "http/upgrade.h"
#include "proxy/route_match.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const weir::config::Config cfg = weir::config::demo_config(8080);
  const std::string in(reinterpret_cast<const char*>(data), size);
  weir::http::Head h;
  if (weir::http::parse_request_head(in, 8192, h) != weir::http::ParseStatus::complete) return 0;
  if (h.size > in.size()) __builtin_trap();
  (void)weir::proxy::match_route(cfg, h);
  if (!weir::http::validate_upgrade_request(h)) {
    const std::string up = weir::http::build_upstream_request(h, {"127.0.0.1", "ws"});
    weir::http::Head again;
    // What we send upstream must itself parse.
    if (weir::http::parse_request_head(up, 1 << 20, again) != weir::http::ParseStatus::complete) __builtin_trap();
  }
  return 0;
}
