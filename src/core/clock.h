#pragma once
// Coarse monotonic time for activity stamps on the data path: a vDSO read of
// CLOCK_MONOTONIC_COARSE (a few ns, ~4 ms resolution), good enough for idle and
// keepalive decisions measured in seconds.

#include <cstdint>
#include <ctime>

namespace weir::core {

inline std::int64_t coarse_now_ms() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return std::int64_t{ts.tv_sec} * 1000 + ts.tv_nsec / 1'000'000;
}

// Precise monotonic time in µs, for latency histograms (a few per session).
inline std::int64_t now_us() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::int64_t{ts.tv_sec} * 1'000'000 + ts.tv_nsec / 1'000;
}

// Wall-clock time in ms since the epoch (CLOCK_REALTIME): token expiry,
// revocations and other times that mean the same on every instance.
inline std::int64_t wall_now_ms() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return std::int64_t{ts.tv_sec} * 1000 + ts.tv_nsec / 1'000'000;
}

}  // namespace weir::core
