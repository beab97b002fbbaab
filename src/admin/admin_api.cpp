#include "admin/admin_api.h"
#include "admin/responses.h"

#include <boost/json.hpp>
#include <openssl/crypto.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <optional>
#include <map>
#include <memory>

#include "admin/dashboard_assets.h"
#include "core/clock.h"
#include "observability/log.h"
#include "observability/metrics.h"
#include "state/revocations.h"
#include "state/shared_counters.h"
#include "ws/frame.h"

namespace weir::admin {

namespace json = boost::json;

namespace {

constexpr const char* kDirections[] = {"client_to_upstream", "upstream_to_client"};



std::string label(const obs::Labels& labels, std::string_view key) {
  for (const auto& [k, v] : labels)
    if (k == key) return v;
  return {};
}

// Sums a registry family by one label (or all of it, with key "").
std::map<std::string, double> by_label(std::string_view family, std::string_view key,
                                       const std::function<bool(const obs::Labels&)>& keep = {}) {
  std::map<std::string, double> out;
  for (const auto& [labels, v] : obs::Registry::global().family(family)) {
    if (keep && !keep(labels)) continue;
    out[key.empty() ? std::string() : label(labels, key)] += v;
  }
  return out;
}

json::object directions(std::string_view family, const std::string& route) {
  json::object o;
  for (const char* d : kDirections) o[d] = 0;
  for (const auto& [labels, v] : obs::Registry::global().family(family)) {
    if (!route.empty() && label(labels, "route") != route) continue;
    o[label(labels, "direction")] = o[label(labels, "direction")].to_number<double>() + v;
  }
  for (auto& kv : o) kv.value() = static_cast<std::uint64_t>(kv.value().to_number<double>());
  return o;
}

std::uint64_t total(std::string_view family) {
  double t = 0;
  for (const auto& [labels, v] : obs::Registry::global().family(family)) t += v;
  return static_cast<std::uint64_t>(t);
}

json::value stats(const Gateway& g) {
  const auto cfg = g.config();
  json::object s;
  s["version"] = WEIR_VERSION;
  s["uptime_seconds"] = g.uptime_seconds();
  s["generation"] = g.generation();
  s["draining"] = g.draining();
  s["workers"] = g.worker_count();
  s["connections"] = json::object{{"active", total("weir_connections_active")},
                                  {"open", g.open_sessions()},
                                  {"accepted_total", total("weir_connections_accepted_total")}};
  json::object failed;
  for (const auto& [reason, v] : by_label("weir_handshakes_failed_total", "reason"))
    failed[reason] = static_cast<std::uint64_t>(v);
  s["handshakes"] = json::object{{"upgraded_total", total("weir_handshakes_total")},
                                 {"failed_total", total("weir_handshakes_failed_total")},
                                 {"failed_by_reason", std::move(failed)}};
  s["messages"] = directions("weir_messages_total", "");
  s["bytes"] = directions("weir_bytes_total", "");
  json::object codes;
  for (const auto& [code, v] :
       by_label("weir_close_frames_total", "code", [](const obs::Labels& l) { return label(l, "event") == "sent"; }))
    codes[code] = static_cast<std::uint64_t>(v);
  s["close_codes"] = std::move(codes);

  const auto health = g.upstream_health();
  const auto active = by_label("weir_connections_active", "route");
  json::array routes;
  for (const auto& r : cfg->routes) {
    json::object ro;
    ro["name"] = r.name;
    auto it = active.find(r.name);
    ro["active"] = static_cast<std::int64_t>(it == active.end() ? 0 : it->second);
    ro["messages"] = directions("weir_messages_total", r.name);
    ro["bytes"] = directions("weir_bytes_total", r.name);
    const auto in_route = [&r](const obs::Labels& l) { return label(l, "route") == r.name; };
    const auto up_active = by_label("weir_upstream_active_connections", "upstream", in_route);
    const auto up_fail = by_label("weir_upstream_connect_failures_total", "upstream", in_route);
    json::array ups;
    for (const auto& u : r.upstreams) {
      bool healthy = true;
      for (const auto& h : health)
        if (h.upstream == u.text) healthy = h.healthy;
      const auto a = up_active.find(u.text);
      const auto f = up_fail.find(u.text);
      ups.push_back(json::object{{"address", u.text},
                                 {"healthy", healthy},
                                 {"active", static_cast<std::int64_t>(a == up_active.end() ? 0 : a->second)},
                                 {"connect_failures_total", static_cast<std::uint64_t>(f == up_fail.end() ? 0 : f->second)}});
    }
    ro["upstreams"] = std::move(ups);
    routes.push_back(std::move(ro));
  }
  s["routes"] = std::move(routes);
  return s;
}

json::object describe(const core::SessionInfo& i) {
  json::object o;
  o["id"] = i.id;
  o["client"] = i.client;
  o["route"] = i.route;
  o["upstream"] = i.upstream;
  o["age_seconds"] = static_cast<double>(i.age_ms) / 1000.0;
  o["state"] = i.state;
  o["user"] = i.user.empty() ? json::value(nullptr) : json::value(i.user);
  o["token_id"] = i.token_id.empty() ? json::value(nullptr) : json::value(i.token_id);
  o["trace_id"] = i.trace_id.empty() ? json::value(nullptr) : json::value(i.trace_id);
  o["bytes_in"] = i.bytes_in;
  o["bytes_out"] = i.bytes_out;
  o["messages_in"] = i.messages_in;
  o["messages_out"] = i.messages_out;
  return o;
}

bool parse_count(const std::string& s, std::size_t& out) {
  const auto digit = [](unsigned char c) { return c >= '0' && c <= '9'; };
  if (s.empty() || s.size() > 9 || !std::all_of(s.begin(), s.end(), digit)) return false;
  out = std::stoul(s);
  return true;
}

void list_connections(Gateway& g, const Request& r, Reply reply) {
  std::size_t offset = 0, limit = 100;
  const std::string o = query_param(r.query, "offset"), l = query_param(r.query, "limit");
  if ((!o.empty() && !parse_count(o, offset)) || (!l.empty() && !parse_count(l, limit))) {
    reply(error(400, "offset and limit must be non-negative integers"));
    return;
  }
  limit = std::min<std::size_t>(limit, 1000);
  if (offset > 100'000) {
    reply(error(400, "offset must be at most 100000"));
    return;
  }
  g.sessions(offset + limit, [reply, offset, limit](Gateway::SessionPage page) {
    auto& all = page.sessions;
    std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
    json::array list;
    for (std::size_t i = offset; i < all.size() && list.size() < limit; ++i) list.push_back(describe(all[i]));
    json::object o{{"total", page.total}, {"offset", offset}, {"limit", limit}, {"connections", std::move(list)}};
    if (!page.stalled.empty()) {
      // A worker that does not answer is a bug worth showing, not hiding.
      json::array ids;
      for (unsigned i : page.stalled) ids.push_back(i);
      o["workers_stalled"] = std::move(ids);
      reply(json_response(503, o));
      return;
    }
    reply(json_response(200, o));
  });
}

// POST /admin/connections/{id}/close
void close_connection(Gateway& g, const std::string& id_text, const Request& r, Reply reply) {
  std::uint64_t sid = 0;
  const auto [end, ec] = std::from_chars(id_text.data(), id_text.data() + id_text.size(), sid);
  if (id_text.empty() || ec != std::errc() || end != id_text.data() + id_text.size()) {
    reply(error(404, "no such connection"));
    return;
  }
  std::uint16_t code = ws::close_code::normal;
  std::string reason = "closed by admin";
  if (!r.body.empty()) {
    boost::system::error_code ec;
    const json::value v = json::parse(r.body, ec);
    if (ec || !v.is_object()) {
      reply(error(400, "the body must be a JSON object {\"code\": 1000, \"reason\": \"...\"}"));
      return;
    }
    const auto& ob = v.as_object();
    if (const auto* c = ob.if_contains("code")) {
      const bool ok = c->is_int64() && c->as_int64() >= 1000 && c->as_int64() <= 4999 &&
                      ws::is_valid_wire_close_code(static_cast<std::uint16_t>(c->as_int64()));
      if (!ok) {
        reply(error(400, "code must be a Close code Weir may send (1000-1003, 1007-1014, 3000-4999)"));
        return;
      }
      code = static_cast<std::uint16_t>(c->as_int64());
    }
    if (const auto* re = ob.if_contains("reason")) {
      if (!re->is_string() || re->as_string().size() > 123) {
        reply(error(400, "reason must be a string of at most 123 bytes"));
        return;
      }
      reason = std::string(re->as_string());
    }
  }
  g.close_session(sid, code, reason, [reply, sid](bool found) {
    if (!found) {
      reply(error(404, "no such connection"));
      return;
    }
    reply(json_response(202, json::object{{"id", sid}, {"closing", true}}));
  });
}

json::array revocation_list() {
  json::array a;
  const std::int64_t now = core::wall_now_ms();
  for (const auto& e : state::Revocations::global().list(now)) {
    a.push_back(json::object{{e.kind == state::Revocations::Kind::subject ? "sub" : "jti", e.value},
                             {"expires_in_seconds", (e.until_ms - now + 999) / 1000}});
  }
  return a;
}


// POST /admin/revoke {"sub": "...", "jti": "...", "ttl": "1h"}: new handshakes
// with such a token get 401, live sessions get Close 1008 "token revoked".
void revoke(Gateway& g, const Request& r, Reply reply) {
  constexpr std::int64_t kMaxTtl = 30 * 86400;
  boost::system::error_code ec;
  const json::value v = json::parse(r.body, ec);
  if (ec || !v.is_object()) {
    return reply(error(400, "the body must be a JSON object {\"sub\": \"...\"} or {\"jti\": \"...\"}, "
                            "with an optional \"ttl\" (default 1h)"));
  }
  const auto& o = v.as_object();
  for (const auto& kv : o)
    if (kv.key() != "sub" && kv.key() != "jti" && kv.key() != "ttl")
      return reply(error(400, "unknown field '" + std::string(kv.key()) + "' (sub, jti, ttl)"));
  std::string sub, jti;
  for (auto [name, out] : {std::pair{"sub", &sub}, std::pair{"jti", &jti}}) {
    if (const auto* f = o.if_contains(name)) {
      if (!f->is_string() || f->as_string().empty() || f->as_string().size() > 1024)
        return reply(error(400, std::string(name) + " must be a non-empty string of at most 1024 bytes"));
      *out = std::string(f->as_string());
    }
  }
  if (sub.empty() && jti.empty()) return reply(error(400, "name a sub or a jti to revoke"));
  std::int64_t ttl = 3600;
  if (const auto* t = o.if_contains("ttl")) {
    const auto s = ttl_seconds(*t);
    if (!s || *s <= 0 || *s > kMaxTtl)
      return reply(error(400, "ttl must be from 1 s to 30 d: seconds, or a string such as \"15m\", \"1h\", \"7d\""));
    ttl = *s;
  }
  auto& store = state::Revocations::global();
  const std::int64_t now = core::wall_now_ms();
  if ((!sub.empty() && !store.add(state::Revocations::Kind::subject, sub, now + ttl * 1000, now)) ||
      (!jti.empty() && !store.add(state::Revocations::Kind::token_id, jti, now + ttl * 1000, now))) {
    return reply(error(503, "too many revocations in force"));
  }
  // With Redis, every instance learns it (within about 200 ms, or when it
  // or Redis is back) and closes its own matching sessions.
  auto* shared = state::SharedCounters::get();
  if (shared != nullptr) {
    if (!sub.empty()) shared->revoke({state::Revocations::Kind::subject, sub, now + ttl * 1000});
    if (!jti.empty()) shared->revoke({state::Revocations::Kind::token_id, jti, now + ttl * 1000});
  }
  log::Line(log::Level::info, "admin.revoke")
      .str("sub", sub)
      .str("jti", jti)
      .num("ttl_seconds", ttl)
      .boolean("shared", shared != nullptr);
  g.close_identity(sub, jti, ws::close_code::policy_violation, "token revoked",
                   [reply, sub, jti, ttl, shared = shared != nullptr](std::size_t closed) {
                     json::object out{{"ttl_seconds", ttl}, {"sessions_closed", closed}, {"shared", shared}};
                     if (!sub.empty()) out["sub"] = sub;
                     if (!jti.empty()) out["jti"] = jti;
                     reply(json_response(202, out));
                   });
}

bool authorized(const std::string& token, const Request& r) {
  if (token.empty()) return true;
  static constexpr std::string_view kBearer = "Bearer ";
  if (r.authorization.size() != kBearer.size() + token.size() || r.authorization.rfind(kBearer, 0) != 0) return false;
  return CRYPTO_memcmp(r.authorization.data() + kBearer.size(), token.data(), token.size()) == 0;
}


}  // namespace

std::vector<std::string> not_ready(const Gateway& g) {
  std::vector<std::string> reasons;
  if (g.draining()) reasons.emplace_back("draining");
  if (!g.listening()) reasons.emplace_back("listeners not bound yet");
  if (const auto* shared = state::SharedCounters::get(); shared && shared->refuse_when_down() && !shared->up())
    reasons.emplace_back("redis down (on_redis_down: refuse): new connections are refused with 503");
  const auto cfg = g.config();
  if (!cfg) {
    reasons.emplace_back("no configuration loaded");
    return reasons;
  }
  const auto health = g.upstream_health();
  for (const auto& r : cfg->routes) {
    bool any = false;
    std::string why;
    for (const auto& u : r.upstreams) {
      bool healthy = true, probed = true;
      std::string err;
      for (const auto& h : health)
        if (h.upstream == u.text) {
          healthy = h.healthy;
          probed = h.probed;
          err = h.last_error;
        }
      if (healthy && probed) {
        any = true;
        break;
      }
      why += (why.empty() ? "" : ", ") + u.text + ": " + (probed ? err : "not probed yet");
    }
    if (!any) reasons.push_back("route " + r.name + ": no healthy upstream (" + why + ")");
  }
  // Groups whose every member is down (active checks), ejected or draining.
  for (const auto& gs : g.upstream_groups()) {
    if (gs.available > 0) continue;
    std::string why;
    for (const auto& m : gs.members) {
      why += (why.empty() ? "" : ", ") + m.text + ": " +
             (!m.healthy ? "unhealthy" + (m.last_check.empty() ? std::string() : " (" + m.last_check + ")")
              : m.ejected ? std::string("ejected")
              : m.draining ? std::string("draining")
                           : std::string("at max_connections"));
    }
    reasons.push_back("upstream group " + std::string(gs.anonymous ? "route/" : "") + gs.name +
                      ": no available member (" + why + ")");
  }
  return reasons;
}

Handler make_handler(Gateway& g) {
  return [&g](const Request& r, Reply reply) {
    const std::string& token = g.config()->admin.token;
    const bool get = r.method == "GET" || r.method == "HEAD";
    if (r.path == "/healthz") {
      if (!get) return reply(method_not_allowed("GET"));
      g.stalled_workers([reply, n = g.worker_count()](std::vector<unsigned> stalled) {
        if (stalled.empty()) return reply(json_response(200, json::object{{"status", "ok"}, {"workers", n}}));
        json::array ids;
        for (unsigned i : stalled) ids.push_back(i);
        reply(json_response(503, json::object{{"status", "stalled"}, {"workers_stalled", std::move(ids)}}));
      });
      return;
    }
    if (r.path == "/readyz") {
      if (!get) return reply(method_not_allowed("GET"));
      const auto reasons = not_ready(g);
      json::object out{{"status", reasons.empty() ? "ready" : "not_ready"}};
      if (const auto* shared = state::SharedCounters::get()) {
        // Where the limits are counted: Redis while it is up, else this
        // process alone (or nowhere: refuse).
        const bool up = shared->up();
        out["detail"] = json::object{
            {"redis", json::object{{"state", up ? "up" : "down"},
                                   {"on_redis_down", shared->refuse_when_down() ? "refuse" : "local"},
                                   {"limits", up ? "shared" : shared->refuse_when_down() ? "refusing" : "local"}}}};
      }
      if (reasons.empty()) return reply(json_response(200, out));
      // The reasons name upstream addresses: only for those the API trusts.
      if (!authorized(token, r)) return reply(json_response(503, out));
      json::array a;
      for (const auto& s : reasons) a.push_back(json::string(s));
      out["reasons"] = std::move(a);
      return reply(json_response(503, out));
    }
    if (const Asset* asset = find_asset(r.path)) {
      if (!get) return reply(method_not_allowed("GET"));
      return reply({200, std::string(asset->content_type), std::string(asset->body), {}});
    }
    if (!authorized(token, r)) {
      Response resp = error(401, "a bearer token is required (Authorization: Bearer <admin.token>)");
      resp.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"weir-admin\"");
      return reply(std::move(resp));
    }
    if (r.path == "/metrics") {
      if (!get) return reply(method_not_allowed("GET"));
      return reply({200, "text/plain; version=0.0.4; charset=utf-8", obs::Registry::global().render(), {}});
    }
    if (r.path == "/admin/stats") {
      if (!get) return reply(method_not_allowed("GET"));
      return reply(json_response(200, stats(g)));
    }
    if (r.path == "/admin/config") {
      if (!get) return reply(method_not_allowed("GET"));
      return reply({200, "application/json", config_json(*g.config()) + "\n", {}});
    }
    if (r.path == "/admin/connections") {
      if (!get) return reply(method_not_allowed("GET"));
      return list_connections(g, r, std::move(reply));
    }
    if (r.path == "/admin/revoke") {
      if (r.method == "POST") return revoke(g, r, std::move(reply));
      if (!get) return reply(method_not_allowed("GET, POST"));
      return reply(json_response(200, json::object{{"revocations", revocation_list()}}));
    }
    if (handle_upstreams(g, r, reply)) return;
    static constexpr std::string_view kConn = "/admin/connections/";
    static constexpr std::string_view kClose = "/close";
    if (r.path.rfind(kConn, 0) == 0 && r.path.size() > kConn.size() + kClose.size() &&
        r.path.compare(r.path.size() - kClose.size(), kClose.size(), kClose) == 0) {
      if (r.method != "POST") return reply(method_not_allowed("POST"));
      const std::string id = r.path.substr(kConn.size(), r.path.size() - kConn.size() - kClose.size());
      return close_connection(g, id, r, std::move(reply));
    }
    reply(error(404, "not found"));
  };
}

}  // namespace weir::admin
