#include "net/ticket_keys.h"

#include <openssl/rand.h>

#include <cstring>
#include <map>
#include <memory>
#include <stdexcept>

namespace weir::net {

void TicketKeys::rotate_locked(std::int64_t now_ms) {
  Key k{};
  if (RAND_bytes(k.name, sizeof k.name) != 1 || RAND_bytes(k.aes, sizeof k.aes) != 1 ||
      RAND_bytes(k.hmac, sizeof k.hmac) != 1) {
    throw std::runtime_error("RAND_bytes failed for a session ticket key");
  }
  k.created_ms = now_ms;
  keys_.push_front(k);
  while (keys_.size() > 2) keys_.pop_back();
}

TicketKeys::Key TicketKeys::current(std::int64_t now_ms) {
  std::lock_guard lock(mu_);
  if (keys_.empty() || now_ms - keys_.front().created_ms >= rotation_ms_) rotate_locked(now_ms);
  return keys_.front();
}

bool TicketKeys::find(const std::uint8_t name[16], Key& out, bool* is_current, std::int64_t now_ms) {
  std::lock_guard lock(mu_);
  for (std::size_t i = 0; i < keys_.size(); ++i) {
    const Key& k = keys_[i];
    if (std::memcmp(k.name, name, sizeof k.name) != 0) continue;
    // A key is accepted for two rotation periods after it was made current.
    if (now_ms - k.created_ms >= 2 * rotation_ms_) return false;
    out = k;
    *is_current = i == 0 && now_ms - k.created_ms < rotation_ms_;
    return true;
  }
  return false;
}

void TicketKeys::set_rotation(std::chrono::milliseconds rotation) {
  std::lock_guard lock(mu_);
  rotation_ms_ = rotation.count();
}

std::size_t TicketKeys::size() const {
  std::lock_guard lock(mu_);
  return keys_.size();
}

TicketKeys& TicketKeys::for_listener(std::size_t index, std::chrono::milliseconds rotation) {
  static std::mutex mu;
  static std::map<std::size_t, std::unique_ptr<TicketKeys>>* rings = new std::map<std::size_t, std::unique_ptr<TicketKeys>>();
  std::lock_guard lock(mu);
  auto& ring = (*rings)[index];
  if (!ring) {
    ring = std::make_unique<TicketKeys>(rotation);
  } else {
    ring->set_rotation(rotation);
  }
  return *ring;
}

}  // namespace weir::net
