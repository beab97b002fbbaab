#include "proxy/runtime.h"

#include <algorithm>

#include "net/tls.h"

namespace weir::proxy {

std::shared_ptr<const Runtime> Runtime::build(std::shared_ptr<const config::Config> cfg,
                                              std::uint64_t generation) {
  auto rt = std::make_shared<Runtime>();
  rt->generation = generation;
  rt->tls = net::build_tls(*cfg);
  auto chains = filters::build_chains(*cfg);
  rt->buffer_bytes = 4096;
  rt->routes.reserve(cfg->routes.size());
  for (std::size_t i = 0; i < cfg->routes.size(); ++i) {
    CompiledRoute r;
    r.conf = &cfg->routes[i];
    r.index = i;
    r.chain = std::move(chains[i]);
    if (i < rt->tls->routes.size()) r.tls = rt->tls->routes[i];
    rt->buffer_bytes = std::max<std::size_t>(rt->buffer_bytes, r.conf->limits.buffer_bytes);
    rt->routes.push_back(std::move(r));
  }
  rt->config = std::move(cfg);
  return rt;
}

const net::TlsServer* Runtime::listener_tls(std::size_t listener) const {
  return tls && listener < tls->listeners.size() ? tls->listeners[listener].get() : nullptr;
}

const CompiledRoute* Runtime::find(std::string_view name) const {
  for (const auto& r : routes)
    if (r.conf->name == name) return &r;
  return nullptr;
}

namespace {

bool same_upstreams(const std::vector<config::Upstream>& a, const std::vector<config::Upstream>& b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(),
                    [](const config::Upstream& x, const config::Upstream& y) { return x.text == y.text; });
}

bool same_tls(const config::UpstreamTls& a, const config::UpstreamTls& b) {
  return a.ca.path == b.ca.path && a.verify == b.verify && a.server_name == b.server_name &&
         a.cert.path == b.cert.path && a.key.path == b.key.path;
}

// What a route does; where it was written (SourcePos) does not count.
bool same_route(const config::Route& a, const config::Route& b) {
  return a.match.host == b.match.host && a.match.path == b.match.path &&
         a.match.path_prefix == b.match.path_prefix && a.match.headers == b.match.headers &&
         same_upstreams(a.upstreams, b.upstreams) && a.origins == b.origins && a.remask == b.remask &&
         a.strict == b.strict && same_tls(a.upstream_tls, b.upstream_tls) && a.timeouts == b.timeouts &&
         a.limits == b.limits && a.keepalive == b.keepalive;
}

bool same_listeners(const config::Config& a, const config::Config& b) {
  return std::equal(a.listeners.begin(), a.listeners.end(), b.listeners.begin(), b.listeners.end(),
                    [](const config::Listener& x, const config::Listener& y) {
                      return x.address == y.address && x.port == y.port && x.tls.has_value() == y.tls.has_value();
                    });
}

}  // namespace

ReloadSummary compare(const Runtime& before, const Runtime& after) {
  ReloadSummary s;
  for (const auto& r : after.routes) {
    const CompiledRoute* old = before.find(r.conf->name);
    if (old == nullptr) s.added.push_back(r.conf->name);
    else if (!same_route(*old->conf, *r.conf)) s.changed.push_back(r.conf->name);
  }
  for (const auto& r : before.routes)
    if (after.find(r.conf->name) == nullptr) s.removed.push_back(r.conf->name);
  s.listeners_changed = !same_listeners(*before.config, *after.config);
  return s;
}

}  // namespace weir::proxy
