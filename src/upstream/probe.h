#pragma once
// Upstream reachability for /readyz (docs/admin.md): every interval, a TCP
// connect to each distinct upstream of the running config, with a timeout.
// The built-in echo upstream is always up. Runs on the main thread's
// io_context; results are read there too. (Active health checks with their
// own policy and passive ejection belong to load balancing: this is the
// readiness probe, not the picker's input.)

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "config/config.h"

namespace boost::asio {
class io_context;
}

namespace weir::upstream {

struct ProbeResult {
  bool healthy = false;
  bool probed = false;
  std::string last_error;
};

class Prober {
 public:
  explicit Prober(boost::asio::io_context& io);
  ~Prober();
  Prober(const Prober&) = delete;
  Prober& operator=(const Prober&) = delete;

  // The upstreams to probe from now on, and how often
  // (cfg.admin.upstream_probe_interval): results of those still present are
  // kept; the series of those gone are removed. Probes at once, then every
  // interval.
  void set_config(const config::Config& cfg);
  void stop();
  // By upstream text (as configured).
  std::map<std::string, ProbeResult> results() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace weir::upstream
