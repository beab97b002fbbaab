#pragma once
// Internal to the relay (relay.cpp, inspect.cpp): what the scan of one run
// found, and the frame filters' ruling on a data frame, shared by the fast
// pump's sink and the inspecting pump's.

#include <cstdint>
#include <string>

#include "filters/session_filters.h"
#include "ws/frame.h"
#include "ws/refragment.h"

namespace weir::proxy {

// What the scan of one run found.
struct RunOutcome {
  std::uint64_t messages = 0;
  std::uint32_t frames[16] = {};         // frames read, by opcode value
  bool saw_data = false;
  bool saw_close = false;
  std::uint16_t close_code = 0;          // the peer's Close
  std::string close_reason;
  // The last data frame that starts in this run and is relayed (the one a
  // re-fragmentation may cut), as an offset from the run's start.
  std::size_t last = ws::Refragmenter::npos;
  ws::FrameHeader last_h;
  std::uint64_t dropped = 0;             // messages a filter dropped
  std::int64_t pause_until = 0;          // stopped: a filter holds this frame until then
  std::uint16_t stop_code = 0;           // stopped: a filter closes the session (before this frame)
  const char* stop_reason = "";
  // The stop is the peer's protocol error found while inspecting (a
  // compressed message that does not inflate within the limit), not a filter's.
  bool stop_is_protocol = false;
};

// A route's frame filters as one pump sees them.
struct FrameGate {
  enum class Fate : std::uint8_t { relay, dropped, stop };

  filters::SessionFilters* filters = nullptr;  // null: the route has no frame filters
  filters::Direction dir = filters::Direction::to_upstream;
  std::int64_t now = 0;
  bool* dropping = nullptr;              // the pump's: the rest of a message is dropped
  bool* admit = nullptr;                 // the pump's: the next frame was ruled on before a pause

  // The fate of data frame h. dropped: none of its bytes go anywhere (a
  // message's first frame dropped counts in out.dropped; the rest of that
  // message follows it). stop: the scan stops before it (out.pause_until or
  // out.stop_code says why).
  Fate judge(const ws::FrameHeader& h, RunOutcome& out) const {
    if (*dropping) {
      if (h.fin) *dropping = false;
      return Fate::dropped;
    }
    if (*admit) {
      // Held by a pause that is over now: the chain ruled on it then.
      *admit = false;
      return Fate::relay;
    }
    const filters::FrameVerdict v = filters->on_frame_header(dir, h, now);
    switch (v.kind) {
      case filters::FrameVerdict::Kind::forward:
        return Fate::relay;
      case filters::FrameVerdict::Kind::pause:
        if (v.until_ms <= now) return Fate::relay;
        // The frame and all after it wait: the scan stops before it, its
        // bytes are carried, and nothing more is read until then.
        out.pause_until = v.until_ms;
        *admit = true;
        return Fate::stop;
      case filters::FrameVerdict::Kind::close:
        out.stop_code = v.code;
        out.stop_reason = v.reason;
        return Fate::stop;
      case filters::FrameVerdict::Kind::drop:
        if (h.opcode == ws::Opcode::continuation) {
          // Its first frames are relayed already: only a Close can end it.
          out.stop_code = ws::close_code::policy_violation;
          out.stop_reason = "message refused after its first fragment";
          return Fate::stop;
        }
        *dropping = !h.fin;
        ++out.dropped;
        return Fate::dropped;
    }
    return Fate::relay;
  }
};

}  // namespace weir::proxy
