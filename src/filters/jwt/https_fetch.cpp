#include "filters/jwt/https_fetch.h"

#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include <cctype>
#include <type_traits>
#include <mutex>

#include "observability/log.h"

namespace weir::fetch {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

std::optional<Url> parse_https_url(std::string_view s, std::string* error) { return parse_url(s, false, error); }

std::optional<Url> parse_url(std::string_view s, bool allow_http, std::string* error) {
  auto fail = [error](std::string why) -> std::optional<Url> {
    if (error) *error = std::move(why);
    return std::nullopt;
  };
  const bool http = allow_http && s.substr(0, 7) == "http://";
  const std::string_view scheme = http ? "http://" : "https://";
  if (s.size() < scheme.size() || s.substr(0, scheme.size()) != scheme)
    return fail(allow_http ? "must be an http:// or https:// URL"
                           : "must be an https:// URL (keys are only fetched over verified TLS)");
  for (unsigned char c : s)
    if (c <= 0x20 || c == 0x7f) return fail("URL has a space or a control character");
  if (s.find('#') != std::string_view::npos) return fail("URL has a fragment");
  Url u;
  u.text = std::string(s);
  u.tls = !http;
  std::string_view rest = s.substr(scheme.size());
  const auto slash = rest.find_first_of("/?");
  std::string_view authority = rest.substr(0, slash);
  u.target = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
  if (u.target.front() == '?') u.target.insert(0, "/");
  if (authority.find('@') != std::string_view::npos) return fail("URL has user info (put credentials elsewhere)");
  std::string_view port;
  if (!authority.empty() && authority.front() == '[') {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) return fail("URL has an unclosed IPv6 bracket");
    u.host = std::string(authority.substr(1, close - 1));
    const std::string_view after = authority.substr(close + 1);
    if (!after.empty() && after.front() != ':') return fail("URL has junk after the IPv6 address");
    if (!after.empty()) port = after.substr(1);
  } else {
    const auto colon = authority.find(':');
    u.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) port = authority.substr(colon + 1);
  }
  if (u.host.empty()) return fail("URL has no host");
  if (port.empty()) {
    u.port = http ? "80" : "443";
  } else {
    if (port.size() > 5) return fail("URL port is not a number from 1 to 65535");
    unsigned p = 0;
    for (char c : port) {
      if (c < '0' || c > '9') return fail("URL port is not a number from 1 to 65535");
      p = p * 10 + static_cast<unsigned>(c - '0');
    }
    if (p == 0 || p > 65535) return fail("URL port is not a number from 1 to 65535");
    u.port = std::string(port);
  }
  return u;
}

std::shared_ptr<const Trust> Trust::make(std::string_view ca, std::string* error) {
  auto ctx = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_client);
  boost::system::error_code ec;
  ctx->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                   asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 | asio::ssl::context::no_tlsv1_1);
  ctx->set_verify_mode(asio::ssl::verify_peer, ec);
  if (ca.empty()) {
    ctx->set_default_verify_paths(ec);
    if (ec) {
      if (error) *error = "cannot load the system's CA store: " + ec.message();
      return nullptr;
    }
  } else if (ca.find("-----BEGIN") != std::string_view::npos) {
    ctx->add_certificate_authority(asio::buffer(ca.data(), ca.size()), ec);
    if (ec) {
      if (error) *error = "not a PEM CA certificate bundle: " + ec.message();
      return nullptr;
    }
  } else {
    ctx->load_verify_file(std::string(ca), ec);
    if (ec) {
      if (error) *error = "cannot load CA bundle " + std::string(ca) + ": " + ec.message();
      return nullptr;
    }
  }
  std::shared_ptr<Trust> t(new Trust());
  t->ctx_ = ctx.release();
  return t;
}

Trust::~Trust() { delete static_cast<asio::ssl::context*>(ctx_); }

namespace {

std::optional<std::int64_t> max_age(std::string_view cc) {
  std::string lower(cc);
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (lower.find("no-store") != std::string::npos || lower.find("no-cache") != std::string::npos) return std::nullopt;
  auto at = lower.find("max-age=");
  if (at == std::string::npos) return std::nullopt;
  at += 8;
  std::int64_t v = 0;
  std::size_t digits = 0;
  while (at < lower.size() && std::isdigit(static_cast<unsigned char>(lower[at])) && digits < 12) {
    v = v * 10 + (lower[at++] - '0');
    ++digits;
  }
  if (digits == 0) return std::nullopt;
  return v;
}

using TlsStream = beast::ssl_stream<beast::tcp_stream>;
using PlainStream = beast::tcp_stream;

// One request, as a chain of callbacks (not a coroutine: clang 14 cannot
// emit debug info for Asio coroutines under the fuzz build's sanitizers).
// Each step holds the Exchange alive through its handler. Stream: TlsStream
// (https://) or PlainStream (http://).
template <class Stream>
class Exchange : public std::enable_shared_from_this<Exchange<Stream>> {
  static constexpr bool kTls = std::is_same_v<Stream, TlsStream>;
  using std::enable_shared_from_this<Exchange<Stream>>::shared_from_this;

 public:
  Exchange(asio::io_context& io, Request req, std::function<void(Response)> done)
      : req_(std::move(req)), done_(std::move(done)), stream_(make_stream(io, req_)), resolver_(io), timer_(io) {}

  void start() {
    if constexpr (kTls) {
      boost::system::error_code ec;
      asio::ip::make_address(req_.url.host, ec);
      const bool is_ip = !ec;
      if (!is_ip && SSL_set_tlsext_host_name(stream_.native_handle(), req_.url.host.c_str()) != 1)
        return finish(asio::error::invalid_argument);
      // Name (or address) check on top of the chain check: host_name_verification
      // matches a DNS name against the SANs, an IP against the IP SANs.
      stream_.set_verify_callback(asio::ssl::host_name_verification(req_.url.host));
    }
    deadline_ = std::chrono::steady_clock::now() + req_.timeout;
    // The resolver is not covered by tcp_stream's deadline: the timer cancels it.
    timer_.expires_at(deadline_);
    timer_.async_wait([self = shared_from_this()](boost::system::error_code e) {
      if (!e) self->resolver_.cancel();
    });
    resolver_.async_resolve(req_.url.host, req_.url.port,
                            [self = shared_from_this()](boost::system::error_code e, tcp::resolver::results_type r) {
                              self->timer_.cancel();
                              if (e) return self->finish(e == asio::error::operation_aborted ? beast::error::timeout : e);
                              self->connect(r);
                            });
  }

 private:
  void connect(const tcp::resolver::results_type& endpoints) {
    beast::get_lowest_layer(stream_).expires_at(deadline_);
    beast::get_lowest_layer(stream_).async_connect(
        endpoints, [self = shared_from_this()](boost::system::error_code e, const tcp::endpoint&) {
          if (e) return self->finish(e);
          if constexpr (kTls) {
            self->stream_.async_handshake(asio::ssl::stream_base::client, [self](boost::system::error_code e2) {
              if (e2) return self->finish(e2);
              self->write();
            });
          } else {
            self->write();
          }
        });
  }

  static Stream make_stream(asio::io_context& io, const Request& req) {
    if constexpr (kTls) {
      return Stream(io, *static_cast<asio::ssl::context*>(req.trust->native()));
    } else {
      return Stream(io);
    }
  }

  void write() {
    const bool default_port = req_.url.port == (kTls ? "443" : "80");
    const std::string host = req_.url.host.find(':') != std::string::npos ? "[" + req_.url.host + "]" : req_.url.host;
    request_ = {req_.method == "POST" ? http::verb::post : http::verb::get, req_.url.target, 11};
    request_.set(http::field::host, default_port ? host : host + ":" + req_.url.port);
    request_.set(http::field::user_agent, "weir/" WEIR_VERSION);
    request_.set(http::field::connection, "close");
    for (const auto& [name, value] : req_.headers) request_.set(name, value);
    if (!req_.body.empty() || request_.method() == http::verb::post) request_.body() = req_.body;
    request_.prepare_payload();
    http::async_write(stream_, request_, [self = shared_from_this()](boost::system::error_code e, std::size_t) {
      if (e) return self->finish(e);
      self->parser_.header_limit(16 * 1024);
      self->parser_.body_limit(self->req_.max_body_bytes);
      http::async_read(self->stream_, self->buf_, self->parser_,
                       [self](boost::system::error_code e2, std::size_t) { self->finish(e2); });
    });
  }

  void finish(boost::system::error_code code) {
    Response res;
    if (!code) {
      auto& msg = parser_.get();
      res.status = msg.result_int();
      res.body = std::move(msg.body());
      if (auto it = msg.find(http::field::cache_control); it != msg.end()) res.max_age_s = max_age(it->value());
    } else if (code == http::error::body_limit) {
      res.error = "response body larger than " + std::to_string(req_.max_body_bytes) + " bytes";
    } else if (code == beast::error::timeout) {
      res.error = "timed out after " + std::to_string(req_.timeout.count()) + " ms";
    } else {
      res.error = code.message();
      if constexpr (kTls) {
        // A certificate problem says which.
        const long verify = SSL_get_verify_result(stream_.native_handle());
        if (verify != X509_V_OK)
          res.error += std::string(" (certificate: ") + X509_verify_cert_error_string(verify) + ")";
      }
    }
    // No TLS close_notify exchange: the answer is complete (or failed), the
    // socket just closes with this object.
    boost::system::error_code ignored;
    beast::get_lowest_layer(stream_).socket().close(ignored);
    timer_.cancel();
    done_(std::move(res));
  }

  Request req_;
  std::function<void(Response)> done_;
  Stream stream_;
  tcp::resolver resolver_;
  asio::steady_timer timer_;
  std::chrono::steady_clock::time_point deadline_;
  http::request<http::string_body> request_;
  beast::flat_buffer buf_;
  http::response_parser<http::string_body> parser_;
};

}  // namespace

struct Client::State {
  asio::io_context io{1};
  asio::executor_work_guard<asio::io_context::executor_type> work = asio::make_work_guard(io);
};

Client::Client() : st_(std::make_shared<State>()) {
  thread_ = std::thread([st = st_] {
    // Handlers here report errors by code, never by exception.
    st->io.run();
  });
}

Client::~Client() {
  st_->io.stop();
  if (on_fetch_thread()) {
    thread_.detach();  // run() returns after this handler; the thread's own State reference ends it
  } else {
    thread_.join();
  }
}

std::shared_ptr<Client> Client::shared() {
  static std::mutex mu;
  static std::weak_ptr<Client> current;
  std::lock_guard lock(mu);
  if (auto c = current.lock()) return c;
  std::shared_ptr<Client> c(new Client());
  current = c;
  return c;
}

void Client::fetch(Request req, std::function<void(Response)> done) {
  asio::post(st_->io, [st = st_.get(), req = std::move(req), done = std::move(done)]() mutable {
    if (req.url.tls) {
      std::make_shared<Exchange<TlsStream>>(st->io, std::move(req), std::move(done))->start();
    } else {
      std::make_shared<Exchange<PlainStream>>(st->io, std::move(req), std::move(done))->start();
    }
  });
}

void Client::after(std::chrono::milliseconds delay, std::function<void()> f) {
  asio::post(st_->io, [st = st_.get(), delay, f = std::move(f)]() mutable {
    auto t = std::make_shared<asio::steady_timer>(st->io, delay);
    t->async_wait([t, f = std::move(f)](boost::system::error_code ec) {
      if (!ec) f();
    });
  });
}

}  // namespace weir::fetch
