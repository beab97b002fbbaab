#pragma once
// process_* metrics as the Prometheus client libraries export them (CPU,
// memory, descriptors, start time), read from /proc/self at scrape time.

#include <vector>

#include "observability/metrics.h"

namespace weir::app {

void add_process_metrics(std::vector<obs::Registry::Sample>& out);

}  // namespace weir::app
