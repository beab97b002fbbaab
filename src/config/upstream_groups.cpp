// `upstream_groups` and a route's `upstream_group` / `upstreams`
// (docs/configuration.md, "Upstream groups").

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <map>

#include <arpa/inet.h>

#include "config/config.h"
#include "config/loader.h"

namespace weir::config::detail {

namespace {

bool valid_group_name(const std::string& s) {
  if (s.empty() || s.size() > 64) return false;
  return std::all_of(s.begin(), s.end(), [](unsigned char c) {
    return std::isalnum(c) != 0 || c == '-' || c == '_' || c == '.';
  });
}

bool is_name(const Upstream& u) { return u.kind == Upstream::Kind::tcp && u.address.empty() && !ip_literal(u.host); }

constexpr std::string_view kUpstreamRule = "host:port, [IPv6]:port, ws://host:port, wss://host:port or echo";

}  // namespace

std::vector<GroupMember> Loader::members(const Field& f) const {
  std::vector<GroupMember> out;
  std::map<std::string, int> seen;
  for (const Field& item : list(f, true)) {
    GroupMember m;
    const Field* addr = &item;
    Fields fs;
    if (item.node.IsMap()) {
      fs = fields(item, "in a member", {"address", "weight", "max_connections", "backup", "drain"});
      addr = &require(fs, "address", "in a member");
    }
    const std::string text = scalar(*addr, std::string(kUpstreamRule) + " (or a mapping with 'address')");
    auto up = parse_upstream(text);
    if (!up) fail(addr->mark, "invalid upstream " + quote(text) + " (use " + std::string(kUpstreamRule) + ")");
    m.up = std::move(*up);
    if (const Field* v = fs.find("weight")) {
      const auto n = parse_uint(scalar(*v, "an integer 1-1000"));
      if (!n || *n < 1 || *n > 1000) fail(v->mark, v->label + " must be an integer 1-1000");
      m.weight = static_cast<std::uint32_t>(*n);
    }
    if (const Field* v = fs.find("max_connections")) {
      const auto n = parse_uint(scalar(*v, "an integer (0 = no limit)"));
      if (!n || *n > 100'000'000) fail(v->mark, v->label + " must be an integer 0-100000000 (0 = no limit)");
      m.max_connections = static_cast<std::uint32_t>(*n);
    }
    if (const Field* v = fs.find("backup")) m.backup = boolean(*v);
    if (const Field* v = fs.find("drain")) m.drain = boolean(*v);
    if (const auto [it, inserted] = seen.emplace(m.up.text, addr->mark.line + 1); !inserted) {
      fail(addr->mark, "upstream " + quote(m.up.text) + " is listed twice (first at line " +
                           std::to_string(it->second) + ")");
    }
    out.push_back(std::move(m));
  }
  if (out.empty()) fail(f.mark, f.label + " must not be empty (add at least one host:port, or echo)");
  if (std::all_of(out.begin(), out.end(), [](const GroupMember& m) { return m.backup; })) {
    fail(f.mark, f.label + " has only backup members: at least one must be a primary");
  }
  return out;
}

// ip, header:NAME, cookie:NAME, query:NAME or claim:PATH (policy hash, session_map).
HashKey Loader::hash_key(const Field& f) const {
  static constexpr std::string_view rule = "ip, header:NAME, cookie:NAME, query:NAME or claim:PATH";
  const std::string k = scalar(f, rule);
  const auto colon = k.find(':');
  const std::string kind = k.substr(0, colon);
  const std::string name = colon == std::string::npos ? "" : k.substr(colon + 1);
  if (k == "ip") return {HashKey::From::ip, ""};
  if (kind == "header" && !name.empty()) return {HashKey::From::header, lower(name)};
  if (kind == "cookie" && !name.empty()) return {HashKey::From::cookie, name};
  if (kind == "query" && !name.empty()) return {HashKey::From::query, name};
  if (kind == "claim" && !name.empty()) return {HashKey::From::claim, name};
  fail(f.mark, f.label + " must be " + std::string(rule) + ", got " + quote(k));
}

// The settings a named group may have beyond its members.
void Loader::group_settings(const Fields& fs, UpstreamGroup& g) const {
  if (const Field* v = fs.find("policy")) {
    static constexpr std::string_view rule = "one of round_robin, least_conn, random_two, hash";
    const std::string p = scalar(*v, rule);
    if (p == "round_robin") g.policy = UpstreamGroup::Policy::round_robin;
    else if (p == "least_conn") g.policy = UpstreamGroup::Policy::least_conn;
    else if (p == "random_two") g.policy = UpstreamGroup::Policy::random_two;
    else if (p == "hash") g.policy = UpstreamGroup::Policy::hash;
    else fail(v->mark, v->label + " must be " + std::string(rule) + ", got " + quote(p));
  }
  const Field* hk = fs.find("hash_key");
  if (hk != nullptr) {
    g.hash = hash_key(*hk);
    if (g.policy != UpstreamGroup::Policy::hash) fail(hk->key_mark, "'hash_key' needs 'policy: hash'");
  }
  if (const Field* v = fs.find("retries")) {
    const auto n = parse_uint(scalar(*v, "an integer 0-10"));
    if (!n || *n > 10) fail(v->mark, v->label + " must be an integer 0-10");
    g.retries = static_cast<unsigned>(*n);
    g.retries_set = true;
  }
  if (const Field* v = fs.find("health_check")) {
    const Fields h = fields(*v, "in health_check",
                            {"type", "path", "host", "expect_status", "interval", "timeout", "rise", "fall"});
    const Field& t = require(h, "type", "in health_check");
    static constexpr std::string_view rule = "one of tcp, http, websocket";
    const std::string type = scalar(t, rule);
    if (type == "tcp") g.health.type = HealthCheck::Type::tcp;
    else if (type == "http") g.health.type = HealthCheck::Type::http;
    else if (type == "websocket") g.health.type = HealthCheck::Type::websocket;
    else fail(t.mark, t.label + " must be " + std::string(rule) + ", got " + quote(type));
    if (const Field* p = h.find("path")) {
      g.health.path = scalar(*p, "a path starting with '/'");
      if (g.health.path.empty() || g.health.path.front() != '/' ||
          g.health.path.find_first_of(" \r\n") != std::string::npos)
        fail(p->mark, p->label + " must be a path starting with '/' (no spaces)");
    }
    if (const Field* p = h.find("host")) g.health.host = scalar(*p, "a host name");
    if (const Field* p = h.find("expect_status")) {
      const auto n = parse_uint(scalar(*p, "an HTTP status 100-599"));
      if (!n || *n < 100 || *n > 599) fail(p->mark, p->label + " must be an HTTP status 100-599");
      g.health.expect_status = static_cast<unsigned>(*n);
    }
    if (const Field* p = h.find("interval")) g.health.interval = duration(*p, false);
    if (const Field* p = h.find("timeout")) g.health.timeout = duration(*p, false);
    for (auto [key, out] : {std::pair{"rise", &g.health.rise}, std::pair{"fall", &g.health.fall}}) {
      if (const Field* p = h.find(key)) {
        const auto n = parse_uint(scalar(*p, "an integer 1-100"));
        if (!n || *n < 1 || *n > 100) fail(p->mark, p->label + " must be an integer 1-100");
        *out = static_cast<unsigned>(*n);
      }
    }
    if (g.health.interval < Millis(100)) fail(v->key_mark, "'health_check.interval' must be at least 100ms");
  }
  if (const Field* v = fs.find("outlier_detection")) {
    const Fields o = fields(*v, "in outlier_detection",
                            {"consecutive_failures", "base_ejection", "max_ejection", "max_ejected_percent"});
    if (const Field* p = o.find("consecutive_failures")) {
      const auto n = parse_uint(scalar(*p, "an integer 0-1000 (0 = off)"));
      if (!n || *n > 1000) fail(p->mark, p->label + " must be an integer 0-1000 (0 = off)");
      g.outlier.consecutive_failures = static_cast<unsigned>(*n);
    }
    if (const Field* p = o.find("base_ejection")) g.outlier.base_ejection = duration(*p, false);
    if (const Field* p = o.find("max_ejection")) g.outlier.max_ejection = duration(*p, false);
    if (const Field* p = o.find("max_ejected_percent")) {
      const auto n = parse_uint(scalar(*p, "an integer 0-100"));
      if (!n || *n > 100) fail(p->mark, p->label + " must be an integer 0-100");
      g.outlier.max_ejected_percent = static_cast<unsigned>(*n);
    }
    if (g.outlier.max_ejection < g.outlier.base_ejection)
      fail(v->key_mark, "'outlier_detection.max_ejection' must not be shorter than 'base_ejection'");
  }
  if (const Field* v = fs.find("slow_start")) g.slow_start = duration(*v, true);
  if (const Field* v = fs.find("drain_timeout")) g.drain_timeout = duration(*v, true);
  const Field* sticky = fs.find("sticky");
  const Fields st = sticky ? fields(*sticky, "in sticky", {"cookie", "session_map"}) : Fields{};
  if (const Field* m = sticky ? st.find("session_map") : nullptr) {
    if (st.find("cookie") != nullptr) fail(m->key_mark, "'sticky' takes 'cookie' or 'session_map', not both");
    if (!redis_state_) fail(m->key_mark, "'session_map' needs 'state: {backend: redis}' (it lives in Redis)");
    const Fields mf = fields(*m, "in sticky.session_map", {"key", "ttl"});
    g.session_map = true;
    g.map.key = hash_key(require(mf, "key", "in sticky.session_map"));
    if (const Field* p = mf.find("ttl")) {
      g.map.ttl = duration(*p, false);
      if (g.map.ttl < Millis(1000)) fail(p->mark, p->label + " must be at least 1s");
    }
  } else if (sticky != nullptr) {
    const Field& c = require(st, "cookie", "in sticky (or 'session_map')");
    const Fields cf = fields(c, "in sticky.cookie", {"name", "key", "ttl", "path", "secure"});
    g.sticky_cookie = true;
    if (const Field* p = cf.find("name")) {
      g.cookie.name = scalar(*p, "a cookie name");
      const bool ok = !g.cookie.name.empty() && std::all_of(g.cookie.name.begin(), g.cookie.name.end(), [](char ch) {
        return std::isalnum(static_cast<unsigned char>(ch)) != 0 || ch == '_' || ch == '-' || ch == '.';
      });
      if (!ok) fail(p->mark, p->label + " must be letters, digits, '_', '-' or '.'");
    }
    const Field& k = require(cf, "key", "in sticky.cookie");
    g.cookie.key = scalar(k, "a secret (e.g. ${STICKY_KEY})");
    if (g.cookie.key.size() < 16) fail(k.mark, k.label + " must be at least 16 bytes (it signs the cookie)");
    if (const Field* p = cf.find("ttl")) g.cookie.ttl = duration(*p, true);
    if (const Field* p = cf.find("path")) {
      g.cookie.path = scalar(*p, "a path starting with '/'");
      if (g.cookie.path.empty() || g.cookie.path.front() != '/' ||
          g.cookie.path.find_first_of(" ;\r\n") != std::string::npos)
        fail(p->mark, p->label + " must be a path starting with '/' (no spaces or ';')");
    }
    if (const Field* p = cf.find("secure")) g.cookie.secure = boolean(*p);
  }
  if (const Field* v = fs.find("rebalance")) {
    const Fields r = fields(*v, "in rebalance", {"max_ratio", "max_moves_per_second", "min_age", "interval"});
    g.rebalance.enabled = true;
    if (const Field* p = r.find("max_ratio")) {
      const std::string t = scalar(*p, "a number above 1, e.g. 1.25");
      char* end = nullptr;
      const double d = std::strtod(t.c_str(), &end);
      if (end == t.c_str() || *end != '\0' || !(d > 1.0) || d > 100.0)
        fail(p->mark, p->label + " must be a number above 1 (and at most 100), e.g. 1.25");
      g.rebalance.max_ratio = d;
    }
    if (const Field* p = r.find("max_moves_per_second")) {
      const auto n = parse_uint(scalar(*p, "an integer 1-10000"));
      if (!n || *n < 1 || *n > 10'000) fail(p->mark, p->label + " must be an integer 1-10000");
      g.rebalance.max_moves_per_second = static_cast<unsigned>(*n);
    }
    if (const Field* p = r.find("min_age")) g.rebalance.min_age = duration(*p, true);
    if (const Field* p = r.find("interval")) {
      g.rebalance.interval = duration(*p, false);
      if (g.rebalance.interval < Millis(100)) fail(p->mark, p->label + " must be at least 100ms");
    }
  }
  if (const Field* v = fs.find("prewarm")) {
    const Fields p = fields(*v, "in prewarm", {"size", "path", "max_idle", "ping_interval", "timeout"});
    auto& w = g.prewarm;
    const Field& sz = require(p, "size", "in prewarm");
    const auto n = parse_uint(scalar(sz, "an integer 1-10000"));
    if (!n || *n < 1 || *n > 10'000) fail(sz.mark, sz.label + " must be an integer 1-10000 (connections per member, per worker)");
    w.size = static_cast<unsigned>(*n);
    if (const Field* f = p.find("path")) {
      w.path = scalar(*f, "a path starting with '/'");
      if (w.path.empty() || w.path.front() != '/' || w.path.find_first_of(" \r\n") != std::string::npos)
        fail(f->mark, f->label + " must be a path starting with '/' (no spaces)");
    }
    if (const Field* f = p.find("max_idle")) w.max_idle = duration(*f, false);
    if (const Field* f = p.find("ping_interval")) w.ping_interval = duration(*f, false);
    if (const Field* f = p.find("timeout")) w.timeout = duration(*f, false);
    for (const Field* f : {p.find("max_idle"), p.find("ping_interval"), p.find("timeout")})
      if (f != nullptr && duration(*f, false) < Millis(100)) fail(f->mark, f->label + " must be at least 100ms");
    if (w.timeout >= w.ping_interval)
      fail(v->key_mark, "'prewarm.timeout' must be shorter than 'prewarm.ping_interval' (one pong is awaited at a time)");
  }
}

Loader::NamedGroup Loader::upstream_group(const Field& item) const {
  if (!item.node.IsMap()) {
    fail(item.mark, item.label + " must be a mapping with 'name' and 'members', got " + describe(item.node));
  }
  const Fields fs = fields(item, "in an upstream group",
                           {"name", "members", "policy", "hash_key", "retries", "health_check",
                            "outlier_detection", "slow_start", "sticky", "drain_timeout", "rebalance",
                            "upstream_tls", "resolve_interval", "prewarm"});
  auto g = std::make_shared<UpstreamGroup>();
  g->line = item.mark.line + 1;
  g->col = item.mark.column + 1;
  const Field& n = require(fs, "name", "in an upstream group");
  g->name = scalar(n, "a name");
  if (!valid_group_name(g->name)) fail(n.mark, n.label + " must be 1-64 letters, digits, '-', '_' or '.'");
  g->members = members(require(fs, "members", "in an upstream group"));
  g->retries = static_cast<unsigned>(std::min<std::size_t>(g->members.size() - 1, 2));
  group_settings(fs, *g);
  if (const Field* v = fs.find("resolve_interval")) {
    g->resolve_interval = duration(*v, false);
    if (g->resolve_interval < Millis(100)) fail(v->mark, v->label + " must be at least 100ms");
  }
  NamedGroup out;
  if (const Field* v = fs.find("upstream_tls")) {
    if (std::none_of(g->members.begin(), g->members.end(), [](const GroupMember& m) { return m.up.tls; }))
      fail(v->key_mark, "'upstream_tls' is set but no member of this group is wss://");
    out.tls = upstream_tls(*v);
  }
  out.group = std::move(g);
  return out;
}

Loader::NamedGroups Loader::upstream_groups(const Field& f) const {
  NamedGroups out;
  std::map<std::string, int> names;
  for (const Field& item : list(f, false)) {
    NamedGroup g = upstream_group(item);
    if (const auto [it, inserted] = names.emplace(g.group->name, item.mark.line + 1); !inserted) {
      fail(item.mark, "duplicate upstream group " + quote(g.group->name) + " (first at line " +
                          std::to_string(it->second) + ")");
    }
    out.push_back(std::move(g));
  }
  return out;
}

void Loader::route_upstreams(const Fields& fs, const NamedGroups& groups, Route& r) const {
  const Field* named = fs.find("upstream_group");
  const Field* own = fs.find("upstreams");
  if (named != nullptr && own != nullptr) {
    const Field* later = named->key_mark.pos > own->key_mark.pos ? named : own;
    fail(later->key_mark, "use either 'upstreams' or 'upstream_group' in a route, not both");
  }
  if (named == nullptr && own == nullptr) fail(fs.mark, "missing required key 'upstreams' (or 'upstream_group') in route");
  const Field* tls = fs.find("upstream_tls");
  if (named != nullptr) {
    const std::string name = scalar(*named, "the name of an entry of upstream_groups");
    const auto it = std::find_if(groups.begin(), groups.end(), [&](const NamedGroup& g) { return g.group->name == name; });
    if (it == groups.end()) {
      std::string known;
      for (const auto& g : groups) known += (known.empty() ? "" : ", ") + g.group->name;
      fail(named->mark, "no upstream group named " + quote(name) +
                            (known.empty() ? " (there is no 'upstream_groups' section)" : " (known: " + known + ")"));
    }
    if (tls != nullptr) fail(tls->key_mark, "'upstream_tls' of a named group goes in the group, not in the route");
    r.group = it->group;
    if (it->tls) r.upstream_tls = *it->tls;
  } else {
    if (std::any_of(groups.begin(), groups.end(), [&](const NamedGroup& g) { return g.group->name == r.name; })) {
      fail(own->key_mark, "route " + quote(r.name) + " lists its own upstreams and an upstream group has the same name; "
                          "rename one (metrics and the admin API name both by it)");
    }
    auto g = std::make_shared<UpstreamGroup>();
    g->name = r.name;
    g->anonymous = true;
    g->line = own->mark.line + 1;
    g->col = own->mark.column + 1;
    g->members = members(*own);
    g->retries = static_cast<unsigned>(g->members.size() - 1);  // each tried once, as in order
    if (tls != nullptr) {
      if (std::none_of(g->members.begin(), g->members.end(), [](const GroupMember& m) { return m.up.tls; }))
        fail(tls->key_mark, "'upstream_tls' is set but no upstream of this route is wss://");
      r.upstream_tls = upstream_tls(*tls);
    }
    r.group = std::move(g);
  }
  r.upstreams.clear();
  for (const auto& m : r.group->members) r.upstreams.push_back(m.up);
}

}  // namespace weir::config::detail

namespace weir::config {

bool ip_literal(const std::string& host) {
  in_addr a4{};
  in6_addr a6{};
  return inet_pton(AF_INET, host.c_str(), &a4) == 1 || inet_pton(AF_INET6, host.c_str(), &a6) == 1;
}

std::map<std::string, Millis> names_to_resolve(const Config& cfg) {
  std::map<std::string, Millis> out;
  for (const auto& g : cfg.upstream_groups) {
    if (g->resolve_interval.count() == 0) continue;
    for (const auto& m : g->members) {
      if (!detail::is_name(m.up)) continue;
      auto [it, fresh] = out.emplace(m.up.host, g->resolve_interval);
      if (!fresh) it->second = std::min(it->second, g->resolve_interval);
    }
  }
  return out;
}

std::shared_ptr<const Config> with_addresses(std::shared_ptr<const Config> cfg, const ResolvedNames& names) {
  std::shared_ptr<Config> out;
  std::map<const UpstreamGroup*, std::shared_ptr<const UpstreamGroup>> moved;
  for (std::size_t i = 0; i < cfg->upstream_groups.size(); ++i) {
    const auto& g = cfg->upstream_groups[i];
    if (g->resolve_interval.count() == 0) continue;
    auto expanded = std::make_shared<UpstreamGroup>(*g);
    expanded->members.clear();
    bool any = false;
    for (const auto& m : g->members) {
      const auto it = detail::is_name(m.up) ? names.find(m.up.host) : names.end();
      if (it == names.end() || it->second.empty()) {
        expanded->members.push_back(m);
        continue;
      }
      any = true;
      for (const auto& addr : it->second) {
        GroupMember one = m;
        one.up.address = addr;
        one.up.text = m.up.text + "@" + addr;
        expanded->members.push_back(std::move(one));
      }
    }
    if (!any) continue;
    if (!expanded->retries_set)
      expanded->retries = static_cast<unsigned>(std::min<std::size_t>(expanded->members.size() - 1, 2));
    if (!out) out = std::make_shared<Config>(*cfg);
    out->upstream_groups[i] = expanded;
    moved.emplace(g.get(), std::move(expanded));
  }
  if (!out) return cfg;
  for (auto& r : out->routes) {
    const auto it = moved.find(r.group.get());
    if (it == moved.end()) continue;
    r.group = it->second;
    r.upstreams.clear();
    for (const auto& m : r.group->members) r.upstreams.push_back(m.up);
  }
  return out;
}

}  // namespace weir::config
