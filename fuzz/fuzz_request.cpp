// Client request head: parse, validate, route, and build what goes upstream.
//
// Input layout: [route table] NUL [request head], or just a request head (no
// NUL), which is routed against the built-in table below. A route table is
// lines of space-separated tokens, one route per line (at most 8 routes, 4
// headers each):
//   host=api.example.com | host=*.example.com   (absent: any host)
//   path=/exact | prefix=/chat                   (absent: prefix "/")
//   hdr=x-tenant:acme                            (name lower-cased, value exact)
// Oracle: match_route() picks the first route that a reference matcher,
// written from the contract in proxy/route_match.h, accepts.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "http/head.h"
#include "http/upgrade.h"
#include "proxy/route_match.h"

namespace {
using weir::config::Config;
using weir::config::Route;

Route route(std::string host, std::string path, bool prefix,
            std::vector<weir::config::HeaderMatch> headers = {}) {
  Route r;
  r.name = host + path;
  r.match.host = std::move(host);
  r.match.path = std::move(path);
  r.match.path_prefix = prefix;
  r.match.headers = std::move(headers);
  return r;
}

// Every kind of condition, in an order where earlier routes shadow parts of
// later ones; no catch-all, so "no route" (404) is reachable.
Config builtin_table() {
  Config c;
  c.routes.push_back(route("api.example.com", "/v1/", true, {{"x-tenant", "acme"}}));
  c.routes.push_back(route("*.example.com", "/chat", false));
  c.routes.push_back(route("", "/admin", true, {{"x-role", "admin"}, {"x-env", "prod"}}));
  c.routes.push_back(route("example.com", "/", true));
  c.routes.push_back(route("*.b.weir.test", "/ws", true, {{"sec-websocket-protocol", "chat"}}));
  c.routes.push_back(route("[::1]", "/", true));
  c.routes.push_back(route("", "/exact", false));
  return c;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

Config parse_table(std::string_view spec) {
  Config c;
  std::size_t start = 0;
  while (start <= spec.size() && c.routes.size() < 8) {
    std::size_t end = spec.find('\n', start);
    if (end == std::string_view::npos) end = spec.size();
    const std::string_view line = spec.substr(start, end - start);
    start = end + 1;
    Route r = route("", "/", true);
    std::size_t t = 0;
    while (t < line.size()) {
      std::size_t e = line.find(' ', t);
      if (e == std::string_view::npos) e = line.size();
      const std::string_view tok = line.substr(t, e - t);
      t = e + 1;
      if (tok.starts_with("host=")) {
        r.match.host = lower(tok.substr(5));
      } else if (tok.starts_with("path=")) {
        r.match.path = std::string(tok.substr(5));
        r.match.path_prefix = false;
      } else if (tok.starts_with("prefix=")) {
        r.match.path = std::string(tok.substr(7));
        r.match.path_prefix = true;
      } else if (tok.starts_with("hdr=") && r.match.headers.size() < 4) {
        const std::string_view hv = tok.substr(4);
        const std::size_t colon = hv.find(':');
        if (colon == std::string_view::npos) continue;
        r.match.headers.push_back({lower(hv.substr(0, colon)), std::string(hv.substr(colon + 1))});
      }
    }
    c.routes.push_back(std::move(r));
  }
  return c;
}

// Reference matcher, from route_match.h: "Host header without port,
// lower-cased comparison; *.example.com matches any name ending in
// .example.com"; path is the target before '?', exact or prefix; each header
// condition compares the first field of that name, exactly.
bool ref_host(const std::string& pattern, std::string_view header) {
  if (pattern.empty()) return true;
  std::string_view host = header;
  if (!host.empty() && host.front() == '[') {
    const std::size_t close = host.find(']');
    if (close != std::string_view::npos) host = host.substr(0, close + 1);
  } else if (const std::size_t colon = host.rfind(':'); colon != std::string_view::npos) {
    host = host.substr(0, colon);
  }
  const std::string h = lower(host), p = lower(pattern);
  if (p.size() > 2 && p[0] == '*' && p[1] == '.') {
    const std::string_view suffix = std::string_view(p).substr(1);
    return h.size() > suffix.size() && std::string_view(h).ends_with(suffix);
  }
  return h == p;
}

std::string_view first_field(const weir::http::Head& h, std::string_view name) {
  for (const auto& f : h.fields)
    if (lower(f.name) == lower(name)) return f.value;
  return {};
}

bool ref_matches(const Route& r, const weir::http::Head& h) {
  const auto& m = r.match;
  if (!ref_host(m.host, first_field(h, "host"))) return false;
  std::string_view path = h.target;
  if (const std::size_t q = path.find('?'); q != std::string_view::npos) path = path.substr(0, q);
  if (m.path_prefix ? !path.starts_with(m.path) : path != m.path) return false;
  for (const auto& hm : m.headers)
    if (first_field(h, hm.name) != hm.value) return false;
  return true;
}

std::optional<std::size_t> ref_route(const Config& c, const weir::http::Head& h) {
  for (std::size_t i = 0; i < c.routes.size(); ++i)
    if (ref_matches(c.routes[i], h)) return i;
  return std::nullopt;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const Config builtin = builtin_table();
  const std::string_view all(reinterpret_cast<const char*>(data), size);
  const std::size_t nul = all.find('\0');
  Config parsed;
  const Config* cfg = &builtin;
  std::string_view head = all;
  if (nul != std::string_view::npos) {
    parsed = parse_table(all.substr(0, nul));
    cfg = &parsed;
    head = all.substr(nul + 1);
  }
  const std::string in(head);
  weir::http::Head h;
  if (weir::http::parse_request_head(in, 8192, h) != weir::http::ParseStatus::complete) return 0;
  if (h.size > in.size()) __builtin_trap();
  const std::optional<std::size_t> got = weir::proxy::match_route(*cfg, h);
  if (got != ref_route(*cfg, h)) __builtin_trap();
  if (!weir::http::validate_upgrade_request(h)) {
    const std::string up = weir::http::build_upstream_request(h, {"127.0.0.1", "ws"});
    weir::http::Head again;
    // What we send upstream must itself parse.
    if (weir::http::parse_request_head(up, 1 << 20, again) != weir::http::ParseStatus::complete) __builtin_trap();
  }
  return 0;
}
