#pragma once
// The admin API (docs/admin.md): routes admin requests to the running
// gateway, which it sees through Gateway, and renders the answers (JSON,
// Prometheus text, the dashboard's files). Runs on the admin listener's
// thread (the main one); what lives on workers is asked for through
// Gateway's callbacks, which come back on that thread.

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "admin/http_server.h"
#include "config/config.h"
#include "core/worker.h"

namespace weir::admin {

struct UpstreamHealth {
  std::string upstream;      // as written in the config
  bool healthy = true;
  bool probed = false;       // a probe has answered since start (or probing is off)
  std::string last_error;
};

// What the admin API needs of the running process (main thread).
class Gateway {
 public:
  virtual ~Gateway() = default;
  // Workers that did not answer a probe posted to their loop within the
  // deadline (empty: all healthy).
  virtual void stalled_workers(std::function<void(std::vector<unsigned>)> done) = 0;
  virtual std::size_t worker_count() const = 0;
  // Every live session, from every worker.
  virtual void sessions(std::function<void(std::vector<core::SessionInfo>)> done) = 0;
  // Asks the session `id` to close with code and reason; done(found).
  virtual void close_session(std::uint64_t id, std::uint16_t code, std::string reason,
                             std::function<void(bool)> done) = 0;
  virtual std::shared_ptr<const config::Config> config() const = 0;
  virtual std::uint64_t generation() const = 0;
  virtual bool listening() const = 0;   // every listener bound and accepting
  virtual bool draining() const = 0;
  virtual double uptime_seconds() const = 0;
  virtual std::size_t open_sessions() const = 0;
  virtual std::vector<UpstreamHealth> upstream_health() const = 0;
};

// Builds the request handler for an HttpServer. token: the bearer token the
// API requires ("" = none).
Handler make_handler(Gateway& gateway, std::string token);

// The effective config as JSON, secrets redacted (for /admin/config).
std::string config_json(const config::Config& cfg);

// Readiness problems (empty: ready).
std::vector<std::string> not_ready(const Gateway& gateway);

}  // namespace weir::admin
