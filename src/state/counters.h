#pragma once
// Shared counters for the limits (docs/limits.md): token buckets (GCRA) for
// rates and slot counts for concurrency, by key. Process-wide: every
// worker's sessions of one client share it, whatever worker accepted them.
// Synchronous, so it is local only; the same operations across instances
// are state/shared_counters.h (Redis, answered asynchronously), which falls
// back to this one while Redis is down.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace weir::state {

class Counters {
 public:
  virtual ~Counters() = default;
  // One event against a bucket refilled at `rate` per second holding at most
  // `burst` (GCRA): 0 when it fits (and is taken), else the ms until it would.
  virtual std::int64_t take(std::string_view key, double rate, double burst, std::int64_t now_ms) = 0;
  // A slot under `key` if fewer than `max` are held; release() gives it back.
  virtual bool acquire(std::string_view key, std::uint32_t max) = 0;
  virtual void release(std::string_view key) = 0;
  virtual std::uint32_t held(std::string_view key) const = 0;
  // Keys kept (memory: a flood of distinct keys must not grow it for ever).
  virtual std::size_t keys() const = 0;

  // The process's store.
  static Counters& local();
};

std::unique_ptr<Counters> make_local_counters();

}  // namespace weir::state
