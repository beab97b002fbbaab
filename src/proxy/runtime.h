#pragma once
// One config generation, compiled: what a session needs from the config for
// its whole life, immutable and shared by every worker through a shared_ptr.
// A reload builds a whole new Runtime (config, filter chains, TLS contexts)
// and swaps it in for new connections; a session keeps the one it was
// accepted under, so nothing it points into can change or go away.
//
// Seams for what comes next:
//  - a filter type registers its YAML key (filters/registry.cpp) and lands in
//    CompiledRoute::chain (filters/api.h);
//  - an upstream kind (load-balanced groups, HTTP/SSE for the LLM bridge)
//    becomes a member of CompiledRoute next to its TLS client;
//  - shared state (Redis) and the admin API hang off the Runtime or the
//    per-worker WorkerGateway, never off core::Worker.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "filters/api.h"
#include "proxy/route_metrics.h"
#include "upstream/group.h"

namespace weir::net {
class TlsServer;
class TlsClient;
struct TlsSet;
}  // namespace weir::net

namespace weir::proxy {

struct CompiledRoute {
  const config::Route* conf = nullptr;          // points into Runtime::config
  std::size_t index = 0;                         // position in the config (route order)
  filters::Chain chain;                          // its filters, in order
  std::shared_ptr<const net::TlsClient> tls;     // for wss:// upstreams; null when none
  const upstream::Group* group = nullptr;        // its upstream group (in Runtime::groups)
  RouteMetrics metrics;                          // its series (the same ones after a reload)
};

class Runtime {
 public:
  // Compiles cfg (reads every TLS file it names); throws config::ConfigError.
  static std::shared_ptr<const Runtime> build(std::shared_ptr<const config::Config> cfg,
                                              std::uint64_t generation);

  std::uint64_t generation = 0;
  std::shared_ptr<const config::Config> config;
  std::vector<CompiledRoute> routes;           // in match order
  std::shared_ptr<const net::TlsSet> tls;      // keeps every SSL_CTX alive
  std::size_t buffer_bytes = 0;                // the largest relay buffer a route asks for
  std::vector<ListenerMetrics> listener_metrics;  // by listener index
  // Every upstream group of this generation: the named ones in config
  // order, then the routes' own lists.
  std::vector<std::shared_ptr<const upstream::Group>> groups;
  // By group: the TLS client its wss:// members are reached with (that of
  // the first route using it; null: none), for the active health checks.
  std::vector<std::shared_ptr<const net::TlsClient>> group_tls;
  const upstream::Group* find_group(std::string_view name) const;  // a named group

  // The listener's TLS server (null for a plain listener or an unknown index).
  const net::TlsServer* listener_tls(std::size_t listener) const;
  // The index of the nth listener configured as address:port (port as
  // written; several may say port 0), or npos: listeners are known by that,
  // not by position, so a reload that adds or removes one leaves the others'
  // sockets alone.
  static constexpr std::size_t npos = static_cast<std::size_t>(-1);
  std::size_t listener_index(std::string_view address, std::uint16_t port, std::size_t nth = 0) const;
  // How many listeners before index i are configured with i's address:port.
  std::size_t listener_nth(std::size_t i) const;
  const CompiledRoute* find(std::string_view name) const;
};

// What a reload changed, by route name, for the config_reload log line.
struct ReloadSummary {
  std::vector<std::string> added, removed, changed;
  // Listeners as "address:port" (the port as configured).
  std::vector<std::string> listeners_added, listeners_removed, listeners_changed;
};
std::string listener_key(const config::Listener& l);
ReloadSummary compare(const Runtime& before, const Runtime& after);

}  // namespace weir::proxy
