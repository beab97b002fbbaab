#pragma once
// Counters owned by one worker: written only by that worker's thread (relaxed
// load+store, a plain move on x86, no locked instruction on the data path),
// read and summed by anyone.

#include <atomic>
#include <cstdint>

namespace weir::obs {

class Counter {
 public:
  void add(std::uint64_t n = 1) { v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }
  std::uint64_t get() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> v_{0};
};

struct WorkerStats {
  Counter connections_accepted;
  Counter sessions_upgraded;     // 101 sent
  Counter sessions_closed;
  Counter refused;               // handshake refused with an HTTP status
  Counter handshake_timeouts;
  Counter setup_abandoned;       // client left while the upstream was being set up (499)
  Counter upstream_failures;     // connect/handshake to a backend failed
  Counter protocol_errors;       // frames that failed validation (either side)
  Counter messages_c2u, messages_u2c;
  Counter bytes_c2u, bytes_u2c;
  Counter accept_errors;         // accept() failed (e.g. EMFILE)
  Counter tls_handshakes;        // client-side TLS handshakes completed
  Counter tls_resumed;           // ... of which resumed a session (ticket or cache)
  Counter tls_handshake_failures;
  Counter buffer_failures;       // a relay buffer could not be allocated (session closed 1011)
  Counter filter_refusals;       // handshakes a filter refused (also in refused)
  Counter filter_closes;         // sessions a filter closed (message rate, size)
  Counter messages_dropped;      // messages a filter dropped
  Counter throttle_pauses;       // times a filter paused reading a side
};

}  // namespace weir::obs
