#include "ws/refragment.h"

#include <cstring>

namespace weir::ws {

std::size_t Refragmenter::rewrite(std::uint8_t* buf, std::size_t start, std::size_t end, std::size_t lead,
                                  std::size_t last, const FrameHeader* last_h, std::uint64_t rest) {
  const bool cut = last != npos && rest != 0;
  // The run begins with the rest of the frame left open: a continuation,
  // which is that frame's last piece unless the run is all of it and more is
  // still to come. Built before `cut` below replaces the open frame's state.
  FrameHeader c;
  const bool lead_final = !(rest != 0 && !cut);
  if (lead != 0) {
    c.fin = lead_final ? fin_ : false;
    c.rsv = 0;
    c.opcode = Opcode::continuation;
    c.masked = masked_;
    c.payload_len = lead;
    for (unsigned i = 0; i < 4; ++i) c.mask[i] = key_[(offset_ + i) & 3];
    offset_ += lead;
    if (lead_final) open_ = false;
  }
  // The frame that starts in this run and is cut at its end: its header
  // becomes a non-final frame of what arrived. The new length needs no more
  // bytes than the old one (it is smaller), so it fits where the old header
  // ended; what precedes it in the run moves up by the difference.
  if (cut) {
    const FrameHeader& h = *last_h;
    const std::size_t hl = h.header_len;
    const std::size_t payload_start = last + hl;
    FrameHeader piece = h;
    piece.fin = false;
    piece.payload_len = end - payload_start;
    if (h.masked) std::memcpy(piece.mask, buf + payload_start - 4, 4);  // as written (re-mask)
    const std::size_t nl = header_size(piece.payload_len, piece.masked);
    const std::size_t delta = hl - nl;
    if (delta != 0 && last > start) std::memmove(buf + start + delta, buf + start, last - start);
    write_header(buf + payload_start - nl, piece);
    open_ = true;
    fin_ = h.fin;
    masked_ = h.masked;
    std::memcpy(key_, piece.mask, 4);
    offset_ = piece.payload_len;
    start += delta;
  }
  if (lead != 0) {
    start -= header_size(lead, c.masked);
    write_header(buf + start, c);
  }
  return start;
}

}  // namespace weir::ws
