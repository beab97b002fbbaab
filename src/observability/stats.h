#pragma once
// A worker's own counters of events that have no route (accepts, TLS, the
// buffer pool): written only by that worker's thread, read and summed by
// anyone (the server exports them, docs/metrics.md). What a route's sessions
// do is counted in the metrics registry by route (proxy/route_metrics.h).

#include "observability/metrics.h"

namespace weir::obs {

struct WorkerStats {
  Counter connections_accepted;
  Counter sessions_upgraded;     // 101 sent
  Counter sessions_closed;
  Counter accept_errors;         // accept() failed (e.g. EMFILE)
  Counter tls_handshakes;        // client-side TLS handshakes completed
  Counter tls_resumed;           // ... of which resumed a session (ticket or cache)
  Counter tls_handshake_failures;
  Counter buffer_failures;       // a relay buffer could not be allocated (session closed 1011)
};

}  // namespace weir::obs
