// YAML -> Config. The schema is walked by hand rather than through
// yaml-cpp's as<T>() so that every message can name the key, say what was
// expected, and point at the exact line and column (docs/configuration.md).

#include "config/config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <filesystem>
#include <initializer_list>
#include <limits>
#include <map>
#include <string_view>
#include <utility>

#include "config/detail.h"

namespace weir::config {

namespace {

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

namespace {

using namespace detail;
using Keys = std::initializer_list<std::string_view>;

// A value and where to blame it. yaml-cpp gives an empty value (`key:`) the
// mark of the next token, often on a later line, so errors about an empty
// value point at its key instead.
struct Field {
  YAML::Node node;
  YAML::Mark mark;      // where errors about the value point
  YAML::Mark key_mark;  // where errors about the key itself point
  std::string name;     // dotted path that children extend: "timeouts"
  std::string label;    // how messages refer to it: "'timeouts.idle'"
};

// The entries of a mapping, already checked for unknown and duplicate keys.
struct Fields {
  YAML::Mark mark;  // the mapping itself: a missing key is reported here
  std::vector<std::pair<std::string, Field>> entries;

  const Field* find(std::string_view key) const {
    for (const auto& [k, field] : entries) {
      if (k == key) return &field;
    }
    return nullptr;
  }
};

std::string quote(std::string_view s) { return "'" + std::string(s) + "'"; }

std::string describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Scalar:
      return quote(node.Scalar());
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a mapping";
    default:
      return "an empty value";
  }
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

std::string suggestion(std::string_view key, Keys allowed) {
  std::string_view best;
  std::size_t best_distance = std::numeric_limits<std::size_t>::max();
  for (std::string_view candidate : allowed) {
    const std::size_t distance = edit_distance(key, candidate);
    if (distance < best_distance) {
      best = candidate;
      best_distance = distance;
    }
  }
  // Close enough to be a typo of `best`, far enough from a different word.
  const std::size_t longer = std::max(key.size(), best.size());
  if (best_distance <= 2 && best_distance * 2 <= longer) {
    return " (did you mean '" + std::string(best) + "'?)";
  }
  return {};
}

std::optional<std::uint64_t> parse_uint(std::string_view s) {
  if (s.empty()) return std::nullopt;
  std::uint64_t value = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    const auto digit = static_cast<std::uint64_t>(c - '0');
    if (value > (std::numeric_limits<std::uint64_t>::max() - digit) / 10) return std::nullopt;
    value = value * 10 + digit;
  }
  return value;
}

class Loader {
 public:
  Loader(std::string source, std::string base_dir)
      : source_(std::move(source)), base_dir_(std::move(base_dir)) {}

  Config load(const std::string& yaml) const {
    try {
      return load_unchecked(yaml);
    } catch (const YAML::ParserException& e) {
      fail(e.mark, "YAML syntax error: " + e.msg);
    } catch (const YAML::Exception& e) {
      fail(e.mark, "YAML error: " + e.msg);  // not expected: the walk never converts with as<T>()
    }
  }

 private:
  Config load_unchecked(const std::string& yaml) const;

  [[noreturn]] void fail(const YAML::Mark& mark, const std::string& message) const {
    // A null mark (no position known) still yields a parsable "file:1:1:".
    const int line = mark.is_null() ? 1 : mark.line + 1;
    const int col = mark.is_null() ? 1 : mark.column + 1;
    throw ConfigError(source_, line, col, message);
  }

  static Field child(const std::string& prefix, const YAML::Node& key, const YAML::Node& value) {
    Field f;
    f.node = value;
    f.key_mark = key.Mark();
    f.mark = value.IsNull() ? key.Mark() : value.Mark();
    f.name = prefix.empty() ? key.Scalar() : prefix + "." + key.Scalar();
    f.label = quote(f.name);
    return f;
  }

  // Checks a mapping's keys against `allowed` (empty = any key) and returns
  // its entries. An empty value (`timeouts:`) is an empty mapping.
  Fields fields(const Field& f, std::string_view where, Keys allowed) const {
    Fields out;
    out.mark = f.mark;
    if (f.node.IsNull()) return out;
    if (!f.node.IsMap()) fail(f.mark, f.label + " must be a mapping, got " + describe(f.node));
    for (auto it = f.node.begin(); it != f.node.end(); ++it) {
      // Copies: the iterator hands out a temporary pair, so a reference would dangle.
      const YAML::Node key = it->first;
      const YAML::Node value = it->second;
      if (!key.IsScalar()) {
        fail(key.Mark(),
             "a key " + std::string(where) + " must be a plain word, got " + describe(key));
      }
      const std::string& k = key.Scalar();
      if (allowed.size() != 0 && std::find(allowed.begin(), allowed.end(), k) == allowed.end()) {
        fail(key.Mark(),
             "unknown key " + quote(k) + " " + std::string(where) + suggestion(k, allowed));
      }
      if (out.find(k) != nullptr) {
        fail(key.Mark(), "duplicate key " + quote(k) + " " + std::string(where));
      }
      out.entries.emplace_back(k, child(f.name, key, value));
    }
    return out;
  }

  const Field& require(const Fields& fs, std::string_view key, std::string_view where) const {
    if (const Field* f = fs.find(key)) return *f;
    fail(fs.mark, "missing required key " + quote(key) + " " + std::string(where));
  }

  // The scalar's text after `${...}` substitution. `expected` completes
  // "<label> must be ..." when the node is not a scalar.
  std::string scalar(const Field& f, std::string_view expected) const {
    if (!f.node.IsScalar()) {
      fail(f.mark, f.label + " must be " + std::string(expected) + ", got " + describe(f.node));
    }
    std::string out;
    std::string error;
    if (!substitute(f.node.Scalar(), base_dir_, out, error)) fail(f.mark, f.label + ": " + error);
    return out;
  }

  bool boolean(const Field& f) const {
    const std::string text = scalar(f, "true or false");
    if (text == "true" || text == "True" || text == "TRUE") return true;
    if (text == "false" || text == "False" || text == "FALSE") return false;
    fail(f.mark, f.label + " must be true or false, got " + quote(text));
  }

  Millis duration(const Field& f, bool zero_allowed) const {
    const std::string text = scalar(f, "a duration such as 10s");
    const auto value = parse_duration(text);
    if (!value) {
      fail(f.mark,
           "invalid duration " + quote(text) + " for " + f.label + " (use e.g. 500ms, 10s, 5m)");
    }
    if (!zero_allowed && value->count() == 0) fail(f.mark, f.label + " must be greater than 0");
    return *value;
  }

  std::uint64_t size(const Field& f, std::uint64_t min, std::uint64_t max,
                     std::string_view range) const {
    const std::string text = scalar(f, "a size such as 64KiB");
    const auto value = parse_size(text);
    if (!value) {
      fail(f.mark,
           "invalid size " + quote(text) + " for " + f.label + " (use e.g. 4096, 64KiB, 16MiB)");
    }
    if (*value < min || *value > max) {
      fail(f.mark, f.label + " must be " + std::string(range) + ", got " + quote(text));
    }
    return *value;
  }

  // A list, or (when `scalar_ok`) one scalar standing for a list of one.
  std::vector<Field> list(const Field& f, bool scalar_ok) const {
    if (scalar_ok && f.node.IsScalar()) return {f};
    if (!f.node.IsSequence()) fail(f.mark, f.label + " must be a list, got " + describe(f.node));
    std::vector<Field> items;
    for (const YAML::Node& node : f.node) {
      Field item;
      item.node = node;
      item.name = "";  // a listener's or route's keys are named on their own: 'port'
      if (node.IsNull()) {
        // A bare "-" carries the mark of the next token, often the next
        // entry's line, so blame the list and say which entry.
        item.mark = f.mark;
        item.label = "entry " + std::to_string(items.size() + 1) + " of " + f.label;
      } else {
        item.mark = node.Mark();
        item.label = "each entry of " + f.label;
      }
      item.key_mark = item.mark;
      items.push_back(std::move(item));
    }
    return items;
  }

  unsigned workers(const Field& f) const {
    static constexpr std::string_view rule = "'auto' or an integer 1-256";
    const std::string text = scalar(f, rule);
    if (text == "auto") return 0;
    const auto n = parse_uint(text);
    if (!n || *n < 1 || *n > 256) fail(f.mark, f.label + " must be " + std::string(rule));
    return static_cast<unsigned>(*n);
  }

  std::vector<Listener> listeners(const Field& f) const;
  // `in_route`: a route's partial override, which may not set what is
  // enforced before any route is chosen (see top_level_only).
  void apply_timeouts(const Field& f, Timeouts& t, bool in_route) const;
  void apply_limits(const Field& f, Limits& l, bool in_route) const;
  void top_level_only(const Fields& fs, std::string_view key, bool in_route) const;
  void apply_keepalive(const Field& f, Keepalive& k) const;
  RouteMatch match(const Field& f) const;
  // A route plus where to blame it for clashes with other routes.
  struct ParsedRoute {
    Route route;
    YAML::Mark name_mark;
    YAML::Mark match_mark;
  };
  ParsedRoute route(const Field& item, std::size_t index, const Route& defaults) const;
  std::vector<Route> routes(const Field& f, const Route& defaults) const;

  std::string source_;
  std::string base_dir_;
};

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
    const Fields fs = fields(item, "in listener", {"address", "port"});
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
             {"max_header_bytes", "max_frame_bytes", "max_message_bytes", "buffer_bytes"});
  top_level_only(fs, "max_header_bytes", in_route);
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

Loader::ParsedRoute Loader::route(const Field& item, std::size_t index,
                                  const Route& defaults) const {
  if (!item.node.IsMap()) {
    fail(item.mark,
         item.label + " must be a mapping with at least 'upstreams', got " + describe(item.node));
  }
  const Fields fs = fields(
      item, "in route",
      {"name", "match", "upstreams", "origins", "remask", "strict", "timeouts", "limits", "keepalive"});
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

  const Field& ups = require(fs, "upstreams", "in route");
  for (const Field& u : list(ups, true)) {
    const std::string text = scalar(u, "'host:port' or 'echo'");
    auto up = parse_upstream(text);
    if (!up) {
      fail(u.mark, "invalid upstream " + quote(text) + " (use host:port, [IPv6]:port or echo)");
    }
    r.upstreams.push_back(std::move(*up));
  }
  if (r.upstreams.empty()) {
    fail(ups.mark, "'upstreams' must not be empty (add at least one host:port, or echo)");
  }

  if (const Field* v = fs.find("origins")) {
    for (const Field& o : list(*v, true)) {
      // Origins compare case-insensitively (RFC 6454 serialises them lower-case).
      const std::string origin = lower(scalar(o, "a string such as https://chat.example.com"));
      if (!valid_origin(origin)) {
        fail(o.mark,
             "invalid origin " + quote(origin) +
                 " (use scheme://host[:port] with no path, e.g. https://chat.example.com, or '*')");
      }
      r.origins.push_back(origin);
    }
  }

  if (const Field* v = fs.find("remask")) r.remask = boolean(*v);
  if (const Field* v = fs.find("strict")) r.strict = boolean(*v);
  if (const Field* v = fs.find("timeouts")) apply_timeouts(*v, r.timeouts, true);
  if (const Field* v = fs.find("limits")) apply_limits(*v, r.limits, true);
  if (const Field* v = fs.find("keepalive")) apply_keepalive(*v, r.keepalive);
  return parsed;
}

std::vector<Route> Loader::routes(const Field& f, const Route& defaults) const {
  const std::vector<Field> items = list(f, false);
  if (items.empty()) fail(f.mark, f.label + " must not be empty (add at least one route)");
  std::vector<Route> out;
  std::map<std::string, int> names;                            // name -> line of its route
  std::map<std::string, std::pair<std::string, int>> matches;  // match key -> (name, line)
  for (std::size_t i = 0; i < items.size(); ++i) {
    ParsedRoute parsed = route(items[i], i, defaults);
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
  const std::vector<YAML::Node> docs = YAML::LoadAll(yaml);
  if (docs.size() > 1) {
    fail(docs[1].Mark(), "only one YAML document is allowed (found a second '---')");
  }
  if (docs.empty() || docs[0].IsNull()) {
    fail(YAML::Mark(), "the configuration is empty; it needs at least 'listeners' and 'routes'");
  }

  Field root;
  root.node = docs[0];
  root.mark = docs[0].Mark();
  root.key_mark = root.mark;
  root.label = "the configuration";
  if (!root.node.IsMap()) {
    fail(root.mark, "the configuration must be a mapping with 'listeners' and 'routes', got " +
                        describe(root.node));
  }
  const Fields fs = fields(
      root, "at top level",
      {"workers", "listeners", "timeouts", "limits", "keepalive", "shutdown", "log", "routes"});

  Config config;
  config.source = source_;
  if (const Field* v = fs.find("workers")) config.workers = workers(*v);
  config.listeners = listeners(require(fs, "listeners", "at top level"));

  // Route defaults come from the top level wherever it appears in the file,
  // so the top-level sections are read before any route.
  Route defaults;
  if (const Field* v = fs.find("timeouts")) apply_timeouts(*v, defaults.timeouts, false);
  if (const Field* v = fs.find("limits")) apply_limits(*v, defaults.limits, false);
  if (const Field* v = fs.find("keepalive")) apply_keepalive(*v, defaults.keepalive);
  if (const Field* v = fs.find("shutdown")) {
    const Fields shutdown = fields(*v, "in shutdown", {"drain"});
    if (const Field* d = shutdown.find("drain")) config.drain = duration(*d, true);
  }
  if (const Field* v = fs.find("log")) {
    const Fields log = fields(*v, "in log", {"level"});
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
  }

  config.routes = routes(require(fs, "routes", "at top level"), defaults);
  return config;
}

}  // namespace

Config load_file(const std::string& path) {
  std::string text;
  if (const int err = detail::read_text_file(path, text, detail::kMaxConfigBytes); err != 0) {
    throw ConfigError(path, 0, 0, std::string("cannot read file: ") + std::strerror(err));
  }
  // `${file:relative}` is taken from the config file's own directory, so a
  // config and its secrets can move together.
  return Loader(path, std::filesystem::path(path).parent_path().string()).load(text);
}

Config load_string(const std::string& yaml, const std::string& source_name) {
  return Loader(source_name, "").load(yaml);
}

Config demo_config(std::uint16_t port) {
  Config config;
  config.workers = 0;
  config.listeners.push_back(Listener{"127.0.0.1", port});
  Route route;
  route.name = "echo";
  route.match.path = "/";
  route.match.path_prefix = true;
  route.upstreams.push_back(*parse_upstream("echo"));
  route.keepalive.interval = Millis{30'000};
  config.routes.push_back(std::move(route));
  config.source = "<demo>";
  return config;
}

}  // namespace weir::config
