#pragma once
// The introspection result cache: answers by token digest, bounded in
// entries (the least recently used goes first) and in time. Not thread-safe:
// its owner (Introspector) holds a mutex around every call. Times are wall
// clock ms since the epoch, as a token's exp is.
//
// Policy (RFC 7662 4: a cached answer extends the life of a revoked token by
// up to its TTL, so the TTL is the operator's trade between that window and
// the endpoint's load):
//  - an active answer lives `ttl`, never past the token's exp;
//  - an inactive one lives `inactive_ttl` (0: not cached), so a client
//    retrying a dead token does not reach the endpoint each time;
//  - failures (endpoint down, 5xx, malformed) are never cached.

#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <string>
#include <unordered_map>

#include "filters/introspection/introspection_response.h"

namespace weir::filters {

class IntrospectionCache {
 public:
  struct Limits {
    std::size_t max_entries = 10000;
    std::int64_t ttl_ms = 60'000;
    std::int64_t inactive_ttl_ms = 10'000;
  };
  explicit IntrospectionCache(Limits l) : l_(l) {}

  // The live answer for this key at now_ms, or null (an expired one is
  // dropped). A hit becomes the most recently used.
  std::shared_ptr<const Introspected> find(const std::string& key, std::int64_t now_ms);
  // Keeps an answer under the policy above (an active token whose exp has
  // passed, or a zero TTL, is not kept). Evicts the least recently used
  // entry when full.
  void put(const std::string& key, std::shared_ptr<const Introspected> r, std::int64_t now_ms);
  std::size_t size() const { return map_.size(); }
  const Limits& limits() const { return l_; }

 private:
  struct Entry {
    std::shared_ptr<const Introspected> value;
    std::int64_t expires_ms;
    std::list<std::string>::iterator lru;  // into lru_ (front: most recent)
  };
  void erase(std::unordered_map<std::string, Entry>::iterator it);

  Limits l_;
  std::unordered_map<std::string, Entry> map_;
  std::list<std::string> lru_;
};

}  // namespace weir::filters
