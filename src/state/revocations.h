#pragma once
// Revoked tokens (POST /admin/revoke, docs/admin.md): by subject (`sub`, every
// token of a user) or by token id (`jti`), each until a time. The jwt filter
// refuses a revoked token at the handshake (401 "token revoked"); the admin
// API closes the live sessions that match (1008). Process-wide: every worker
// reads it, the admin thread writes it. With state.backend: redis the admin
// API also writes each revocation to Redis, and every instance adds those of
// the others here (state/shared_counters.h, SharedCounters::revoke).
//
// Reading costs one relaxed atomic load while nothing is revoked; otherwise a
// shared lock and two hash lookups, once per handshake of a jwt route.

#include <atomic>
#include <cstdint>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace weir::state {

class Revocations {
 public:
  enum class Kind : std::uint8_t { subject, token_id };
  struct Entry {
    Kind kind;
    std::string value;
    std::int64_t until_ms;  // system clock, ms since the epoch
  };
  static constexpr std::size_t kMaxEntries = 100'000;

  static Revocations& global();

  // Adds a revocation, or moves an existing one's end to the later of the
  // two. Entries past their end are dropped on the way. False when full
  // (kMaxEntries live entries).
  bool add(Kind kind, std::string value, std::int64_t until_ms, std::int64_t now_ms);
  // Whether an entry of this kind and value already lasts until `until_ms`
  // or later (a revocation learnt from another instance is then not news).
  bool covers(Kind kind, std::string_view value, std::int64_t until_ms) const;
  // Whether a token of this subject or with this id is revoked at now_ms
  // (an empty sub or jti matches nothing).
  bool revoked(std::string_view sub, std::string_view jti, std::int64_t now_ms) const;
  std::vector<Entry> list(std::int64_t now_ms) const;
  void clear();

 private:
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  using Map = std::unordered_map<std::string, std::int64_t, Hash, std::equal_to<>>;
  static bool live(const Map& m, std::string_view key, std::int64_t now_ms);

  mutable std::shared_mutex mu_;
  Map by_[2];                          // indexed by Kind
  std::atomic<std::size_t> count_{0};  // entries in both maps (0: skip the lock)
};

}  // namespace weir::state
