#pragma once
// weir-bench client side: WebSocket load on real sockets, every echoed byte
// checked. One io_context per thread; connections spread over threads.

#include <cstdint>
#include <string>
#include <vector>

#include "json_message.h"

namespace weir::bench {

struct Options {
  std::string host = "127.0.0.1";  // Host header, default SNI
  std::string address;            // what to connect to (host resolved); empty = host, an IP
  std::uint16_t port = 8080;
  std::string path = "/";
  unsigned connections = 100;
  std::size_t size = 64;          // message payload bytes
  unsigned inflight = 1;          // messages outstanding per connection (throughput)
  double duration_s = 10;
  double warmup_s = 1;
  double rate = 1000;             // messages/s over all connections (latency)
  double ping_interval_s = 5;     // hold
  unsigned threads = 1;
  std::vector<std::string> sources;  // local addresses to bind (hold: spread ports)
  // TLS (wss://), bench_tls.h. Off: the plain path runs exactly as without TLS support.
  bool tls = false;
  std::string ca;                 // verify the server against this CA file; empty = no verification
  std::string sni;                // server name sent and verified; empty = host (none for an IP)
  bool tls_resume = false;        // connect: offer the previous connection's session (ticket)
  // throughput --json-messages: text messages, each a chat-like JSON object of exactly `size`
  // bytes (at least 96) with its sequence number in it, instead of binary
  // byte patterns (for routes that validate or sanitize JSON).
  bool json = false;
  // throughput --deflate: offer permessage-deflate; where the peer accepts,
  // every message goes compressed (zlib level 1: the load generator's own
  // cost kept low) and every compressed echo is inflated, then checked.
  bool deflate = false;
};


// Log-linear histogram in microseconds (HDR-style: 64 sub-buckets per power of two).
class Histogram {
 public:
  void record(std::uint64_t us);
  void merge(const Histogram& o);
  std::uint64_t count() const { return count_; }
  std::uint64_t percentile(double p) const;
  std::uint64_t max() const { return max_; }

 private:
  static constexpr int kSub = 64;
  std::vector<std::uint64_t> buckets_ = std::vector<std::uint64_t>(64 * kSub, 0);
  std::uint64_t count_ = 0, max_ = 0;
};

struct Result {
  std::uint64_t messages = 0;     // echoes received and verified (measured window)
  std::uint64_t bytes = 0;        // payload bytes echoed (measured window)
  std::uint64_t connects = 0;     // completed connect cycles (connect mode)
  std::uint64_t alive = 0;        // hold: connections that answered the last ping
  std::uint64_t errors = 0;       // connect/handshake/IO failures
  std::uint64_t mismatches = 0;   // echoed bytes that differ from those sent
  std::uint64_t compressed_conns = 0;  // --deflate: connections that negotiated permessage-deflate
  std::uint64_t tls_handshakes = 0;  // TLS handshakes completed (measured window)
  std::uint64_t tls_resumed = 0;     // ... of which resumed a session
  std::uint64_t tls_tickets = 0;     // session tickets received on those connections
  std::string tls_info;              // first handshake: version, cipher, group, ALPN, cert key
  double seconds = 0;
  Histogram latency;
};

// Throws std::runtime_error when the TLS client cannot be set up (e.g. an unreadable --ca).
Result run_throughput(const Options& o);
Result run_latency(const Options& o);
Result run_connect(const Options& o);
Result run_hold(const Options& o);

}  // namespace weir::bench
