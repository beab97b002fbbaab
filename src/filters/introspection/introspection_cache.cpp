#include "filters/introspection/introspection_cache.h"

#include <algorithm>

namespace weir::filters {

std::shared_ptr<const Introspected> IntrospectionCache::find(const std::string& key, std::int64_t now_ms) {
  auto it = map_.find(key);
  if (it == map_.end()) return nullptr;
  if (now_ms >= it->second.expires_ms) {
    erase(it);
    return nullptr;
  }
  lru_.splice(lru_.begin(), lru_, it->second.lru);
  return it->second.value;
}

void IntrospectionCache::put(const std::string& key, std::shared_ptr<const Introspected> r, std::int64_t now_ms) {
  if (!r || l_.max_entries == 0) return;
  std::int64_t expires = now_ms + (r->active ? l_.ttl_ms : l_.inactive_ttl_ms);
  // exp in seconds; one near INT64_MAX must not overflow.
  if (r->active && r->exp) expires = std::min(expires, *r->exp > INT64_MAX / 1000 ? INT64_MAX : *r->exp * 1000);
  if (expires <= now_ms) return;
  if (auto it = map_.find(key); it != map_.end()) erase(it);
  while (map_.size() >= l_.max_entries) erase(map_.find(lru_.back()));
  lru_.push_front(key);
  map_.emplace(key, Entry{std::move(r), expires, lru_.begin()});
}

void IntrospectionCache::erase(std::unordered_map<std::string, Entry>::iterator it) {
  lru_.erase(it->second.lru);
  map_.erase(it);
}

}  // namespace weir::filters
