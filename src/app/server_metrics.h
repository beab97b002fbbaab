#pragma once
// The process-wide weir_* metrics the server reports at scrape time (build,
// generation, reloads, workers' accept/TLS/buffer counters, Redis link).

#include <cstdint>
#include <memory>
#include <vector>

#include "observability/metrics.h"

namespace weir::core {
class Worker;
}

namespace weir::app {

struct ServerFigures {
  std::uint64_t generation = 0;
  std::uint64_t reloads_ok = 0, reloads_failed = 0;
  bool draining = false;
  std::size_t sessions = 0;  // alive, handshaking or relaying
};

void add_server_metrics(std::vector<obs::Registry::Sample>& out, const std::vector<std::unique_ptr<core::Worker>>& workers,
                        const ServerFigures& f);

}  // namespace weir::app
