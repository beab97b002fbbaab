#pragma once
// Weir's configuration: immutable typed structs built once from YAML (see
// docs/configuration.md). Workers share one snapshot through
// std::shared_ptr<const Config>; nothing here is mutated after loading.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace weir::config {

using Millis = std::chrono::milliseconds;

struct Timeouts {
  Millis handshake{10'000};          // client request headers must arrive within this
  Millis connect{5'000};             // TCP connect to an upstream
  Millis upstream_handshake{10'000}; // upstream's 101 must arrive within this
  Millis idle{300'000};              // no frame either way -> close 1001; 0 = off
  Millis max_lifetime{0};            // hard cap on a session; 0 = unlimited
  Millis close{5'000};               // wait for the close handshake/TCP FIN after a Close
};

struct Limits {
  std::uint32_t max_header_bytes = 8 * 1024;         // whole request head -> 431
  std::uint64_t max_frame_bytes = 16ull << 20;        // one frame's payload -> 1009
  std::uint64_t max_message_bytes = 64ull << 20;      // one message (all fragments) -> 1009
  std::uint32_t buffer_bytes = 64 * 1024;             // per-direction relay buffer = high watermark
};

struct Keepalive {
  Millis interval{0};    // ping a peer silent for this long; 0 = off
  Millis timeout{10'000}; // no byte from it within this after the ping -> close
};

struct Upstream {
  enum class Kind { tcp, echo };
  Kind kind = Kind::tcp;
  std::string host;      // DNS name or IP literal (tcp only)
  std::uint16_t port = 0;
  std::string text;      // as written in the config, for logs
};

struct HeaderMatch {
  std::string name;      // lower-cased
  std::string value;     // exact, case-sensitive
};

struct RouteMatch {
  std::string host;              // empty = any; "*.example.com" matches one or more labels
  std::string path = "/";        // exact path, or prefix when path_prefix
  bool path_prefix = true;
  std::vector<HeaderMatch> headers;
};

// timeouts.handshake and limits.max_header_bytes apply before a route is
// chosen, so the loader refuses them in a route: every route carries the
// top-level values, and routes.front() may stand for them.
struct Route {
  std::string name;
  RouteMatch match;
  std::vector<Upstream> upstreams;   // never empty
  std::vector<std::string> origins;  // empty = any origin; "*" = any
  bool remask = false;               // re-mask client frames with fresh keys
  bool strict = false;               // Weir itself checks UTF-8 of text messages (1007)
  Timeouts timeouts;
  Limits limits;
  Keepalive keepalive;
};

struct Listener {
  std::string address = "127.0.0.1";
  std::uint16_t port = 8080;         // 0 = any free port (logged on start)
};

struct Config {
  unsigned workers = 0;              // 0 = auto (one per core)
  std::vector<Listener> listeners;
  std::vector<Route> routes;
  Millis drain{10'000};              // SIGTERM: wait this long for sessions, then 1001
  std::string log_level = "info";    // debug | info | warn | error
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
Config load_file(const std::string& path);
Config load_string(const std::string& yaml, const std::string& source_name);

// The built-in demo: 127.0.0.1:8080 (or `port`), every path -> echo upstream.
Config demo_config(std::uint16_t port = 8080);

// Parsers shared by the loader and the command line; nullopt when invalid.
std::optional<Millis> parse_duration(const std::string& s);   // "250ms" "10s" "5m" "1h" "0"
std::optional<std::uint64_t> parse_size(const std::string& s); // "512" "8KiB" "16MiB" "1GiB" "4k"
std::optional<Upstream> parse_upstream(const std::string& s);  // "host:port" "[::1]:80" "echo"

}  // namespace weir::config
