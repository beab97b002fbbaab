#pragma once
// What Weir knows about one member of an upstream group beyond the config:
// its health (active checks, passive ejection), whether it drains, and how
// many sessions it holds. Shared by every worker and the main thread, and
// kept across reloads: a config generation that still names the member (same
// group, same text) gets the same MemberState (member_state()).
//
// Writers: live counts by each worker into its own slot (no shared cache
// line on the data path); passive results by workers (atomics); active
// health, drains and rebalancing by the main thread.

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace weir::upstream {

inline constexpr unsigned kCountSlots = 64;

struct MemberState {
  MemberState(std::string group_label, std::string text, std::int64_t now_ms);
  MemberState(const MemberState&) = delete;
  MemberState& operator=(const MemberState&) = delete;

  const std::string group;   // the group's label (metrics, logs, admin)
  const std::string text;    // the member as configured
  const std::uint64_t id;    // upstream::member_id(group, text): the sticky cookie's

  // Active health (the main thread's checker): up until checks say otherwise.
  std::atomic<bool> healthy{true};
  // Passive: consecutive failures seen by sessions; an ejection ends at
  // ejected_until_ms; ejections in a row grow its length.
  std::atomic<std::uint32_t> failures{0};
  std::atomic<std::uint32_t> ejections{0};
  std::atomic<std::int64_t> ejected_until_ms{0};
  // When it last became available (added, back from down or ejection): the
  // start of its slow-start ramp.
  std::atomic<std::int64_t> up_since_ms;
  // Draining (admin API or `drain: true`): no new sessions; at drain_close_ms
  // (0 = never) its sessions get 1012.
  // Above rebalance.max_ratio of its weighted share at the last rebalancing
  // look (Supervisor): a sticky client of a route with rebalance_sticky is
  // then re-picked by the policy instead of brought back here.
  std::atomic<bool> over_share{false};
  std::atomic<bool> admin_drain{false};
  std::atomic<bool> config_drain{false};
  std::atomic<std::int64_t> drain_close_ms{0};

  bool draining() const { return admin_drain.load(std::memory_order_relaxed) || config_drain.load(std::memory_order_relaxed); }
  bool ejected(std::int64_t now_ms) const { return ejected_until_ms.load(std::memory_order_relaxed) > now_ms; }

  // Live sessions (relaying or being set up on it), summed over the slots.
  std::int64_t live() const;
  void add_live(unsigned worker, std::int64_t d) {
    slots_[worker % kCountSlots].n.fetch_add(d, std::memory_order_relaxed);
  }

 private:
  struct alignas(64) Slot {
    std::atomic<std::int64_t> n{0};
  };
  std::array<Slot, kCountSlots> slots_;
};

// The member's state, created on first use. `key`: the group's state key
// (named groups by name; a route's own list by "route/" + route name).
std::shared_ptr<MemberState> member_state(const std::string& key, const std::string& label,
                                          const std::string& text);

}  // namespace weir::upstream
