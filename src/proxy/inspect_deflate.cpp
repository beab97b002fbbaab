// The inspecting pump's side of permessage-deflate (docs/architecture.md,
// "The inspecting pump"): a compressed message is inflated before the
// filters see it, bounded by the route's max_message_bytes (a zip bomb ends
// in 1009 after at most that many bytes of work), and what goes out to a leg
// that negotiated the extension is compressed again. Frames Weir makes
// itself (pings, Close) stay uncompressed, which RFC 7692 allows.

#include "proxy/inspect.h"
#include "ws/utf8.h"

namespace weir::proxy {

namespace {
constexpr std::size_t kKeepScratch = 64 * 1024;
}

void setup_deflate(InspectState& st, bool from_client, const std::optional<ws::DeflateParams>& client_leg,
                   const std::optional<ws::DeflateParams>& upstream_leg, const ws::DeflateSettings& s) {
  const auto& in = from_client ? client_leg : upstream_leg;
  const auto& to = from_client ? upstream_leg : client_leg;
  // Weir is the server on the client leg, the client on the upstream leg.
  if (in) {
    const ws::DeflateDirections d = ws::directions(*in, /*weir_is_server=*/from_client);
    st.inflater = std::make_unique<ws::Inflater>(d.inflate_window_bits, d.inflate_reset);
  }
  if (to) {
    const ws::DeflateDirections d = ws::directions(*to, /*weir_is_server=*/!from_client);
    st.deflater = std::make_unique<ws::Deflater>(d.deflate_window_bits, d.deflate_reset, s.memory_level, s.level);
  }
}

bool InspectSink::inflate_message() {
  const auto fail = [&](std::uint16_t code, const char* reason) {
    st.stopped = true;
    out.stop_code = code;
    out.stop_reason = reason;
    out.stop_is_protocol = true;  // the sender's fault, not a filter's ruling
    return false;
  };
  // The scanner lets RSV1 through only from a leg that negotiated it.
  if (!st.inflater) return fail(ws::close_code::protocol_error, "compressed message without permessage-deflate");
  switch (st.inflater->inflate(st.message, st.scratch, max_message)) {
    case ws::Inflater::Status::ok:
      break;
    case ws::Inflater::Status::too_big:
      return fail(ws::close_code::too_big, "message too big when inflated");
    case ws::Inflater::Status::bad_data:
      return fail(ws::close_code::invalid_payload, "invalid compressed data");
    case ws::Inflater::Status::no_memory:
      return fail(ws::close_code::internal_error, "out of memory");
  }
  st.message.swap(st.scratch);
  if (st.scratch.capacity() > kKeepScratch) std::string().swap(st.scratch);
  // The scanner could not check compressed text (strict mode).
  if (check_utf8 && st.opcode == ws::Opcode::text && !ws::is_valid_utf8(st.message))
    return fail(ws::close_code::invalid_payload, "invalid UTF-8 in text message");
  return true;
}

std::string_view InspectSink::deflate_message(std::string_view payload, std::uint8_t* rsv) {
  st.scratch.clear();
  // A failure (out of memory) sends the message uncompressed: RSV1 says which.
  if (!st.deflater->deflate(payload, st.scratch)) return payload;
  *rsv |= 0x4;
  return st.scratch;
}

}  // namespace weir::proxy
