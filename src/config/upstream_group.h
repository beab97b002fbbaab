#pragma once
// Upstream groups (docs/configuration.md, "Upstream groups"): where a route's
// sessions go. A route names a group (`upstream_group:`) or lists its
// upstreams (`upstreams:`, an anonymous group with the defaults below).
// Immutable once loaded, like the rest of the config; the state that must
// outlive a reload (health, ejections, drains, live counts) is kept by
// upstream::Members, keyed by group name and member text.

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace weir::config {

using Millis = std::chrono::milliseconds;

struct Upstream {
  enum class Kind { tcp, echo };
  Kind kind = Kind::tcp;
  std::string host;      // DNS name or IP literal (tcp only)
  std::uint16_t port = 0;
  bool tls = false;      // wss://
  std::string text;      // as written in the config, for logs
  // A member made from one address of a name (resolve_interval): connect
  // to this literal, while host (the name) stays for SNI and the TLS name
  // check. Empty: resolve host per connect.
  std::string address;
};

struct GroupMember {
  Upstream up;
  std::uint32_t weight = 1;            // 1-1000
  std::uint32_t max_connections = 0;   // live sessions on this instance; 0 = no limit
  bool backup = false;                 // used only when no primary member is available
  bool drain = false;                  // configured draining: no new sessions
};

// Where the hash policy (and hash stickiness) takes its key from.
struct HashKey {
  enum class From { ip, header, cookie, query, claim };
  From from = From::ip;
  std::string name;      // header (lower-cased), cookie, query parameter, or claim path (a.b.c)
};

struct HealthCheck {
  enum class Type { none, tcp, http, websocket };
  Type type = Type::none;
  std::string path = "/";          // http and websocket
  std::string host;                // Host header; empty = the member's host:port
  unsigned expect_status = 200;    // http
  Millis interval{5'000};
  Millis timeout{2'000};
  unsigned rise = 2;               // consecutive passes to mark a member up
  unsigned fall = 3;               // consecutive failures to mark it down
};

// Passive health: failures seen by real sessions eject a member for a while.
struct OutlierDetection {
  unsigned consecutive_failures = 5;   // 0 = off
  Millis base_ejection{10'000};        // doubled per ejection in a row, up to max
  Millis max_ejection{300'000};
  unsigned max_ejected_percent = 50;   // never more of the group ejected at once
};

struct StickyCookie {
  std::string name = "weir_upstream";
  std::string key;                     // HMAC-SHA256 key (>= 16 bytes)
  Millis ttl{0};                       // Max-Age; 0 = a session cookie
  std::string path = "/";
  bool secure = false;
};

// sticky.session_map: key -> member in the Redis of state:, so any instance
// sends a returning client to the member its last session had.
struct SessionMap {
  HashKey key;                         // where the client's key comes from
  Millis ttl{1'800'000};               // after the last session of the key ended (refreshed while one lives)
};

struct Rebalance {
  bool enabled = false;
  double max_ratio = 1.25;             // busiest member's sessions / its weighted share
  unsigned max_moves_per_second = 10;  // per instance
  Millis min_age{60'000};              // never move a younger session
  Millis interval{5'000};
};

// Pre-warmed connections (docs/configuration.md, "prewarm"): idle upstream
// WebSocket connections, already past their 101, kept per member and per
// worker for routes whose backend handshake is generic. size 0 = off.
struct Prewarm {
  unsigned size = 0;                   // idle connections per member, per worker
  std::string path = "/";              // the request target of their upgrade
  Millis max_idle{60'000};             // an unused one is closed and replaced after this
  Millis ping_interval{10'000};        // a ping to each idle one this often
  Millis timeout{5'000};               // connect + handshake of one, and the wait for a pong
};

struct UpstreamGroup {
  enum class Policy { round_robin, least_conn, random_two, hash };
  std::string name;
  bool anonymous = false;              // a route's own `upstreams:` list
  Policy policy = Policy::round_robin;
  HashKey hash;                        // policy hash
  std::vector<GroupMember> members;    // never empty
  unsigned retries = 0;                // more members tried after a failed connect or upstream handshake
  bool retries_set = false;            // written in the config (else: members - 1, at most 2)
  HealthCheck health;
  OutlierDetection outlier;
  Millis slow_start{0};                // ramp of a member that comes back; 0 = off
  bool sticky_cookie = false;
  StickyCookie cookie;
  bool session_map = false;
  SessionMap map;
  Millis drain_timeout{0};             // a draining member's sessions get 1012 after this; 0 = never
  Rebalance rebalance;
  // Members given by a DNS name are re-resolved this often (off the event
  // loop, config::Resolver), each address becoming a member of its own
  // (config::with_addresses); 0 = a name is one member, resolved per connect.
  Millis resolve_interval{0};
  Prewarm prewarm;
  int line = 0, col = 0;               // where it is defined (the route's `upstreams` for anonymous groups)
};

}  // namespace weir::config
