#include "filters/jwt/https_fetch.h"

#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include <cctype>
#include <mutex>

#include "observability/log.h"

namespace weir::fetch {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

std::optional<Url> parse_https_url(std::string_view s, std::string* error) {
  auto fail = [error](std::string why) -> std::optional<Url> {
    if (error) *error = std::move(why);
    return std::nullopt;
  };
  constexpr std::string_view scheme = "https://";
  if (s.size() < scheme.size() || s.substr(0, scheme.size()) != scheme)
    return fail("must be an https:// URL (keys are only fetched over verified TLS)");
  for (unsigned char c : s)
    if (c <= 0x20 || c == 0x7f) return fail("URL has a space or a control character");
  if (s.find('#') != std::string_view::npos) return fail("URL has a fragment");
  Url u;
  u.text = std::string(s);
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
    u.port = "443";
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

asio::awaitable<void> exchange(Request req, std::function<void(Response)> done) {
  Response res;
  auto ex = co_await asio::this_coro::executor;
  auto& ctx = *static_cast<asio::ssl::context*>(req.trust->native());
  beast::ssl_stream<beast::tcp_stream> stream(ex, ctx);
  // The resolver is not covered by tcp_stream's deadline: a timer cancels it.
  auto resolver = std::make_shared<tcp::resolver>(ex);
  auto timer = std::make_shared<asio::steady_timer>(ex, req.timeout);
  timer->async_wait([resolver](boost::system::error_code ec) {
    if (!ec) resolver->cancel();
  });
  try {
    boost::system::error_code ec;
    asio::ip::make_address(req.url.host, ec);
    const bool is_ip = !ec;
    if (!is_ip && SSL_set_tlsext_host_name(stream.native_handle(), req.url.host.c_str()) != 1)
      throw boost::system::system_error(boost::system::error_code(static_cast<int>(::ERR_get_error()),
                                                                  asio::error::get_ssl_category()));
    // Name (or address) check on top of the chain check: host_name_verification
    // matches a DNS name against the SANs, an IP against the IP SANs.
    stream.set_verify_callback(asio::ssl::host_name_verification(req.url.host));
    const auto deadline = std::chrono::steady_clock::now() + req.timeout;
    const auto endpoints = co_await resolver->async_resolve(req.url.host, req.url.port, asio::use_awaitable);
    timer->cancel();
    beast::get_lowest_layer(stream).expires_at(deadline);
    co_await beast::get_lowest_layer(stream).async_connect(endpoints, asio::use_awaitable);
    co_await stream.async_handshake(asio::ssl::stream_base::client, asio::use_awaitable);
    const bool default_port = req.url.port == "443";
    const std::string host = req.url.host.find(':') != std::string::npos ? "[" + req.url.host + "]" : req.url.host;
    http::request<http::string_body> r{req.method == "POST" ? http::verb::post : http::verb::get, req.url.target, 11};
    r.set(http::field::host, default_port ? host : host + ":" + req.url.port);
    r.set(http::field::user_agent, "weir/" WEIR_VERSION);
    r.set(http::field::connection, "close");
    for (const auto& [name, value] : req.headers) r.set(name, value);
    if (!req.body.empty() || r.method() == http::verb::post) r.body() = req.body;
    r.prepare_payload();
    co_await http::async_write(stream, r, asio::use_awaitable);
    beast::flat_buffer buf;
    http::response_parser<http::string_body> parser;
    parser.header_limit(16 * 1024);
    parser.body_limit(req.max_body_bytes);
    co_await http::async_read(stream, buf, parser, asio::use_awaitable);
    auto& msg = parser.get();
    res.status = msg.result_int();
    res.body = std::move(msg.body());
    if (auto it = msg.find(http::field::cache_control); it != msg.end()) res.max_age_s = max_age(it->value());
    // No TLS close_notify exchange: the answer is complete, the server closes.
    beast::get_lowest_layer(stream).socket().close(ec);
  } catch (const boost::system::system_error& e) {
    const auto code = e.code();
    if (code == http::error::body_limit) {
      res.error = "response body larger than " + std::to_string(req.max_body_bytes) + " bytes";
    } else if (code == beast::error::timeout || code == asio::error::operation_aborted) {
      res.error = "timed out after " + std::to_string(req.timeout.count()) + " ms";
    } else {
      res.error = code.message();
      // A certificate problem says which.
      const long verify = SSL_get_verify_result(stream.native_handle());
      if (verify != X509_V_OK) res.error += std::string(" (certificate: ") + X509_verify_cert_error_string(verify) + ")";
    }
  }
  timer->cancel();
  done(std::move(res));
}

}  // namespace

struct Client::State {
  asio::io_context io{1};
  asio::executor_work_guard<asio::io_context::executor_type> work = asio::make_work_guard(io);
};

Client::Client() : st_(std::make_shared<State>()) {
  thread_ = std::thread([st = st_] {
    // Exceptions never leave a handler here (exchange() catches its own).
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
  asio::co_spawn(st_->io, exchange(std::move(req), std::move(done)), asio::detached);
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
