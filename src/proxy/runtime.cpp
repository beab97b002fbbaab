#include "proxy/runtime.h"

#include <algorithm>

#include "config/filter_types.h"
#include "net/tls.h"
#include "upstream/group_metrics.h"

namespace weir::proxy {

std::shared_ptr<const Runtime> Runtime::build(std::shared_ptr<const config::Config> cfg,
                                              std::uint64_t generation) {
  auto rt = std::make_shared<Runtime>();
  rt->generation = generation;
  rt->tls = net::build_tls(*cfg);
  rt->buffer_bytes = 4096;
  rt->routes.reserve(cfg->routes.size());
  for (const auto& g : cfg->upstream_groups) rt->groups.push_back(std::make_shared<const upstream::Group>(g));
  for (std::size_t i = 0; i < cfg->routes.size(); ++i) {
    CompiledRoute r;
    r.conf = &cfg->routes[i];
    r.index = i;
    r.chain = filters::Chain(r.conf->filters);
    if (i < rt->tls->routes.size()) r.tls = rt->tls->routes[i];
    r.metrics = RouteMetrics::build(obs::Registry::global(), *r.conf);
    if (r.conf->group->anonymous) {
      rt->groups.push_back(std::make_shared<const upstream::Group>(r.conf->group));
      r.group = rt->groups.back().get();
    } else {
      for (const auto& g : rt->groups)
        if (&g->conf() == r.conf->group.get()) r.group = g.get();
    }
    for (const auto& f : r.chain.filters())
      if (!f->metrics_declared.exchange(true)) f->declare_metrics(obs::Registry::global(), r.conf->name);
    rt->buffer_bytes = std::max<std::size_t>(rt->buffer_bytes, r.conf->limits.buffer_bytes);
    rt->routes.push_back(std::move(r));
  }
  for (const auto& g : rt->groups) {
    upstream::declare_group_metrics(*g);
    std::shared_ptr<const net::TlsClient> tls;
    for (const auto& r : rt->routes)
      if (r.group == g.get() && r.tls && !tls) tls = r.tls;
    rt->group_tls.push_back(std::move(tls));
  }
  for (const auto& l : cfg->listeners)
    rt->listener_metrics.push_back(ListenerMetrics::build(obs::Registry::global(), listener_key(l)));
  rt->config = std::move(cfg);
  return rt;
}

const net::TlsServer* Runtime::listener_tls(std::size_t listener) const {
  return tls && listener < tls->listeners.size() ? tls->listeners[listener].get() : nullptr;
}

std::size_t Runtime::listener_index(std::string_view address, std::uint16_t port, std::size_t nth) const {
  const auto& ls = config->listeners;
  for (std::size_t i = 0; i < ls.size(); ++i)
    if (ls[i].port == port && ls[i].address == address && nth-- == 0) return i;
  return npos;
}

std::size_t Runtime::listener_nth(std::size_t i) const {
  const auto& ls = config->listeners;
  std::size_t n = 0;
  for (std::size_t j = 0; j < i; ++j) n += ls[j].port == ls[i].port && ls[j].address == ls[i].address;
  return n;
}

std::string listener_key(const config::Listener& l) {
  const bool v6 = l.address.find(':') != std::string::npos;
  return (v6 ? "[" + l.address + "]" : l.address) + ":" + std::to_string(l.port);
}

const upstream::Group* Runtime::find_group(std::string_view name) const {
  for (const auto& g : groups)
    if (!g->conf().anonymous && g->label() == name) return g.get();
  return nullptr;
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

bool same_filters(const std::vector<std::shared_ptr<const config::FilterSettings>>& a,
                  const std::vector<std::shared_ptr<const config::FilterSettings>>& b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(),
                    [](const auto& x, const auto& y) { return x->key == y->key && x->same_as(*y); });
}

// What a route does; where it was written (SourcePos) does not count.
bool same_route(const config::Route& a, const config::Route& b) {
  return a.match.host == b.match.host && a.match.path == b.match.path &&
         a.match.path_prefix == b.match.path_prefix && a.match.headers == b.match.headers &&
         same_upstreams(a.upstreams, b.upstreams) && same_filters(a.filters, b.filters) && a.remask == b.remask &&
         a.strict == b.strict && a.generic_upstream_handshake == b.generic_upstream_handshake && same_tls(a.upstream_tls, b.upstream_tls) && a.timeouts == b.timeouts &&
         a.limits == b.limits && a.keepalive == b.keepalive && a.compression == b.compression;
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
  const auto& was = before.config->listeners;
  const auto& now = after.config->listeners;
  for (std::size_t k = 0; k < now.size(); ++k) {
    const auto& l = now[k];
    const std::size_t i = before.listener_index(l.address, l.port, after.listener_nth(k));
    if (i == Runtime::npos) s.listeners_added.push_back(listener_key(l));
    else if (was[i].tls.has_value() != l.tls.has_value()) s.listeners_changed.push_back(listener_key(l));
  }
  for (std::size_t k = 0; k < was.size(); ++k)
    if (after.listener_index(was[k].address, was[k].port, before.listener_nth(k)) == Runtime::npos)
      s.listeners_removed.push_back(listener_key(was[k]));
  return s;
}

}  // namespace weir::proxy
