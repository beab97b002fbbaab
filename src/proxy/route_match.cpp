#include "proxy/route_match.h"

namespace weir::proxy {

namespace {

std::string_view strip_port(std::string_view host) {
  if (!host.empty() && host.front() == '[') {
    const auto end = host.find(']');
    return end == std::string_view::npos ? host : host.substr(0, end + 1);
  }
  const auto colon = host.rfind(':');
  return colon == std::string_view::npos ? host : host.substr(0, colon);
}

bool iends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && http::iequals(s.substr(s.size() - suffix.size()), suffix);
}

std::string_view path_of(std::string_view target) {
  const auto q = target.find('?');
  return q == std::string_view::npos ? target : target.substr(0, q);
}

}  // namespace

bool host_matches(std::string_view pattern, std::string_view host_header) {
  if (pattern.empty()) return true;
  const std::string_view host = strip_port(host_header);
  if (pattern.size() > 2 && pattern[0] == '*' && pattern[1] == '.') {
    const std::string_view suffix = pattern.substr(1);  // ".example.com"
    return host.size() > suffix.size() && iends_with(host, suffix);
  }
  return http::iequals(pattern, host);
}

std::optional<std::size_t> match_route(const config::Config& cfg, const http::Head& req) {
  const std::string_view path = path_of(req.target);
  const std::string_view host = req.get("host");
  for (std::size_t i = 0; i < cfg.routes.size(); ++i) {
    const auto& m = cfg.routes[i].match;
    if (!host_matches(m.host, host)) continue;
    if (m.path_prefix ? path.substr(0, m.path.size()) != m.path : path != m.path) continue;
    bool headers_ok = true;
    for (const auto& h : m.headers) {
      if (req.get(h.name) != h.value) {
        headers_ok = false;
        break;
      }
    }
    if (headers_ok) return i;
  }
  return std::nullopt;
}

}  // namespace weir::proxy
