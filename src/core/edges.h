#pragma once
// The readiness of one socket registered edge-triggered in the worker's
// ReadyPoller for good, kept as flags on its owner: an edge that arrives
// while nobody waits is remembered and used by the next wait, so a wait
// costs no syscall and no edge is lost. A session keeps one per side; any
// other socket a worker drives (Redis, a JWKS fetch, a health check) keeps
// one the same way and calls note() from its on_ready().
//
// TLS may need the other direction to make progress (a read that must
// write a record, a write that must read one): a wait says which edge ends it.

#include <cstdint>

namespace weir::core {

struct Edges {
  bool rx = false;                 // readable edge seen since the last attempt
  bool tx = false;                 // writable edge seen since the last attempt
  bool read_armed = false;         // a read waits for its edge
  bool write_armed = false;        // a write waits for its edge
  bool read_wants_write = false;   // that read ends on a writable edge (TLS)
  bool write_wants_read = false;   // that write ends on a readable edge (TLS)

  // Notes the events of one on_ready(); returns true when they include a
  // readable edge (EOF, errors and hang-ups count as readable and writable).
  bool note(std::uint32_t events);

  // Before an I/O attempt: the edges seen so far are used up by it (if it
  // blocks, the edge that ends the wait is a new one). TLS may read and
  // write in one call, so both.
  void begin_io() { rx = tx = false; }

  // An edge of that kind (writable, else readable) came since the last
  // attempt: uses it up and returns true (the caller tries again now).
  bool take(bool writable) {
    bool& edge = writable ? tx : rx;
    const bool came = edge;
    edge = false;
    return came;
  }

  // Arms a read (write) wait. Returns true, armed nothing and used the edge
  // up when the edge it waits for came since the last attempt: the caller
  // tries again now (from a deferred call, not recursively).
  bool arm_read() { return arm(read_armed, read_wants_write ? tx : rx); }
  bool arm_write() { return arm(write_armed, write_wants_read ? rx : tx); }

  // Which armed waits the edges seen so far end, decided for both before
  // either runs (a retried write must not use up the edge a read waits
  // for). The caller disarms a wait as it runs it.
  struct Due {
    bool read = false, write = false;
  };
  Due due() const {
    return {read_armed && (read_wants_write ? tx : rx), write_armed && (write_wants_read ? rx : tx)};
  }

  void reset() { *this = Edges{}; }

 private:
  static bool arm(bool& armed, bool& edge) {
    if (armed) return false;
    if (edge) {
      edge = false;
      return true;
    }
    armed = true;
    return false;
  }
};

}  // namespace weir::core
