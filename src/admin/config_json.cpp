// GET /admin/config: the effective configuration (defaults applied, ${VAR}
// substituted) as JSON. Secrets never leave: the admin token is redacted,
// and of TLS keys only the file names are shown (never their contents).

#include <boost/json.hpp>

#include "admin/admin_api.h"
#include "config/filter_types.h"

namespace weir::admin {

namespace json = boost::json;

namespace {

constexpr const char* kRedacted = "<redacted>";

double seconds(config::Millis m) { return static_cast<double>(m.count()) / 1000.0; }

json::object timeouts(const config::Timeouts& t) {
  return {{"handshake_seconds", seconds(t.handshake)},   {"connect_seconds", seconds(t.connect)},
          {"upstream_handshake_seconds", seconds(t.upstream_handshake)}, {"idle_seconds", seconds(t.idle)},
          {"max_lifetime_seconds", seconds(t.max_lifetime)},             {"close_seconds", seconds(t.close)}};
}

json::object limits(const config::Limits& l) {
  return {{"max_frame_bytes", l.max_frame_bytes},
          {"max_message_bytes", l.max_message_bytes},
          {"buffer_bytes", l.buffer_bytes}};
}

json::object listener(const config::Listener& l) {
  json::object o{{"address", l.address}, {"port", l.port}, {"scheme", l.tls ? "wss" : "ws"}};
  if (l.tls) {
    json::array certs;
    for (const auto& c : l.tls->certificates) {
      json::array names;
      for (const auto& n : c.names) names.push_back(json::string(n));
      certs.push_back(json::object{{"cert", c.cert.path}, {"key", c.key.path}, {"names", std::move(names)}});
    }
    o["tls"] = json::object{{"certificates", std::move(certs)},
                            {"min_version", l.tls->min_version == 0x0304 ? "1.3" : "1.2"},
                            {"session_tickets", l.tls->session_tickets},
                            {"client_ca", l.tls->client_ca.path},
                            {"strict_sni", l.tls->strict_sni}};
  }
  return o;
}

json::object route(const config::Route& r) {
  json::array ups;
  for (const auto& u : r.upstreams) ups.push_back(json::string(u.text));
  json::array filters;
  for (const auto& f : r.filters) filters.push_back(json::object{{"type", f->key}, {"line", f->pos.line}});
  json::array headers;
  for (const auto& h : r.match.headers) headers.push_back(json::object{{"name", h.name}, {"value", h.value}});
  return {{"name", r.name},
          {"match", json::object{{"host", r.match.host},
                                 {"path", r.match.path},
                                 {"path_prefix", r.match.path_prefix},
                                 {"headers", std::move(headers)}}},
          {"upstreams", std::move(ups)},
          {"filters", std::move(filters)},
          {"remask", r.remask},
          {"strict", r.strict},
          {"generic_upstream_handshake", r.generic_upstream_handshake},
          {"upstream_tls", json::object{{"verify", r.upstream_tls.verify},
                                        {"ca", r.upstream_tls.ca.path},
                                        {"server_name", r.upstream_tls.server_name},
                                        {"cert", r.upstream_tls.cert.path},
                                        {"key", r.upstream_tls.key.path}}},
          {"timeouts", timeouts(r.timeouts)},
          {"limits", limits(r.limits)},
          {"keepalive", json::object{{"interval_seconds", seconds(r.keepalive.interval)},
                                     {"timeout_seconds", seconds(r.keepalive.timeout)}}}};
}

}  // namespace

std::string config_json(const config::Config& c) {
  json::array listeners, routes;
  for (const auto& l : c.listeners) listeners.push_back(listener(l));
  for (const auto& r : c.routes) routes.push_back(route(r));
  json::object admin{{"enabled", c.admin.enabled},
                     {"address", c.admin.address},
                     {"port", c.admin.port},
                     {"token", c.admin.token.empty() ? json::value(nullptr) : json::value(kRedacted)},
                     {"upstream_probe_interval_seconds", seconds(c.admin.upstream_probe_interval)}};
  json::object state{{"backend", c.state.backend == config::SharedState::Backend::redis ? "redis" : "local"}};
  if (c.state.backend == config::SharedState::Backend::redis) {
    state["url"] = "redis://" + (c.state.host.find(':') != std::string::npos ? "[" + c.state.host + "]" : c.state.host) +
                   ":" + std::to_string(c.state.port) + "/" + std::to_string(c.state.db);
    state["password"] = c.state.password.empty() ? json::value(nullptr) : json::value(kRedacted);
    state["on_redis_down"] = c.state.refuse_when_down ? "refuse" : "local";
    state["lease_ttl_seconds"] = seconds(c.state.lease_ttl);
    state["key_prefix"] = c.state.key_prefix;
  }
  json::object o{{"source", c.path.empty() ? c.source : c.path},
                 {"workers", c.workers == 0 ? json::value("auto") : json::value(c.workers)},
                 {"listeners", std::move(listeners)},
                 {"admin", std::move(admin)},
                 {"state", std::move(state)},
                 {"log", json::object{{"level", c.log_level}}},
                 {"drain_seconds", seconds(c.drain)},
                 {"handshake_timeout_seconds", seconds(c.handshake_timeout)},
                 {"max_header_bytes", c.max_header_bytes},
                 {"removed_route_grace_seconds", seconds(c.removed_route_grace)},
                 {"routes", std::move(routes)}};
  return json::serialize(o);
}

}  // namespace weir::admin
