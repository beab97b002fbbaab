#pragma once
// What a backend sends to a pre-warmed connection nobody reads yet
// (upstream/prewarm.cpp): I/O-free, so it is unit tested.

#include <cstddef>
#include <string>
#include <vector>

namespace weir::upstream {

// The server frames at the front of `in` (unmasked, as a backend sends
// them), for a connection that nobody reads yet: data frames move to
// `early`, pongs are noted, pings are collected for an answer. I/O-free,
// so it is unit tested.
struct IdleScan {
  enum class Verdict { ok, close, bad };
  Verdict verdict = Verdict::ok;
  bool pong = false;                 // a pong came
  std::vector<std::string> pings;    // payloads of pings to answer
};
// Consumes whole frames from the front of `in` (a partial one stays);
// data frames go to `early` (bad once it would exceed max_early bytes).
IdleScan scan_idle_frames(std::string& in, std::string& early, std::size_t max_early);

}  // namespace weir::upstream
