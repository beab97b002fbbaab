// The local Counters: a hash map per shard, each under its own mutex, so
// workers rarely wait on each other. Bucket entries that are back to full
// and slot entries at zero are dropped by a sweep when a shard grows, so a
// flood of distinct keys (addresses) does not grow memory without bound.

#include <algorithm>
#include <array>
#include <cmath>
#include <functional>
#include <mutex>
#include <unordered_map>

#include "state/counters.h"

namespace weir::state {

namespace {

struct Hash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

struct Entry {
  double tat_ms = 0;        // GCRA: theoretical arrival time of the next event
  std::uint32_t held = 0;   // concurrency slots
};

class LocalCounters final : public Counters {
 public:
  std::int64_t take(std::string_view key, double rate, double burst, std::int64_t now_ms) override {
    if (rate <= 0) return 0;
    const double interval = 1000.0 / rate;
    const double tolerance = std::max(burst, 1.0) * interval;
    Shard& s = shard(key);
    std::lock_guard lock(s.mu);
    maybe_sweep(s, now_ms);
    Entry& e = find_or_add(s, key);
    const double now = static_cast<double>(now_ms);
    const double tat = std::max(e.tat_ms, now);
    const double next = tat + interval;
    if (next - now > tolerance) return static_cast<std::int64_t>(std::ceil(next - tolerance - now));
    e.tat_ms = next;
    return 0;
  }

  bool acquire(std::string_view key, std::uint32_t max) override {
    Shard& s = shard(key);
    std::lock_guard lock(s.mu);
    Entry& e = find_or_add(s, key);
    if (e.held >= max) return false;
    ++e.held;
    return true;
  }

  void release(std::string_view key) override {
    Shard& s = shard(key);
    std::lock_guard lock(s.mu);
    const auto it = s.map.find(key);
    if (it == s.map.end() || it->second.held == 0) return;
    // A key used only for slots goes with its last one.
    if (--it->second.held == 0 && it->second.tat_ms == 0) s.map.erase(it);
  }

  std::uint32_t held(std::string_view key) const override {
    const Shard& s = shards_[Hash{}(key) % kShards];
    std::lock_guard lock(s.mu);
    const auto it = s.map.find(key);
    return it == s.map.end() ? 0 : it->second.held;
  }

  std::size_t keys() const override {
    std::size_t n = 0;
    for (const Shard& s : shards_) {
      std::lock_guard lock(s.mu);
      n += s.map.size();
    }
    return n;
  }

 private:
  static constexpr std::size_t kShards = 16;
  static constexpr std::size_t kSweepAt = 4096;  // entries in a shard before a sweep
  struct Shard {
    mutable std::mutex mu;
    std::unordered_map<std::string, Entry, Hash, std::equal_to<>> map;
    std::size_t sweep_at = kSweepAt;
  };

  Shard& shard(std::string_view key) { return shards_[Hash{}(key) % kShards]; }

  static Entry& find_or_add(Shard& s, std::string_view key) {
    auto it = s.map.find(key);
    if (it == s.map.end()) it = s.map.emplace(std::string(key), Entry{}).first;
    return it->second;
  }

  static void maybe_sweep(Shard& s, std::int64_t now_ms) {
    if (s.map.size() < s.sweep_at) return;
    const double now = static_cast<double>(now_ms);
    std::erase_if(s.map, [now](const auto& kv) { return kv.second.held == 0 && kv.second.tat_ms <= now; });
    // What is left is live: the next sweep waits until the shard doubles.
    s.sweep_at = std::max(kSweepAt, s.map.size() * 2);
  }

  std::array<Shard, kShards> shards_;
};

}  // namespace

std::unique_ptr<Counters> make_local_counters() { return std::make_unique<LocalCounters>(); }

Counters& Counters::local() {
  static const std::unique_ptr<Counters> c = make_local_counters();
  return *c;
}

}  // namespace weir::state
