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
#include "upstream/supervisor.h"

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
  // Live sessions: the total, and from each worker the `first` with the
  // lowest ids, described (so a page at offset+limit < first is exact
  // without describing every session). Workers that did not answer within
  // the deadline are listed in `stalled` (their sessions are missing).
  struct SessionPage {
    std::size_t total = 0;
    std::vector<core::SessionInfo> sessions;
    std::vector<unsigned> stalled;
  };
  virtual void sessions(std::size_t first, std::function<void(SessionPage)> done) = 0;
  // Asks the session `id` to close with code and reason; done(found).
  // Workers that do not answer within the deadline count as not found.
  virtual void close_session(std::uint64_t id, std::uint16_t code, std::string reason,
                             std::function<void(bool)> done) = 0;
  // Asks every session authenticated as `sub` or with token id `jti` (an
  // empty one matches nothing) to close; done(how many were asked).
  virtual void close_identity(std::string sub, std::string jti, std::uint16_t code, std::string reason,
                              std::function<void(std::size_t)> done) = 0;
  virtual std::shared_ptr<const config::Config> config() const = 0;
  virtual std::uint64_t generation() const = 0;
  virtual bool listening() const = 0;   // every listener bound and accepting
  virtual bool draining() const = 0;
  virtual double uptime_seconds() const = 0;
  virtual std::size_t open_sessions() const = 0;
  virtual std::vector<UpstreamHealth> upstream_health() const = 0;
  // Upstream groups of the running generation, with each member's state.
  virtual std::vector<upstream::Supervisor::GroupStatus> upstream_groups() const = 0;
  // Drains or takes back a member (upstream::Supervisor::drain); false: no such member.
  virtual bool drain_member(const std::string& group, const std::string& member, bool on,
                            std::chrono::milliseconds timeout) = 0;
};

// upstreams_api.cpp: /admin/upstreams...; false when the path is not one of them.
bool handle_upstreams(Gateway& g, const Request& r, Reply& reply);

// Builds the request handler for an HttpServer. The bearer token is the
// running config's admin.token ("" = none), so a reload can rotate it.
Handler make_handler(Gateway& gateway);

// The effective config as JSON, secrets redacted (for /admin/config).
std::string config_json(const config::Config& cfg);

// Readiness problems (empty: ready).
std::vector<std::string> not_ready(const Gateway& gateway);

}  // namespace weir::admin
