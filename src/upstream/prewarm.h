#pragma once
// Pre-warmed upstream connections (docs/configuration.md, "prewarm"): per
// worker, per member of each group with `prewarm`, up to `size` idle
// WebSocket connections that already got their 101, so a session of a route
// with `generic_upstream_handshake` gets its upstream with one local hop.
//
// Ownership: one PrewarmPools per worker (proxy::WorkerGateway), touched by
// that worker's thread only, like every other socket of its sessions: no
// lock anywhere. `size` is therefore per worker (an instance holds
// size x members x workers idle connections), so a worker never waits for
// another's pool.
//
// Lifecycle of a pooled connection: connect (+ TLS for wss:// members, with
// the group's upstream_tls) + upgrade (GET `path`, no client header) within
// `timeout`; idle, read all the time (a backend Close, EOF or
// reset discards it at once, a backend ping is answered); pinged every
// `ping_interval`, discarded when the pong is later than `timeout`; closed
// after `max_idle` unused; closed when its member stops being available
// (down, ejected, draining); handed out by take() after a last non-blocking
// read shows it still open. Every discard is refilled in the background,
// while the member is available; failed fills back off (1 s doubling to 30 s).
//
// The pools run on the worker's io_context (off the data path); a connection
// handed out leaves Asio and becomes a plain non-blocking descriptor.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "http/head.h"
#include "upstream/idle_scan.h"

struct ssl_st;

namespace weir::core {
class Worker;
}
namespace weir::net {
class TlsClient;
}

namespace weir::upstream {

class Group;

// A connection taken from a pool: open, past its 101, not in any poller.
struct Pooled {
  Pooled() = default;
  Pooled(const Pooled&) = delete;
  Pooled& operator=(const Pooled&) = delete;
  ~Pooled();
  int fd = -1;               // the taker owns it (closed here when still >= 0)
  // wss:// members: the TLS session over fd, handshake done (the taker owns
  // it and binds it to its own drained flag with net::attach_socket; freed
  // here when still set).
  ssl_st* ssl = nullptr;
  std::string head;          // the backend's 101, as received
  http::Head response;       // parsed, views into head
  std::string early;         // frame bytes the backend sent after the 101 (a greeting), unread
};

class PrewarmPools {
 public:
  // echo_port: the built-in echo upstream's port on 127.0.0.1 (0: none).
  PrewarmPools(core::Worker& worker, std::uint16_t echo_port);
  ~PrewarmPools();
  PrewarmPools(const PrewarmPools&) = delete;
  PrewarmPools& operator=(const PrewarmPools&) = delete;

  // Worker thread: the groups of the generation new sessions get (at start
  // and after each reload). Pools are kept per member state and path, so a
  // reload that keeps a member keeps its idle connections; the others are
  // closed. Starts filling at once.
  // tls: by group, its upstream TLS client (null: none), as Runtime::group_tls.
  void set_groups(const std::vector<std::shared_ptr<const Group>>& groups,
                  const std::vector<std::shared_ptr<const net::TlsClient>>& tls);

  // Worker thread: an idle connection to member i of g, or null (no pool, or
  // none idle: a miss, counted; the caller connects as usual). Refills.
  std::unique_ptr<Pooled> take(const Group& g, std::size_t i);

  // Idle connections to member i of g on this worker (tests, admin).
  std::size_t idle(const Group& g, std::size_t i) const;

  // Closes everything; nothing is refilled after it.
  void stop();

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

// Declares a prewarm group's series at 0 (docs/metrics.md).
void declare_prewarm_metrics(const Group& g);
// Idle pre-warmed connections to member i of g, all workers (the gauge);
// -1 when g has no prewarm. Any thread.
std::int64_t prewarm_idle(const Group& g, std::size_t i);



}  // namespace weir::upstream
