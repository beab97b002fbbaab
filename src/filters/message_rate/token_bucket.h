#pragma once
// A token bucket on the coarse millisecond clock: `rate` tokens per second
// refill up to `burst`. I/O-free, so unit tests drive it with made-up times.

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace weir::filters {

class TokenBucket {
 public:
  TokenBucket() = default;
  // rate > 0 tokens/s, burst >= 1; starts full at now_ms.
  TokenBucket(double rate_per_s, double burst, std::int64_t now_ms)
      : per_ms_(rate_per_s / 1000.0), burst_(burst), tokens_(burst), last_ms_(now_ms) {}

  // Takes n tokens if there are that many, or if the bucket is full (so a
  // cost above the burst can pass, once, leaving a debt). False: nothing taken.
  bool try_take(double n, std::int64_t now_ms) {
    refill(now_ms);
    if (tokens_ < n && tokens_ < burst_) return false;
    tokens_ -= n;
    return true;
  }
  // Takes n tokens whatever the balance (it may go negative). Returns the
  // first time at which the balance is back to zero or more (now_ms if it is).
  std::int64_t take(double n, std::int64_t now_ms) {
    refill(now_ms);
    tokens_ -= n;
    return ready_at(now_ms);
  }
  std::int64_t ready_at(std::int64_t now_ms) const {
    if (tokens_ >= 0) return now_ms;
    return now_ms + static_cast<std::int64_t>(std::ceil(-tokens_ / per_ms_ - 1e-9));
  }
  double tokens() const { return tokens_; }

 private:
  void refill(std::int64_t now_ms) {
    if (now_ms > last_ms_) {
      tokens_ = std::min(burst_, tokens_ + static_cast<double>(now_ms - last_ms_) * per_ms_);
      last_ms_ = now_ms;
    }
  }
  double per_ms_ = 0, burst_ = 0, tokens_ = 0;
  std::int64_t last_ms_ = 0;
};

}  // namespace weir::filters
