#pragma once
// One side of a session (docs/architecture.md, "A session"): its socket,
// plain or TLS, its readiness, and where its half of the close handshake
// stands. The relay's pumps read one leg and write the other through the
// calls below, the handshake code too, so no other code touches a session's
// sockets. The client leg is always this kind; the upstream leg is made and
// opened by the route's upstream kind (proxy/upstream_leg.h).

#include <cstddef>
#include <cstdint>
#include <string>

#include "core/edges.h"
#include "net/stream.h"

struct ssl_st;

namespace weir::proxy {

struct Leg {
  int fd = -1;
  ssl_st* ssl = nullptr;           // TLS on this side (owned)
  std::int64_t last_rx_ms = 0;     // any byte read from it
  std::int64_t ping_sent_ms = 0;   // our keepalive ping outstanding since; 0 = none
  bool rx_closed = false;          // it sent a Close (or broke the protocol): ignore its input
  bool rx_eof = false;             // its read side ended (EOF, reset, timeout)
  bool close_queued = false;       // a Close to it is queued: nothing else may follow
  bool tx_closed = false;          // that Close is fully written
  bool tx_dead = false;            // writing to it failed
  bool tls_drained = false;        // TLS: the socket BIO's last recv() came back short, no edge since
  core::Edges io;                  // its readiness edges and waits

  // Reads the next chunk of a head being collected onto `in` (never more
  // than max in all). Chunks start small and double: thousands of
  // handshakes in flight must not each pin the maximum (which would also
  // leave the heap fragmented once they are freed).
  net::IoResult read_head(std::string& in, std::size_t max);
  // Reads up to n bytes. Uses up the edges seen so far; a read that would
  // block notes which edge ends its wait (TLS may need to write first).
  net::IoResult read(void* buf, std::size_t n);
  // Writes a, then b (may be empty), as net::write_some; notes the same.
  net::IoResult write(const void* a, std::size_t an, const void* b = nullptr, std::size_t bn = 0);
  // After a short read of n < asked: nothing more is there until the next
  // readable edge (TLS: OpenSSL holds nothing and the socket was drained).
  bool drained() const;
  // Its Close handshake is over, or it is gone: nothing more to do with it.
  bool finished() const { return rx_eof || tx_dead || (rx_closed && tx_closed); }
  // Lost: no more reads or writes either way (the socket stays open until close()).
  void cut();
  // Closes the socket (which also takes it out of the poller) and forgets
  // its edges. Its TLS state stays (freed with the session).
  void close();
};

}  // namespace weir::proxy
