#pragma once
// Session ticket keys for one listener, rotated every `rotation`: new tickets
// are sealed with the newest key, tickets under the previous one are still
// accepted (and renewed). One ring per listener for the life of the process,
// so tickets survive a certificate reload. Thread-safe: every worker's
// handshakes use it.

#include <chrono>
#include <cstdint>
#include <deque>
#include <mutex>

namespace weir::net {

class TicketKeys {
 public:
  struct Key {
    std::uint8_t name[16];
    std::uint8_t aes[32];
    std::uint8_t hmac[32];
    std::int64_t created_ms;
  };

  explicit TicketKeys(std::chrono::milliseconds rotation) : rotation_ms_(rotation.count()) {}

  // The key to seal a new ticket with (rotating first when due).
  Key current(std::int64_t now_ms);
  // The key named `name`, if still kept; *is_current tells whether tickets
  // under it should be renewed.
  bool find(const std::uint8_t name[16], Key& out, bool* is_current, std::int64_t now_ms);
  void set_rotation(std::chrono::milliseconds rotation);
  std::size_t size() const;

  // The ring for listener `index`, created on first use and never freed.
  static TicketKeys& for_listener(std::size_t index, std::chrono::milliseconds rotation);

 private:
  void rotate_locked(std::int64_t now_ms);

  mutable std::mutex mu_;
  std::int64_t rotation_ms_;
  std::deque<Key> keys_;  // newest first; at most two
};

}  // namespace weir::net
