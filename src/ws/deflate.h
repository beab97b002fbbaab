#pragma once
// permessage-deflate (RFC 7692), as Weir terminates it on inspecting routes:
// the negotiation on either leg (Weir is the server towards clients and the
// client towards backends) and the two zlib codecs. I/O-free; zlib stays in
// deflate.cpp (pimpl), so this header is cheap to include.
//
// Memory: a codec holds no zlib stream until its first message (an idle
// connection that negotiated the extension costs a few pointers). Then an
// inflater costs about (1 << window_bits) + 7 KiB, a deflater about
// (1 << (window_bits + 2)) + (1 << (memory_level + 9)) (zlib's zconf.h);
// deflate_memory_in_use() reports what is live, counted at zlib's allocator.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace weir::ws {

// Weir's own settings (a route's `compression:`; docs/configuration.md).
struct DeflateSettings {
  bool enabled = true;           // false: inspecting routes negotiate nothing (as before)
  int window_bits = 15;          // Weir's compressor window, 9-15 (zlib cannot do 8)
  int peer_window_bits = 15;     // the largest window Weir asks a peer to compress with, 9-15
  int memory_level = 8;          // zlib memLevel of Weir's compressor, 1-9
  int level = 6;                 // zlib compression level, 1-9
  bool context_takeover = true;  // false: both ways, every message compressed on its own
  bool operator==(const DeflateSettings&) const = default;
};

// What one leg agreed, in RFC 7692's terms (server = the side that sent the 101).
struct DeflateParams {
  bool server_no_context_takeover = false;
  bool client_no_context_takeover = false;
  int server_max_window_bits = 15;
  int client_max_window_bits = 15;
};

// One side's view of a leg: how it inflates what it reads and deflates what it writes.
struct DeflateDirections {
  int inflate_window_bits = 15;
  bool inflate_reset = false;    // the peer compresses every message on its own
  int deflate_window_bits = 15;
  bool deflate_reset = false;    // Weir compresses every message on its own
};
// Weir as the server (the client leg) or as the client (the backend leg).
DeflateDirections directions(const DeflateParams& p, bool weir_is_server);

// Server side. `offers`: every Sec-WebSocket-Extensions value of the
// request, in order. The first permessage-deflate offer Weir can accept wins;
// offers with unknown, repeated or invalid parameters, or one Weir cannot
// honour (server_max_window_bits=8), are declined (RFC 7692 5, 7.1).
// nullopt: none accepted (the extension is not used on this leg).
struct DeflateAccept {
  DeflateParams params;
  std::string response;          // the Sec-WebSocket-Extensions value for the 101
};
std::optional<DeflateAccept> accept_offer(const std::vector<std::string_view>& offers,
                                          const DeflateSettings& s);

// Client side: Weir's offer to a backend, and its check of the backend's
// answer (every Sec-WebSocket-Extensions value of the 101). Returns false
// with `why` when the answer is invalid (the upstream handshake fails);
// true with params set when permessage-deflate was accepted, or true with
// params unset when the backend declined.
std::string client_offer(const DeflateSettings& s);
bool check_response(const std::vector<std::string_view>& values, const DeflateSettings& s,
                    std::optional<DeflateParams>& params, std::string& why);

// Bytes zlib holds, summed over every codec of this process (all threads).
std::int64_t deflate_memory_in_use();

// Inflates whole messages of one direction. Output per message is bounded:
// past max_out bytes inflation stops (a zip bomb costs at most that much work).
class Inflater {
 public:
  enum class Status : std::uint8_t { ok, too_big, bad_data, no_memory };
  Inflater(int window_bits, bool reset_each_message);
  ~Inflater();
  Inflater(const Inflater&) = delete;
  Inflater& operator=(const Inflater&) = delete;
  // in: a message's payload as it came (the 00 00 ff ff tail removed by the
  // sender). out is replaced by the inflated message.
  Status inflate(std::string_view in, std::string& out, std::uint64_t max_out);
  bool allocated() const { return impl_ != nullptr; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;   // created by the first message
  int window_bits_;
  bool reset_;
};

class Deflater {
 public:
  Deflater(int window_bits, bool reset_each_message, int memory_level = 8, int level = 6);
  ~Deflater();
  Deflater(const Deflater&) = delete;
  Deflater& operator=(const Deflater&) = delete;
  // Appends the compressed message (without the 00 00 ff ff tail) to out;
  // false when zlib fails (out of memory).
  bool deflate(std::string_view in, std::string& out);
  bool allocated() const { return impl_ != nullptr; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int window_bits_, memory_level_, level_;
  bool reset_;
};

}  // namespace weir::ws
