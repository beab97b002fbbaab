#pragma once
// Wiring: workers, listeners, the built-in echo upstream, signals, drain.

#include <memory>

#include "config/config.h"

namespace weir::app {

// Runs Weir with this configuration until SIGTERM/SIGINT and the drain that
// follows. Returns the process exit code.
int run_server(std::shared_ptr<const config::Config> cfg);

}  // namespace weir::app
