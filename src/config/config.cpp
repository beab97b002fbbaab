// YAML -> Config. The schema is walked by hand rather than through
// yaml-cpp's as<T>() so that every message can name the key, say what was
// expected, and point at the exact line and column (docs/configuration.md).

#include "config/config.h"

#include <cstring>
#include <filesystem>
#include <map>

#include "config/filter_types.h"
#include "config/loader.h"

namespace weir::config {

namespace {

std::vector<std::string_view> filter_keys() {
  std::vector<std::string_view> keys;
  for (const auto& t : filter_types()) keys.push_back(t.key);
  return keys;
}

std::string format_error(const std::string& file, int line, int col, const std::string& msg) {
  return file + ":" + std::to_string(line) + ":" + std::to_string(col) + ": " + msg;
}

}  // namespace

ConfigError::ConfigError(const std::string& file, int line, int col, const std::string& msg)
    : std::runtime_error(format_error(file, line, col, msg)),
      file(file),
      line(line),
      col(col),
      message(msg) {}

using namespace detail;

std::vector<Listener> Loader::listeners(const Field& f) const {
  const std::vector<Field> items = list(f, false);
  if (items.empty()) fail(f.mark, f.label + " must not be empty (add at least one listener)");
  std::vector<Listener> out;
  std::map<std::string, int> seen;  // "address port" -> line, to refuse a double bind
  for (const Field& item : items) {
    if (!item.node.IsMap()) {
      fail(item.mark,
           item.label + " must be a mapping with 'address' and 'port', got " + describe(item.node));
    }
    const Fields fs = fields(item, "in listener", {"address", "port", "tls", "proxy_protocol", "ip_policy"});
    Listener l;
    std::string normalized = l.address;
    if (const Field* a = fs.find("address")) {
      static constexpr std::string_view rule =
          "an IPv4 or IPv6 address literal such as 127.0.0.1, 0.0.0.0 or ::1";
      l.address = scalar(*a, rule);
      const auto ip = normalize_ip(l.address);
      if (!ip) {
        fail(a->mark, a->label + " must be " + std::string(rule) + ", got " + quote(l.address));
      }
      normalized = *ip;
    }
    const Field& p = require(fs, "port", "in listener");
    static constexpr std::string_view port_rule = "an integer 1-65535 (0 = any free port)";
    const auto port = parse_uint(scalar(p, port_rule));
    if (!port || *port > 65535) fail(p.mark, p.label + " must be " + std::string(port_rule));
    l.port = static_cast<std::uint16_t>(*port);
    if (const Field* t = fs.find("tls")) l.tls = listener_tls(*t);
    if (const Field* pp = fs.find("proxy_protocol")) {
      l.proxy_protocol = boolean(*pp);
      l.proxy_protocol_pos = {pp->key_mark.line + 1, pp->key_mark.column + 1};
    }
    if (const Field* ipp = fs.find("ip_policy")) {
      auto settings = find_filter_type("ip_policy")->parse(filter_reader(*ipp));
      settings->key = "ip_policy";
      settings->pos = pos(ipp->key_mark);
      l.ip_policy = std::move(settings);
    }

    // With SO_REUSEPORT a second bind to the same address would succeed and
    // silently split the traffic, so the duplicate is refused here.
    if (l.port != 0) {
      const std::string key = normalized + " " + std::to_string(l.port);
      const auto [it, inserted] = seen.emplace(key, item.mark.line + 1);
      if (!inserted) {
        fail(item.mark, "duplicate listener " + l.address + " port " + std::to_string(l.port) +
                            " (first at line " + std::to_string(it->second) + ")");
      }
    }
    out.push_back(std::move(l));
  }
  return out;
}

Admin Loader::admin(const Field& f) const {
  Admin a;
  a.configured = true;
  a.pos = {f.mark.line + 1, f.mark.column + 1};
  if (f.node.IsScalar()) {
    const std::string v = f.node.Scalar();
    if (v == "off" || v == "false") {
      a.enabled = false;
      return a;
    }
    fail(f.mark, f.label + " must be a mapping (address, port, token, upstream_probe_interval) or off, got " +
                     quote(v));
  }
  const Fields fs = fields(f, "in admin", {"address", "port", "token", "upstream_probe_interval"});
  std::string normalized = a.address;
  if (const Field* v = fs.find("address")) {
    static constexpr std::string_view rule = "an IPv4 or IPv6 address literal such as 127.0.0.1 or ::1";
    a.address = scalar(*v, rule);
    const auto ip = normalize_ip(a.address);
    if (!ip) fail(v->mark, v->label + " must be " + std::string(rule) + ", got " + quote(a.address));
    normalized = *ip;
  }
  if (const Field* v = fs.find("port")) {
    static constexpr std::string_view rule = "an integer 1-65535 (0 = any free port)";
    const auto port = parse_uint(scalar(*v, rule));
    if (!port || *port > 65535) fail(v->mark, v->label + " must be " + std::string(rule));
    a.port = static_cast<std::uint16_t>(*port);
  }
  if (const Field* v = fs.find("token")) {
    a.token = scalar(*v, "a string (the bearer token, e.g. ${ADMIN_TOKEN} or ${file:/run/secrets/admin})");
    if (a.token.size() < 16) fail(v->mark, v->label + " must be at least 16 characters long");
  }
  if (const Field* v = fs.find("upstream_probe_interval")) {
    a.upstream_probe_interval = duration(*v, true);
    if (a.upstream_probe_interval.count() != 0 && a.upstream_probe_interval < Millis(100)) {
      fail(v->mark, v->label + " must be 0 (off) or at least 100ms");
    }
  }
  // Without a token the admin API (which can close any connection) is only
  // for processes on this machine.
  const bool loopback = normalized == "::1" || normalized.rfind("127.", 0) == 0;
  if (a.token.empty() && !loopback) {
    const Field* v = fs.find("address");
    fail(v->mark, v->label + " is not a loopback address: set admin.token, or bind 127.0.0.1 or ::1");
  }
  return a;
}

void Loader::top_level_only(const Fields& fs, std::string_view key, bool in_route) const {
  // The request head is read, within the handshake timeout and the header
  // size limit, before its route is known: a per-route value could never
  // apply, so it is refused rather than silently ignored.
  const Field* v = fs.find(key);
  if (in_route && v != nullptr) {
    fail(v->key_mark, v->label + " cannot be set per route (the request is read before a route " +
                          "is chosen); set it in the top-level '" +
                          v->name.substr(0, v->name.find('.')) + "'");
  }
}

void Loader::apply_timeouts(const Field& f, Timeouts& t, bool in_route) const {
  const Fields fs =
      fields(f, "in " + f.name,
             {"handshake", "connect", "upstream_handshake", "idle", "max_lifetime", "close"});
  top_level_only(fs, "handshake", in_route);
  if (const Field* v = fs.find("handshake")) t.handshake = duration(*v, false);
  if (const Field* v = fs.find("connect")) t.connect = duration(*v, false);
  if (const Field* v = fs.find("upstream_handshake")) t.upstream_handshake = duration(*v, false);
  if (const Field* v = fs.find("idle")) t.idle = duration(*v, true);
  if (const Field* v = fs.find("max_lifetime")) t.max_lifetime = duration(*v, true);
  if (const Field* v = fs.find("close")) t.close = duration(*v, false);
}

void Loader::apply_limits(const Field& f, Limits& l, bool in_route) const {
  const Fields fs =
      fields(f, "in " + f.name,
             {"max_header_bytes", "max_frame_bytes", "max_message_bytes", "buffer_bytes",
              "max_pending_handshakes_per_ip"});
  top_level_only(fs, "max_header_bytes", in_route);
  top_level_only(fs, "max_pending_handshakes_per_ip", in_route);
  if (const Field* v = fs.find("max_pending_handshakes_per_ip")) {
    static constexpr std::string_view rule = "an integer 0-1000000 (0 = no limit)";
    const auto n = parse_uint(scalar(*v, rule));
    if (!n || *n > 1'000'000) fail(v->mark, v->label + " must be " + std::string(rule));
    l.max_pending_handshakes_per_ip = static_cast<std::uint32_t>(*n);
  }
  constexpr std::uint64_t unbounded = std::numeric_limits<std::uint64_t>::max();
  if (const Field* v = fs.find("max_header_bytes")) {
    l.max_header_bytes =
        static_cast<std::uint32_t>(size(*v, 256, 1u << 20, "between 256 B and 1 MiB"));
  }
  // 125 bytes is the largest control frame, which must always get through.
  if (const Field* v = fs.find("max_frame_bytes")) {
    l.max_frame_bytes = size(*v, 125, unbounded, "at least 125 B (the largest control frame)");
  }
  if (const Field* v = fs.find("max_message_bytes")) {
    l.max_message_bytes = size(*v, 125, unbounded, "at least 125 B (the largest control frame)");
  }
  if (const Field* v = fs.find("buffer_bytes")) {
    l.buffer_bytes =
        static_cast<std::uint32_t>(size(*v, 4u << 10, 16u << 20, "between 4 KiB and 16 MiB"));
  }
}

void Loader::apply_keepalive(const Field& f, Keepalive& k) const {
  const Fields fs = fields(f, "in " + f.name, {"interval", "timeout"});
  if (const Field* v = fs.find("interval")) k.interval = duration(*v, true);
  if (const Field* v = fs.find("timeout")) k.timeout = duration(*v, false);
}

void Loader::apply_compression(const Field& f, ws::DeflateSettings& c) const {
  const Fields fs = fields(f, "in " + f.name,
                           {"enabled", "window_bits", "peer_window_bits", "memory_level", "level", "context_takeover"});
  const auto number = [&](const char* key, int min, int max, std::string_view rule, int& out) {
    const Field* v = fs.find(key);
    if (v == nullptr) return;
    const auto n = parse_uint(scalar(*v, rule));
    if (!n || *n < static_cast<std::uint64_t>(min) || *n > static_cast<std::uint64_t>(max))
      fail(v->mark, v->label + " must be " + std::string(rule) + ", got " + quote(scalar(*v, rule)));
    out = static_cast<int>(*n);
  };
  if (const Field* v = fs.find("enabled")) c.enabled = boolean(*v);
  // zlib's deflate cannot keep to an 8-bit window (it uses 9): 8 is refused.
  number("window_bits", 9, 15, "an integer 9-15 (zlib cannot compress with an 8-bit window)", c.window_bits);
  number("peer_window_bits", 9, 15, "an integer 9-15", c.peer_window_bits);
  number("memory_level", 1, 9, "an integer 1-9", c.memory_level);
  number("level", 1, 9, "an integer 1-9", c.level);
  if (const Field* v = fs.find("context_takeover")) c.context_takeover = boolean(*v);
}

RouteMatch Loader::match(const Field& f) const {
  const Fields fs = fields(f, "in match", {"host", "path", "path_prefix", "headers"});
  RouteMatch m;
  if (const Field* v = fs.find("host")) {
    static constexpr std::string_view rule =
        "a host name such as chat.example.com or *.example.com (no port)";
    const std::string host = lower(scalar(*v, rule));
    if (host != "*" && !valid_match_host(host)) {
      fail(v->mark, v->label + " must be " + std::string(rule) + ", got " + quote(host));
    }
    m.host = host == "*" ? "" : host;
  }

  const Field* exact = fs.find("path");
  const Field* prefix = fs.find("path_prefix");
  if (exact != nullptr && prefix != nullptr) {
    const Field* later = exact->key_mark.pos > prefix->key_mark.pos ? exact : prefix;
    fail(later->key_mark, "use either 'match.path' or 'match.path_prefix', not both");
  }
  if (const Field* v = exact != nullptr ? exact : prefix) {
    const std::string path = scalar(*v, "a path starting with '/'");
    if (path.empty() || path.front() != '/') {
      fail(v->mark, v->label + " must start with '/', got " + quote(path));
    }
    // The query and fragment are not part of the matched path, so a route
    // containing them could never match.
    if (path.find_first_of("?#") != std::string::npos) {
      fail(v->mark, v->label + " must not contain '?' or '#' (only the path is matched), got " +
                        quote(path));
    }
    if (std::any_of(path.begin(), path.end(),
                    [](unsigned char c) { return c <= ' ' || c == 0x7f; })) {
      fail(v->mark, v->label + " must not contain spaces or control characters");
    }
    m.path = path;
    m.path_prefix = v == prefix;
  }

  if (const Field* h = fs.find("headers")) {
    const Fields headers = fields(*h, "in match.headers", {});
    for (const auto& [raw_name, value] : headers.entries) {
      if (!valid_header_name(raw_name)) {
        fail(value.key_mark, "invalid header name " + quote(raw_name) + " in match.headers");
      }
      const std::string name = lower(raw_name);
      const bool repeated = std::any_of(m.headers.begin(), m.headers.end(),
                                        [&](const HeaderMatch& hm) { return hm.name == name; });
      if (repeated) {
        fail(value.key_mark,
             "header " + quote(raw_name) + " appears twice in match.headers (names ignore case)");
      }
      m.headers.push_back({name, scalar(value, "a string (the exact header value)")});
    }
  }
  return m;
}

Loader::ParsedRoute Loader::route(const Field& item, std::size_t index, const Route& defaults,
                                  const NamedGroups& groups) const {
  if (!item.node.IsMap()) {
    fail(item.mark,
         item.label + " must be a mapping with at least 'upstreams', got " + describe(item.node));
  }
  const Fields fs = fields(
      item, "in route",
      {"name", "match", "upstreams", "upstream_group", "upstream_tls", "remask", "strict", "timeouts",
       "limits", "keepalive", "compression", "generic_upstream_handshake", "rebalance_sticky"},
      filter_keys());
  ParsedRoute parsed{defaults, item.mark, item.mark};
  Route& r = parsed.route;

  if (const Field* v = fs.find("name")) {
    parsed.name_mark = v->mark;
    r.name = scalar(*v, "a string");
    if (!valid_route_name(r.name)) {
      fail(v->mark,
           v->label + " must be 1-64 letters, digits, '-', '_' or '.', got " + quote(r.name));
    }
  } else {
    r.name = "route" + std::to_string(index + 1);
  }

  if (const Field* v = fs.find("match")) {
    parsed.match_mark = v->key_mark;
    r.match = match(*v);
  }

  route_upstreams(fs, groups, r);

  // Filters, in chain order (FilterType::order, then as written).
  for (const auto& [k, field] : fs.entries) {
    const FilterType* type = find_filter_type(k);
    if (type == nullptr) continue;
    std::shared_ptr<FilterSettings> settings =
        type->parse(filter_reader(field));
    settings->key = k;
    settings->pos = pos(field.key_mark);
    r.filters.push_back(std::move(settings));
  }
  std::stable_sort(r.filters.begin(), r.filters.end(), [](const auto& a, const auto& b) {
    return find_filter_type(a->key)->order < find_filter_type(b->key)->order;
  });
  for (const auto& f : r.filters) {
    std::string_view need = f->needs();
    if (need.empty()) continue;
    bool have = false;
    std::string names;
    while (!need.empty()) {
      const auto bar = need.find('|');
      const std::string one(need.substr(0, bar));
      need = bar == std::string_view::npos ? std::string_view() : need.substr(bar + 1);
      have = have || fs.find(one) != nullptr;
      names += (names.empty() ? "'" : need.empty() ? " or '" : ", '") + one + "'";
    }
    if (!have) fail(fs.find(f->key)->key_mark, "'" + f->key + "' needs " + names + " on the same route");
  }

  if (const Field* v = fs.find("remask")) r.remask = boolean(*v);
  if (const Field* v = fs.find("strict")) r.strict = boolean(*v);
  if (const Field* v = fs.find("rebalance_sticky")) {
    r.rebalance_sticky = boolean(*v);
    if (r.rebalance_sticky && !(r.group->rebalance.enabled && (r.group->sticky_cookie || r.group->session_map)))
      fail(v->key_mark, "'rebalance_sticky' needs an upstream group with both 'rebalance' and 'sticky'");
  }
  if (const Field* v = fs.find("generic_upstream_handshake")) {
    r.generic_upstream_handshake = boolean(*v);
    // Without a pool the flag would do nothing: most likely a mistake.
    if (r.generic_upstream_handshake && r.group->prewarm.size == 0)
      fail(v->key_mark, "'generic_upstream_handshake' needs an upstream group with 'prewarm' (route " +
                            quote(r.name) + " uses " + (r.group->anonymous ? "its own 'upstreams'" : "group " + quote(r.group->name)) + ")");
  }
  if (const Field* v = fs.find("timeouts")) apply_timeouts(*v, r.timeouts, true);
  if (const Field* v = fs.find("limits")) apply_limits(*v, r.limits, true);
  if (const Field* v = fs.find("keepalive")) apply_keepalive(*v, r.keepalive);
  if (const Field* v = fs.find("compression")) apply_compression(*v, r.compression);
  return parsed;
}

std::vector<Route> Loader::routes(const Field& f, const Route& defaults, const NamedGroups& groups) const {
  const std::vector<Field> items = list(f, false);
  if (items.empty()) fail(f.mark, f.label + " must not be empty (add at least one route)");
  std::vector<Route> out;
  std::map<std::string, int> names;                            // name -> line of its route
  std::map<std::string, std::pair<std::string, int>> matches;  // match key -> (name, line)
  for (std::size_t i = 0; i < items.size(); ++i) {
    ParsedRoute parsed = route(items[i], i, defaults, groups);
    const Route& r = parsed.route;
    const int line = items[i].mark.line + 1;
    if (const auto [it, inserted] = names.emplace(r.name, line); !inserted) {
      fail(parsed.name_mark, "duplicate route name " + quote(r.name) + " (first at line " +
                                 std::to_string(it->second) + ")");
    }

    // Two routes that match exactly the same requests make the second one
    // dead (or the choice arbitrary): almost surely a copy-paste slip.
    std::string key =
        r.match.host + '\n' + (r.match.path_prefix ? "prefix " : "exact ") + r.match.path;
    std::vector<std::string> headers;
    for (const auto& h : r.match.headers) headers.push_back(h.name + ": " + h.value);
    std::sort(headers.begin(), headers.end());
    for (const auto& h : headers) key += '\n' + h;
    if (const auto [it, inserted] = matches.emplace(key, std::pair{r.name, line}); !inserted) {
      fail(parsed.match_mark,
           "route " + quote(r.name) + " matches exactly the same requests as route " +
               quote(it->second.first) + " (line " + std::to_string(it->second.second) +
               "); remove one or make the matches differ");
    }
    out.push_back(std::move(parsed.route));
  }
  return out;
}

Config Loader::load_unchecked(const std::string& yaml) const {
  if (const auto at = detail::find_unsafe_comma(yaml)) {
    throw ConfigError(source_, at->first, at->second,
                      "unexpected ',' outside a [ ] or { } list (quote the value if the comma is part of it)");
  }
  const FirstDocument doc = load_first_document(yaml);
  if (doc.second) {
    fail(*doc.second, doc.second_is_marker
                          ? "only one YAML document is allowed (found a second '---')"
                          : "YAML syntax error: unexpected text after the end of the document");
  }
  if (!doc.root || doc.root.IsNull()) {
    fail(YAML::Mark(), "the configuration is empty; it needs at least 'listeners' and 'routes'");
  }

  Field root;
  root.node = doc.root;
  root.mark = doc.root.Mark();
  root.key_mark = root.mark;
  root.label = "the configuration";
  if (!root.node.IsMap()) {
    fail(root.mark, "the configuration must be a mapping with 'listeners' and 'routes', got " +
                        describe(root.node));
  }
  const Fields fs = fields(
      root, "at top level",
      {"workers", "listeners", "timeouts", "limits", "keepalive", "compression", "shutdown", "reload", "log", "admin",
       "state", "resolver", "trusted_proxies", "upstream_groups", "routes"});

  Config config;
  config.source = source_;
  if (const Field* v = fs.find("workers")) config.workers = workers(*v);
  config.listeners = listeners(require(fs, "listeners", "at top level"));
  if (const Field* v = fs.find("admin")) config.admin = admin(*v);
  if (const Field* v = fs.find("state")) config.state = shared_state(*v);
  redis_state_ = config.state.backend == SharedState::Backend::redis;
  if (const Field* v = fs.find("resolver")) config.resolver = resolver(*v);
  if (const Field* v = fs.find("trusted_proxies")) {
    for (const Field& item : list(*v, true)) {
      const std::string text = scalar(item, "a CIDR block such as 10.0.0.0/8, or an address");
      std::string why;
      auto c = net::parse_cidr(text, &why);
      if (!c) fail(item.mark, item.label + ": " + why + ", got " + quote(text));
      config.trusted_proxies.push_back(std::move(*c));
    }
  }
  for (const auto& l : config.listeners) {
    if (l.proxy_protocol && config.trusted_proxies.empty()) {
      throw ConfigError(source_, l.proxy_protocol_pos.line, l.proxy_protocol_pos.col,
                        "proxy_protocol needs trusted_proxies (the peers whose PROXY header is believed)");
    }
  }

  // Route defaults come from the top level wherever it appears in the file,
  // so the top-level sections are read before any route.
  Route defaults;
  if (const Field* v = fs.find("timeouts")) apply_timeouts(*v, defaults.timeouts, false);
  if (const Field* v = fs.find("limits")) apply_limits(*v, defaults.limits, false);
  if (const Field* v = fs.find("keepalive")) apply_keepalive(*v, defaults.keepalive);
  if (const Field* v = fs.find("compression")) apply_compression(*v, defaults.compression);
  if (const Field* v = fs.find("shutdown")) {
    const Fields shutdown = fields(*v, "in shutdown", {"drain"});
    if (const Field* d = shutdown.find("drain")) config.drain = duration(*d, true);
  }
  config.handshake_timeout = defaults.timeouts.handshake;
  config.max_header_bytes = defaults.limits.max_header_bytes;
  config.max_pending_handshakes_per_ip = defaults.limits.max_pending_handshakes_per_ip;
  if (const Field* v = fs.find("reload")) {
    const Fields reload = fields(*v, "in reload", {"removed_route_grace"});
    if (const Field* g = reload.find("removed_route_grace")) config.removed_route_grace = duration(*g, true);
  }
  if (const Field* v = fs.find("log")) {
    const Fields log = fields(*v, "in log", {"level", "output"});
    if (const Field* l = log.find("level")) {
      static constexpr std::string_view rule = "one of debug, info, warn, error";
      config.log_level = scalar(*l, rule);
      const bool known = config.log_level == "debug" || config.log_level == "info" ||
                         config.log_level == "warn" || config.log_level == "error";
      if (!known) {
        fail(l->mark,
             l->label + " must be " + std::string(rule) + ", got " + quote(config.log_level));
      }
    }
    if (const Field* o = log.find("output")) {
      // "stdout" after substitution, so `${LOG_OUTPUT:-stdout}` works.
      if (scalar(*o, "stdout or a file path") == "stdout") config.log_output = "stdout";
      else config.log_output = file(*o).path;
    }
  }

  NamedGroups groups;
  if (const Field* v = fs.find("upstream_groups")) groups = upstream_groups(*v);
  for (const auto& g : groups) config.upstream_groups.push_back(g.group);
  config.routes = routes(require(fs, "routes", "at top level"), defaults, groups);
  return config;
}


Config load_file(const std::string& path) {
  std::string text;
  if (const int err = detail::read_text_file(path, text, detail::kMaxConfigBytes); err != 0) {
    throw ConfigError(path, 0, 0, std::string("cannot read file: ") + std::strerror(err));
  }
  // `${file:relative}` is taken from the config file's own directory, so a
  // config and its secrets can move together.
  Config c = Loader(path, std::filesystem::path(path).parent_path().string()).load(text);
  c.path = path;
  return c;
}

Config load_string(const std::string& yaml, const std::string& source_name) {
  return Loader(source_name, "").load(yaml);
}

Config demo_config(std::uint16_t port) {
  Config config;
  config.workers = 0;
  Listener listener;
  listener.address = "127.0.0.1";
  listener.port = port;
  config.listeners.push_back(std::move(listener));
  Route route;
  route.name = "echo";
  route.match.path = "/";
  route.match.path_prefix = true;
  auto group = std::make_shared<UpstreamGroup>();
  group->name = "echo";
  group->anonymous = true;
  group->members.push_back({*parse_upstream("echo")});
  route.group = group;
  route.upstreams.push_back(group->members.front().up);
  route.keepalive.interval = Millis{30'000};
  config.routes.push_back(std::move(route));
  config.source = "<demo>";
  return config;
}

}  // namespace weir::config
