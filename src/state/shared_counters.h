#pragma once
// The limits' counters shared by several Weir instances through Redis
// (state: {backend: redis}), and the revocations they share. Asynchronous: a handshake's rate and slot checks
// go to Redis as one script call and the answer comes back on the asking
// worker, so the connection-limit filters answer pending meanwhile. hiredis
// stays in redis_counters.cpp; this header is all the filters see.
//
// While Redis is down (up() false, or an answer lost with the connection)
// the caller falls back to Counters::local() or refuses with 503, as
// on_redis_down says; this store reconnects with backoff on its own.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "state/revocations.h"

namespace weir::core {
class Worker;
}
namespace weir::config {
struct SharedState;
}

namespace weir::state {

// One handshake's limits, checked and taken at once: every rate in order
// (each spends its token; the first that has none refuses), then every slot
// (all taken, or none when one is full). Keys are the filters' own
// (connection_limits: "r|route|ip|1.2.3.4|rate"); the store prefixes them.
struct Admission {
  struct Rate {
    std::string key;
    double rate = 0, burst = 1;  // events per second; bucket size
  };
  struct Slot {
    std::string key;
    std::uint32_t max = 0;
  };
  std::vector<Rate> rates;
  std::vector<Slot> slots;
};

struct AdmissionResult {
  enum class Kind : std::uint8_t { admitted, rate_refused, slot_refused, unavailable };
  Kind kind = Kind::unavailable;
  std::size_t index = 0;        // refused: which rate or slot of the Admission
  std::int64_t retry_ms = 0;    // rate_refused: until its next token
};

class SharedCounters {
 public:
  virtual ~SharedCounters() = default;
  // Worker thread. `done` runs later on `worker`, never inline; on admitted
  // the slots are held until release(). unavailable: Redis could not answer
  // (nothing is held).
  virtual void admit(Admission a, core::Worker& worker, std::function<void(AdmissionResult)> done) = 0;
  // Any thread: up to `want` tokens of the bucket `key` (refilled at `rate`
  // per second up to `burst`, GCRA in Redis), for a local budget spent
  // without a round trip (message_rate per: user). `done` runs on the Redis
  // thread (keep it short: take a lock, add, return) with what was granted
  // and the ms until the bucket has a token again; ok false: no answer.
  virtual void lease(std::string key, double rate, double burst, double want,
                     std::function<void(double granted, std::int64_t wait_ms, bool ok)> done) = 0;
  // Any thread: gives back slots an admitted Admission took.
  virtual void release(std::vector<std::string> keys) = 0;
  // Revocations shared by the instances (POST /admin/revoke). revoke(): any
  // thread; written to Redis now, or when it is back (kept meanwhile, in
  // order). The listener runs on the Redis thread with the revocations of
  // other instances as they come (within about 200 ms), and with every one
  // in force after each (re)connect, this instance's own included (the
  // caller skips what it already knows: Revocations::covers). Set it before
  // the first connect can answer, i.e. right after start.
  virtual void revoke(Revocations::Entry e) = 0;
  virtual void on_revoked(std::function<void(std::vector<Revocations::Entry>)> listener) = 0;
  // Upstream groups' sticky.session_map: key (the store prefixes it) ->
  // member. find(): worker thread; `done` runs later on `worker` with the
  // value, "" when there is none or Redis cannot answer. hold(): a session
  // of the key began on `value` (SET with the ttl, again every ttl/3 while
  // any session of the key lives, and after every reconnect); unhold(): one
  // ended (after the last, the ttl runs from now). Any thread.
  virtual void find(std::string key, core::Worker& worker, std::function<void(std::string)> done) = 0;
  virtual void hold(std::string key, std::string value, std::int64_t ttl_ms) = 0;
  virtual void unhold(std::string key) = 0;
  // Connected, scripts loaded, this instance's leases in place.
  virtual bool up() const = 0;
  virtual bool refuse_when_down() const = 0;
  virtual std::string endpoint() const = 0;  // host:port/db, for /readyz

  // The process's store, or null when the limits are local only. Set once
  // at start (before workers run) and cleared after they stopped.
  static SharedCounters* get();
  static void set(SharedCounters* s);
};

// Starts the store's I/O thread and its first connection attempt.
std::unique_ptr<SharedCounters> start_redis_counters(const config::SharedState& settings);

}  // namespace weir::state
