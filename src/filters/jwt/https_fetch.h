#pragma once
// A small HTTP(S) client for key material and token checks (JWKS,
// introspection): one dedicated thread with its own io_context, so a fetch
// never runs on, or blocks, a worker (design: threads). The server's
// certificate is verified against the given CA bundle (or the system's) and
// its name against the URL's host (DNS name or IP address). Boost stays out
// of this header.
//
// Limits: the whole exchange (resolve, connect, TLS, request, response) has
// one deadline; the body is bounded (a larger one is an error, not a
// truncation); response headers at most 16 KiB.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace weir::fetch {

struct Url {
  std::string host;    // without brackets for IPv6
  std::string port;    // "443" ("80" for http://) unless given
  std::string target;  // path and query, "/" at least
  std::string text;    // as given, for logs
  bool tls = true;     // https:// (http:// only where the caller allows it)
};
// https://host[:port][/path][?query]; nullopt and *error otherwise (other
// schemes, user info, fragments, an empty host).
std::optional<Url> parse_https_url(std::string_view text, std::string* error);
// The same, and also http:// when allow_http (e.g. an introspection
// endpoint on a private network or a sidecar).
std::optional<Url> parse_url(std::string_view text, bool allow_http, std::string* error);

// Whom the client trusts: a CA bundle (a path to a PEM file, or the PEM text
// itself, as ${file:...} gives it) or, when empty, the system's store. Built
// once (config load), used on the fetch thread only.
class Trust {
 public:
  static std::shared_ptr<const Trust> make(std::string_view ca, std::string* error);
  ~Trust();
  void* native() const { return ctx_; }  // boost::asio::ssl::context*

 private:
  Trust() = default;
  void* ctx_ = nullptr;
};

struct Request {
  Url url;
  std::shared_ptr<const Trust> trust;  // required for https://, unused for http://
  std::string method = "GET";
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::chrono::milliseconds timeout{3000};
  std::size_t max_body_bytes = std::size_t{1} << 20;
};

struct Response {
  std::string error;   // not empty: no HTTP answer (DNS, connect, TLS, timeout, too large, malformed)
  unsigned status = 0;
  std::string body;
  std::optional<std::int64_t> max_age_s;  // Cache-Control max-age, unless no-store/no-cache
};

// The fetch thread. One per process while anything holds it (shared());
// the last holder's release stops it (in-flight requests are abandoned,
// their callbacks never run) and joins it, unless that is the fetch thread
// itself (a callback dropped the last reference): then it is detached and
// ends on its own.
class Client {
 public:
  static std::shared_ptr<Client> shared();
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // From any thread. done runs on the fetch thread, once (unless stopped).
  void fetch(Request req, std::function<void(Response)> done);
  // f runs on the fetch thread after delay (unless stopped first).
  void after(std::chrono::milliseconds delay, std::function<void()> f);
  bool on_fetch_thread() const { return std::this_thread::get_id() == thread_.get_id(); }

 private:
  Client();
  struct State;
  std::shared_ptr<State> st_;
  std::thread thread_;
};

}  // namespace weir::fetch
