#pragma once
// Weir's configuration: immutable typed structs built once from YAML (see
// docs/configuration.md). Workers share one snapshot through
// std::shared_ptr<const Config>; nothing here is mutated after loading.

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "config/upstream_group.h"
#include "net/cidr.h"
#include "ws/deflate.h"

namespace weir::config {

struct FilterSettings;

using Millis = std::chrono::milliseconds;

struct Timeouts {
  Millis handshake{10'000};          // client request headers must arrive within this
  Millis connect{5'000};             // TCP connect to an upstream
  Millis upstream_handshake{10'000}; // upstream's 101 must arrive within this
  Millis idle{300'000};              // no frame either way -> close 1001; 0 = off
  Millis max_lifetime{0};            // hard cap on a session; 0 = unlimited
  Millis close{5'000};               // wait for the close handshake/TCP FIN after a Close
  bool operator==(const Timeouts&) const = default;
};

struct Limits {
  std::uint32_t max_header_bytes = 8 * 1024;         // whole request head -> 431
  std::uint64_t max_frame_bytes = 16ull << 20;        // one frame's payload -> 1009
  std::uint64_t max_message_bytes = 64ull << 20;      // one message (all fragments) -> 1009
  std::uint32_t buffer_bytes = 64 * 1024;             // per-direction relay buffer = high watermark
  // Connections from one address (the socket peer) still in their handshake
  // at once; past it a new one is closed unanswered (slowloris). 0 = off.
  std::uint32_t max_pending_handshakes_per_ip = 0;    // top level only
  bool operator==(const Limits&) const = default;
};

struct Keepalive {
  Millis interval{0};    // ping a peer silent for this long; 0 = off
  Millis timeout{10'000}; // no byte from it within this after the ping -> close
  bool operator==(const Keepalive&) const = default;
};

// Where a value came from, so that problems found after loading (a
// certificate that does not parse, a key that does not match) can still be
// reported as file:line:col.
struct SourcePos {
  int line = 0, col = 0;
};

// A file named in the config, read when TLS contexts are built (at start and
// on SIGHUP), not by the loader.
struct FileRef {
  std::string path;      // relative paths resolved against the config's directory
  SourcePos pos;
  bool empty() const { return path.empty(); }
};

struct TlsCertificate {
  FileRef cert;                      // PEM chain, leaf first
  FileRef key;                       // PEM private key
  FileRef ocsp;                      // optional DER OCSP response to staple
  std::vector<std::string> names;    // SNI names (lower-case, "*.x" wildcards); empty = from the cert
  SourcePos pos;                     // the list entry
};

struct ListenerTls {
  enum class ClientCert { none, optional, require };
  std::vector<TlsCertificate> certificates;  // never empty; the first is the default
  int min_version = 0x0303;                  // TLS1_2_VERSION or TLS1_3_VERSION
  std::string ciphers;                       // TLS 1.2 cipher list; empty = OpenSSL's default
  std::string ciphersuites;                  // TLS 1.3; empty = OpenSSL's default
  bool session_tickets = true;
  Millis ticket_key_rotation{3'600'000};
  std::uint32_t session_cache = 20'000;      // server-side cache entries; 0 = off
  FileRef client_ca;
  ClientCert client_cert = ClientCert::none;
  bool strict_sni = false;                   // unknown SNI name -> handshake refused
  Millis handshake_timeout{10'000};
  SourcePos pos;                             // the `tls` key
};

struct UpstreamTls {
  FileRef ca;                  // empty = the system's CA store
  bool verify = true;          // false: no certificate or host name check
  std::string server_name;     // SNI and name to verify; empty = the upstream's host
  FileRef cert, key;           // client certificate (mTLS to the backend)
  SourcePos pos;
};

struct HeaderMatch {
  std::string name;      // lower-cased
  std::string value;     // exact, case-sensitive
  bool operator==(const HeaderMatch&) const = default;
};

struct RouteMatch {
  std::string host;              // empty = any; "*.example.com" matches one or more labels
  std::string path = "/";        // exact path, or prefix when path_prefix
  bool path_prefix = true;
  std::vector<HeaderMatch> headers;
};

// timeouts.handshake and limits.max_header_bytes apply before a route is
// chosen, so the loader refuses them in a route: they live in Config.
struct Route {
  std::string name;
  RouteMatch match;
  // Its group (named in `upstream_groups`, or its own `upstreams:` list);
  // upstreams are the group's members in order, for what only needs them.
  std::shared_ptr<const UpstreamGroup> group;
  std::vector<Upstream> upstreams;   // never empty
  // Its filters in chain order (config/filter_types.h): each a filter type's
  // parsed settings, e.g. origins, message_rate, max_message.
  std::vector<std::shared_ptr<const FilterSettings>> filters;
  bool remask = false;               // re-mask client frames with fresh keys
  bool strict = false;               // Weir itself checks UTF-8 of text messages (1007)
  // The backend needs nothing of the client's request (headers, cookies,
  // subprotocol, extensions): a pre-warmed connection of its group may serve
  // the session (docs/configuration.md, "generic_upstream_handshake").
  bool generic_upstream_handshake = false;
  // Rebalancing may move this route's sessions of a sticky group (and a
  // returning sticky client whose member is over its share is re-picked);
  // else they stay pinned where their cookie or session map sent them.
  bool rebalance_sticky = false;
  UpstreamTls upstream_tls;          // for the route's wss:// upstreams
  Timeouts timeouts;
  Limits limits;
  Keepalive keepalive;
  // permessage-deflate where Weir terminates it (inspecting routes):
  // docs/configuration.md, "compression".
  ws::DeflateSettings compression;
};

struct Listener {
  std::string address = "127.0.0.1";
  std::uint16_t port = 8080;         // 0 = any free port (logged on start)
  std::optional<ListenerTls> tls;    // set: wss:// (TLS is terminated here)
  // Peers in trusted_proxies must start with a PROXY protocol header (v1 or
  // v2); other peers are read as they are (a header from them is garbage).
  bool proxy_protocol = false;
  SourcePos proxy_protocol_pos;
  // Allow/deny by client address for every request on this listener, before
  // any route is matched (the same rules as a route's ip_policy filter:
  // filters/ip_policy/). Null: none.
  std::shared_ptr<const FilterSettings> ip_policy;
};

// The admin listener (docs/admin.md): probes, metrics, the admin API and
// the dashboard, on a port of its own.
struct Admin {
  bool enabled = true;
  bool configured = false;           // the file has an `admin` block (then a failed bind stops Weir)
  std::string address = "127.0.0.1";
  std::uint16_t port = 9901;         // 0 = any free port (logged)
  std::string token;                 // bearer token; empty = none (then loopback only)
  Millis upstream_probe_interval{5'000};  // TCP probe of each upstream for /readyz; 0 = off
  SourcePos pos;
};

// How upstream groups with resolve_interval look names up (top-level
// `resolver`): c-ares, with these servers or the system's (resolv.conf,
// and /etc/hosts first).
struct Resolver {
  std::vector<std::string> nameservers;  // "host:port" / "[v6]:port" literals; empty = the system's
  Millis timeout{2'000};                 // per lookup, all tries
  bool operator==(const Resolver&) const = default;
};

// Where the limits' counters live (top-level `state`, docs/configuration.md).
// Read at start only: a reload that changes it is logged and not applied.
struct SharedState {
  enum class Backend : std::uint8_t { local, redis };
  Backend backend = Backend::local;
  std::string host;                  // redis: name or address literal (no brackets)
  std::uint16_t port = 6379;
  unsigned db = 0;                   // SELECT
  std::string password;              // AUTH; empty = none
  bool refuse_when_down = false;     // on_redis_down: refuse (503) | local (default)
  Millis lease_ttl{15'000};          // a dead instance's slots expire after this
  std::string key_prefix = "weir:";
  SourcePos pos;
};

struct Config {
  unsigned workers = 0;              // 0 = auto (one per core)
  std::vector<Listener> listeners;
  std::vector<Route> routes;
  std::vector<std::shared_ptr<const UpstreamGroup>> upstream_groups;  // the named ones
  Admin admin;
  SharedState state;
  Resolver resolver;
  // Peers whose X-Forwarded-For is believed (net::client_from_forwarded):
  // the client address filters see is then the last untrusted hop.
  std::vector<net::Cidr> trusted_proxies;
  Millis drain{10'000};              // SIGTERM: wait this long for sessions, then 1001
  // Before a route is chosen (top-level timeouts.handshake, limits.max_header_bytes).
  Millis handshake_timeout{10'000};
  std::uint32_t max_header_bytes = 8 * 1024;
  std::uint32_t max_pending_handshakes_per_ip = 0;  // limits.max_pending_handshakes_per_ip
  // Reload: sessions of a route the new config no longer has get Close 1012
  // after this long (0 = at once).
  Millis removed_route_grace{10'000};
  std::string path;                  // the file it was loaded from ("" for strings and the demo)
  std::string log_level = "info";    // debug | info | warn | error
  // "stdout", or a file appended to (relative paths resolved against the
  // config's directory); read at start only, SIGUSR1 reopens it.
  std::string log_output = "stdout";
  std::string source;                // file name, for messages
};

// Raised for every invalid configuration; what() is "file:line:col: message".
class ConfigError : public std::runtime_error {
 public:
  ConfigError(const std::string& file, int line, int col, const std::string& msg);
  std::string file;
  int line, col;
  std::string message;
};

// Loads and validates; throws ConfigError. `${VAR}` in scalars is replaced by
// the environment variable (an unset variable is an error), `${VAR:-default}`
// falls back when it is unset or empty, `${file:PATH}` inserts a file's
// contents (one trailing newline stripped; a relative PATH is taken from the
// config file's directory, or the current one for load_string), and `$${` is
// a literal `${`. A file that cannot be read gives line and column 0.
// Names (hosts of tcp members that are not address literals) of the groups
// with resolve_interval, with the shortest interval asking for each.
std::map<std::string, Millis> names_to_resolve(const Config& cfg);
// Host name -> its addresses (literals), as last resolved.
using ResolvedNames = std::map<std::string, std::vector<std::string>>;
// cfg with each resolved name member of a resolve_interval group replaced by
// one member per address (same settings; text "<as written>@<address>", so
// each keeps its own health and sticky id across re-resolutions). A name
// not resolved (yet) stays one member. cfg itself when nothing changes.
std::shared_ptr<const Config> with_addresses(std::shared_ptr<const Config> cfg, const ResolvedNames& names);

Config load_file(const std::string& path);
Config load_string(const std::string& yaml, const std::string& source_name);

// The built-in demo: 127.0.0.1:8080 (or `port`), every path -> echo upstream.
Config demo_config(std::uint16_t port = 8080);

// Parsers shared by the loader and the command line; nullopt when invalid.
std::optional<Millis> parse_duration(const std::string& s);   // "250ms" "10s" "5m" "1h" "0"
std::optional<std::uint64_t> parse_size(const std::string& s); // "512" "8KiB" "16MiB" "1GiB" "4k"
// "host:port" "[::1]:80" "ws://host:port" "wss://host:port" "echo"
std::optional<Upstream> parse_upstream(const std::string& s);
bool ip_literal(const std::string& host);  // an IPv4 or IPv6 address (no brackets)
// "redis://host[:port][/db]" into host, port and db of `out`; else why.
bool parse_redis_url(const std::string& s, SharedState& out, std::string& why);

}  // namespace weir::config
