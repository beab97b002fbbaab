#pragma once
// An upstream group's counters (docs/metrics.md), labelled {group, upstream}
// or {group, result}. Declared at 0 when a generation is built (so a scrape
// shows them before the first event), counted where the event happens.

#include <cstdint>
#include <string_view>

#include "observability/metrics.h"

namespace weir::upstream {

class Group;

enum class GroupEvent {
  retry,       // weir_upstream_retries_total{group, upstream}: an attempt moved past this member
  ejection,    // weir_upstream_ejections_total{group, upstream}
  rebalanced,  // weir_upstream_rebalanced_total{group, upstream}: sessions moved off it
  sticky,      // weir_upstream_sticky_total{group, result}
};

// Into `cells` (the calling thread's slot); the lookup is cached per thread.
void count_group_event(obs::Cell* cells, GroupEvent e, std::string_view group, std::string_view value,
                       std::uint64_t n = 1);
void declare_group_metrics(const Group& g);

}  // namespace weir::upstream
