#pragma once
// Chooses where a session's upstream attempts start. Round robin per worker
// (no shared atomics) for now; load-balancing policies, stickiness and health
// plug in here.

#include <cstddef>
#include <cstdint>
#include <vector>

namespace weir::upstream {

class Picker {
 public:
  explicit Picker(std::size_t routes) : cursor_(routes, 0) {}
  // Index (mod the route's upstream count) of the first upstream to try.
  std::uint32_t first(std::size_t route_index) {
    if (route_index >= cursor_.size()) cursor_.resize(route_index + 1, 0);
    return cursor_[route_index]++;
  }

 private:
  std::vector<std::uint32_t> cursor_;
};

}  // namespace weir::upstream
