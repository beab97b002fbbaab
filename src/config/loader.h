#pragma once
// Internal to src/config: the YAML schema walker shared by the loader's
// files (config.cpp: listeners, routes, top level; tls.cpp: TLS sections).
// Includes yaml-cpp, so only src/config includes it.

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/config.h"
#include "config/detail.h"
#include "config/filter_reader.h"

namespace weir::config::detail {


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

inline std::string quote(std::string_view s) { return "'" + std::string(s) + "'"; }

inline std::string describe(const YAML::Node& node) {
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

inline std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

inline std::string suggestion(std::string_view key, Keys allowed,
                              const std::vector<std::string_view>& extra = {}) {
  std::string_view best;
  std::size_t best_distance = std::numeric_limits<std::size_t>::max();
  std::vector<std::string_view> all(allowed.begin(), allowed.end());
  all.insert(all.end(), extra.begin(), extra.end());
  for (std::string_view candidate : all) {
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

inline std::optional<std::uint64_t> parse_uint(std::string_view s) {
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

// The first YAML document of `yaml`, and where a second one starts if there
// is one. Replaces YAML::LoadAll, which in yaml-cpp 0.7 can loop forever
// (collecting empty documents until memory runs out) when its parser stops
// advancing on malformed input: this asks the parser for two documents at
// most, so it always ends. `second_is_marker` says whether the second
// document begins with a '---' or '...' line (a real second document) or
// somewhere else (text the parser could not place in the first one).
struct FirstDocument {
  YAML::Node root;
  std::optional<YAML::Mark> second;
  bool second_is_marker = false;
};
FirstDocument load_first_document(const std::string& yaml);

class Loader {
  friend class weir::config::FilterReader;

 public:
  Loader(std::string source, std::string base_dir)
      : source_(std::move(source)), base_dir_(std::move(base_dir)) {}
  const std::string& base_dir() const { return base_dir_; }

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
  // `extra`: more allowed keys (a route's filter keys).
  Fields fields(const Field& f, std::string_view where, Keys allowed,
                const std::vector<std::string_view>& extra = {}) const {
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
      if (allowed.size() != 0 && std::find(allowed.begin(), allowed.end(), k) == allowed.end() &&
          std::find(extra.begin(), extra.end(), k) == extra.end()) {
        fail(key.Mark(),
             "unknown key " + quote(k) + " " + std::string(where) + suggestion(k, allowed, extra));
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
  Admin admin(const Field& f) const;
  SharedState shared_state(const Field& f) const;  // state_config.cpp
  // filter_reader.cpp: a filter type's view of its value.
  FilterReader filter_reader(const Field& f) const;
  // tls.cpp
  ListenerTls listener_tls(const Field& f) const;
  UpstreamTls upstream_tls(const Field& f) const;
  FileRef file(const Field& f) const;
  static SourcePos pos(const YAML::Mark& m) { return {m.line + 1, m.column + 1}; }
  // `in_route`: a route's partial override, which may not set what is
  // enforced before any route is chosen (see top_level_only).
  void apply_timeouts(const Field& f, Timeouts& t, bool in_route) const;
  void apply_limits(const Field& f, Limits& l, bool in_route) const;
  void top_level_only(const Fields& fs, std::string_view key, bool in_route) const;
  void apply_keepalive(const Field& f, Keepalive& k) const;
  void apply_compression(const Field& f, ws::DeflateSettings& c) const;
  RouteMatch match(const Field& f) const;
  // A route plus where to blame it for clashes with other routes.
  struct ParsedRoute {
    Route route;
    YAML::Mark name_mark;
    YAML::Mark match_mark;
  };
  // upstream_groups.cpp: the named groups, and a group's settings and
  // members (a route's own `upstreams:` list is an anonymous group).
  struct NamedGroup {
    std::shared_ptr<const UpstreamGroup> group;
    std::optional<UpstreamTls> tls;  // the group's upstream_tls, applied to the routes using it
  };
  using NamedGroups = std::vector<NamedGroup>;
  NamedGroups upstream_groups(const Field& f) const;
  NamedGroup upstream_group(const Field& item) const;
  std::vector<GroupMember> members(const Field& f) const;
  void group_settings(const Fields& fs, UpstreamGroup& g) const;
  HashKey hash_key(const Field& f) const;
  Resolver resolver(const Field& f) const;
  // A route's `upstream_group` or `upstreams` (exactly one), into r.group and r.upstreams.
  void route_upstreams(const Fields& fs, const NamedGroups& groups, Route& r) const;
  ParsedRoute route(const Field& item, std::size_t index, const Route& defaults, const NamedGroups& groups) const;
  std::vector<Route> routes(const Field& f, const Route& defaults, const NamedGroups& groups) const;

  std::string source_;
  std::string base_dir_;
  // state.backend is redis (read before the upstream groups, whose
  // sticky.session_map needs it).
  mutable bool redis_state_ = false;
};

}  // namespace weir::config::detail
