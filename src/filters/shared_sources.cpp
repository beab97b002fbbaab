#include "filters/shared_sources.h"

namespace weir::filters {

void count_off_worker(obs::CounterId id) {
  static std::mutex mu;
  std::lock_guard lock(mu);
  obs::Registry::global().slot(obs::Registry::kMainSlot)[id.at].add();
}

}  // namespace weir::filters
