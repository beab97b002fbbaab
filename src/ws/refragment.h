#pragma once
// Re-fragmenting a relayed stream so that every run a relay writes ends at a
// frame boundary (RFC 6455 5.4: an intermediary that understands the
// negotiated extensions may change the fragmentation of a message). A frame
// that a read cut short goes out as a non-final frame of what arrived; the
// rest follows as continuation frames, the last one with the frame's FIN.
// Payload bytes are never touched: a masked piece gets the frame's key
// rotated by its offset, so the bytes already masked stay valid.
//
// Why: with every write ending between frames, the relay can always put a
// Close frame (1001, 1011, 1014) after what it forwarded when the other side
// is lost, instead of cutting TCP inside a frame. Control frames are whole
// in a scanned run, so they are never fragmented.
//
// I/O-free: the pump calls rewrite() once per scanned run.

#include <cstddef>
#include <cstdint>

#include "ws/frame.h"

namespace weir::ws {

// Bytes of header a rewrite may put before a run: the caller keeps this much
// headroom in front of the bytes it reads.
inline constexpr std::size_t kRefragHeadroom = 14;

class Refragmenter {
 public:
  // Rewrites the run buf[start, end) in place so it ends at a frame boundary.
  //  lead:  bytes at the run's start that continue the frame an earlier run
  //         left open (0 when none);
  //  last:  offset in buf of the last frame header in the run when that frame
  //         is incomplete at `end` (npos when none); last_h is its header;
  //  rest:  payload of the incomplete frame still to come after `end` (0 when
  //         the run ends at a frame boundary).
  // Returns the run's new start (at least start - kRefragHeadroom); its end
  // does not move.
  std::size_t rewrite(std::uint8_t* buf, std::size_t start, std::size_t end, std::size_t lead,
                      std::size_t last, const FrameHeader* last_h, std::uint64_t rest);

  static constexpr std::size_t npos = static_cast<std::size_t>(-1);
  // A frame is open: part of it went out as a non-final fragment.
  bool open() const { return open_; }

 private:
  bool open_ = false;
  bool fin_ = false;        // the open frame's own FIN, for its last piece
  bool masked_ = false;
  std::uint8_t key_[4] = {0, 0, 0, 0};  // its key (as written, after any re-mask)
  std::uint64_t offset_ = 0;           // its payload bytes already written
};

}  // namespace weir::ws
