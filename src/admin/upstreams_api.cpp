// The admin API's upstream endpoints (docs/admin.md):
//   GET  /admin/upstreams                              every group and member, with state
//   POST /admin/upstreams/{group}/{member}/drain       {"timeout": "30s"} optional
//   POST /admin/upstreams/{group}/{member}/undrain
// A route's own upstream list is the group "route/<route name>".

#include "admin/admin_api.h"
#include "admin/responses.h"

namespace weir::admin {

namespace json = boost::json;

namespace {

json::object group_json(const upstream::Supervisor::GroupStatus& g) {
  json::array members;
  for (const auto& m : g.members) {
    json::object o{{"upstream", m.text},     {"healthy", m.healthy},   {"ejected", m.ejected},
                   {"draining", m.draining}, {"backup", m.backup},     {"sessions", m.sessions},
                   {"weight", m.weight}};
    if (!m.last_check.empty()) o["last_check_error"] = m.last_check;
    if (m.prewarm_idle >= 0) o["prewarm_idle"] = m.prewarm_idle;
    members.push_back(std::move(o));
  }
  return {{"group", g.anonymous ? "route/" + g.name : g.name},
          {"policy", g.policy},
          {"available", g.available},
          {"members", std::move(members)}};
}

// "%2F" and friends in a path segment (a member's text may hold '/' as in ws://h:1/).
std::string unescape(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    auto hex = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      return -1;
    };
    if (s[i] == '%' && i + 2 < s.size() && hex(s[i + 1]) >= 0 && hex(s[i + 2]) >= 0) {
      out += static_cast<char>(hex(s[i + 1]) * 16 + hex(s[i + 2]));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

}  // namespace

bool handle_upstreams(Gateway& g, const Request& r, Reply& reply) {
  static constexpr std::string_view kBase = "/admin/upstreams";
  if (r.path == kBase) {
    if (r.method != "GET" && r.method != "HEAD") {
      reply(method_not_allowed("GET"));
      return true;
    }
    json::array groups;
    for (const auto& gs : g.upstream_groups()) groups.push_back(group_json(gs));
    reply(json_response(200, json::object{{"groups", std::move(groups)}}));
    return true;
  }
  if (r.path.rfind(std::string(kBase) + "/", 0) != 0) return false;
  // {group}/{member}/{action}; a route group is "route/<name>" (two segments).
  std::string_view rest = std::string_view(r.path).substr(kBase.size() + 1);
  const auto last = rest.rfind('/');
  if (last == std::string_view::npos) return false;
  const std::string_view action = rest.substr(last + 1);
  rest = rest.substr(0, last);
  const auto mid = rest.rfind('/');
  if (mid == std::string_view::npos || (action != "drain" && action != "undrain")) return false;
  const std::string group = unescape(rest.substr(0, mid));
  const std::string member = unescape(rest.substr(mid + 1));
  if (r.method != "POST") {
    reply(method_not_allowed("POST"));
    return true;
  }
  std::int64_t timeout_s = 0;
  if (!r.body.empty()) {
    boost::system::error_code ec;
    const json::value v = json::parse(r.body, ec);
    if (ec || !v.is_object()) {
      reply(error(400, "the body must be empty or a JSON object {\"timeout\": \"30s\"}"));
      return true;
    }
    for (const auto& kv : v.as_object()) {
      if (kv.key() != "timeout") {
        reply(error(400, "unknown field '" + std::string(kv.key()) + "' (timeout)"));
        return true;
      }
      const auto t = ttl_seconds(kv.value());
      if (!t || *t < 0 || *t > 86400) {
        reply(error(400, "timeout must be 0 to 1 d: seconds, or a string such as \"30s\", \"5m\""));
        return true;
      }
      timeout_s = *t;
    }
  }
  const bool on = action == "drain";
  if (!g.drain_member(group, member, on, std::chrono::seconds(timeout_s))) {
    reply(error(404, "no member '" + member + "' in upstream group '" + group + "'"));
    return true;
  }
  reply(json_response(200, json::object{{"group", group}, {"upstream", member}, {"draining", on}}));
  return true;
}

}  // namespace weir::admin
