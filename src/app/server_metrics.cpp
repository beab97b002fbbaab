#include "app/server_metrics.h"

#include "core/worker.h"
#include "observability/log.h"
#include "state/shared_counters.h"

namespace weir::app {

void add_server_metrics(std::vector<obs::Registry::Sample>& out, const std::vector<std::unique_ptr<core::Worker>>& workers,
                        const ServerFigures& f) {
  std::uint64_t accept_errors = 0, tls = 0, resumed = 0, tls_failed = 0, buffer_failures = 0;
  std::size_t in_use = 0, cached = 0;
  for (const auto& w : workers) {
    const auto& s = w->stats();
    accept_errors += s.accept_errors.get();
    tls += s.tls_handshakes.get();
    resumed += s.tls_resumed.get();
    tls_failed += s.tls_handshake_failures.get();
    buffer_failures += s.buffer_failures.get();
    in_use += w->buffers().in_use_relaxed();
    cached += w->buffers().cached_relaxed();
  }
  auto add = [&out](const char* name, const char* help, const char* type, double v, obs::Labels l = {}) {
    out.push_back({name, help, type, std::move(l), v});
  };
  add("weir_build_info", "Weir's version", "gauge", 1, {{"version", WEIR_VERSION}});
  add("weir_config_generation", "The running config generation", "gauge",
      static_cast<double>(f.generation));
  add("weir_config_reloads_total", "SIGHUP reloads", "counter", static_cast<double>(f.reloads_ok), {{"result", "ok"}});
  add("weir_config_reloads_total", "SIGHUP reloads", "counter", static_cast<double>(f.reloads_failed),
      {{"result", "failed"}});
  add("weir_draining", "1 once a drain started", "gauge", f.draining ? 1 : 0);
  add("weir_workers", "Worker threads", "gauge", static_cast<double>(workers.size()));
  add("weir_connections_open", "Sessions alive, handshaking or relaying", "gauge", static_cast<double>(f.sessions));
  add("weir_accept_errors_total", "accept() failures", "counter", static_cast<double>(accept_errors));
  add("weir_tls_handshakes_total", "Client TLS handshakes completed", "counter", static_cast<double>(tls));
  add("weir_tls_resumed_total", "Client TLS handshakes that resumed a session", "counter",
      static_cast<double>(resumed));
  add("weir_tls_handshake_failures_total", "Client TLS handshakes that failed", "counter",
      static_cast<double>(tls_failed));
  add("weir_buffer_failures_total", "Relay buffers that could not be allocated", "counter",
      static_cast<double>(buffer_failures));
  add("weir_buffer_pool_buffers", "Relay buffers of the workers' pools", "gauge", static_cast<double>(in_use),
      {{"state", "in_use"}});
  add("weir_buffer_pool_buffers", "Relay buffers of the workers' pools", "gauge", static_cast<double>(cached),
      {{"state", "cached"}});
  add("weir_log_lines_dropped_total", "Log lines dropped because the log queue was full", "counter",
      static_cast<double>(log::dropped()));
  if (const auto* shared = state::SharedCounters::get())
    add("weir_redis_up", "1 while the shared limits' Redis is connected (state.backend: redis)", "gauge",
        shared->up() ? 1 : 0);
}

}  // namespace weir::app
