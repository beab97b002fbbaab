#include "state/revocations.h"

#include <algorithm>

namespace weir::state {

Revocations& Revocations::global() {
  static Revocations r;
  return r;
}

bool Revocations::add(Kind kind, std::string value, std::int64_t until_ms, std::int64_t now_ms) {
  std::unique_lock lock(mu_);
  for (auto& m : by_) std::erase_if(m, [now_ms](const auto& e) { return e.second <= now_ms; });
  Map& m = by_[static_cast<int>(kind)];
  auto it = m.find(value);
  if (it != m.end()) {
    it->second = std::max(it->second, until_ms);
  } else if (by_[0].size() + by_[1].size() >= kMaxEntries) {
    count_.store(by_[0].size() + by_[1].size(), std::memory_order_relaxed);
    return false;
  } else {
    m.emplace(std::move(value), until_ms);
  }
  count_.store(by_[0].size() + by_[1].size(), std::memory_order_relaxed);
  return true;
}

bool Revocations::live(const Map& m, std::string_view key, std::int64_t now_ms) {
  if (key.empty()) return false;
  const auto it = m.find(key);
  return it != m.end() && it->second > now_ms;
}

bool Revocations::covers(Kind kind, std::string_view value, std::int64_t until_ms) const {
  std::shared_lock lock(mu_);
  const Map& m = by_[static_cast<int>(kind)];
  const auto it = m.find(value);
  return it != m.end() && it->second >= until_ms;
}

bool Revocations::revoked(std::string_view sub, std::string_view jti, std::int64_t now_ms) const {
  if (count_.load(std::memory_order_relaxed) == 0) return false;
  std::shared_lock lock(mu_);
  return live(by_[static_cast<int>(Kind::subject)], sub, now_ms) ||
         live(by_[static_cast<int>(Kind::token_id)], jti, now_ms);
}

std::vector<Revocations::Entry> Revocations::list(std::int64_t now_ms) const {
  std::vector<Entry> out;
  std::shared_lock lock(mu_);
  for (int k = 0; k < 2; ++k)
    for (const auto& [value, until] : by_[k])
      if (until > now_ms) out.push_back({static_cast<Kind>(k), value, until});
  std::sort(out.begin(), out.end(), [](const Entry& a, const Entry& b) { return a.until_ms < b.until_ms; });
  return out;
}

void Revocations::clear() {
  std::unique_lock lock(mu_);
  by_[0].clear();
  by_[1].clear();
  count_.store(0, std::memory_order_relaxed);
}

}  // namespace weir::state
