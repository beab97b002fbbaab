#pragma once
// Giving memory back after a burst of connections. A handshake needs a few
// KiB for a moment (request and response heads, the upstream request); a
// burst of thousands leaves that much free heap scattered between the
// long-lived sessions, which malloc keeps resident. Once connections stop
// arriving, malloc_trim() returns the free pages to the kernel (measured: an
// idle connection's share of RSS went from 2.9 to 0.8 KiB after a burst of
// 8000). Trimming locks each malloc arena while it walks it, so it runs only
// when new connections have paused, or after a long steady trickle.

#include <cstdint>

namespace weir::core {

class TrimPolicy {
 public:
  // quiet_ms: no new connection for this long after some arrived: trim.
  // max_wait_ms: connections kept arriving (never quiet) for this long: trim anyway.
  // min_new: fewer new connections than this since the last trim are not worth it.
  TrimPolicy(std::int64_t quiet_ms = 1000, std::int64_t max_wait_ms = 60'000, std::uint64_t min_new = 256)
      : quiet_ms_(quiet_ms), max_wait_ms_(max_wait_ms), min_new_(min_new) {}

  // Called periodically with the total of connections accepted so far;
  // true when the heap should be trimmed now.
  // Counts start at 0: connections accepted before the first call count as new.
  bool observe(std::uint64_t accepted, std::int64_t now_ms) {
    if (!started_) {
      started_ = true;
      trimmed_ms_ = now_ms;
    }
    if (accepted != seen_) {
      seen_ = accepted;
      changed_ms_ = now_ms;
    }
    if (accepted - trimmed_at_count_ < min_new_) return false;
    const bool quiet = now_ms - changed_ms_ >= quiet_ms_;
    const bool overdue = now_ms - trimmed_ms_ >= max_wait_ms_;
    if (!quiet && !overdue) return false;
    trimmed_at_count_ = accepted;
    trimmed_ms_ = now_ms;
    return true;
  }

 private:
  std::int64_t quiet_ms_, max_wait_ms_;
  std::uint64_t min_new_;
  bool started_ = false;
  std::uint64_t seen_ = 0, trimmed_at_count_ = 0;
  std::int64_t changed_ms_ = 0, trimmed_ms_ = 0;
};

// malloc_trim(0): free heap pages go back to the kernel. Returns true if any did.
bool trim_heap();

}  // namespace weir::core
