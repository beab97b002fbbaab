#include "admin/http_server.h"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include <cctype>
#include <chrono>
#include <list>
#include <optional>

namespace weir::admin {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;
using boost::system::error_code;

namespace {
constexpr std::size_t kMaxBody = 64 * 1024;        // admin requests are small JSON
constexpr std::size_t kMaxHeader = 16 * 1024;
constexpr auto kIdle = std::chrono::seconds(30);    // a keep-alive connection with nothing asked
constexpr auto kBusy = std::chrono::seconds(10);    // one request: the answer computed and written
constexpr std::size_t kMaxConnections = 256;        // the dashboard and a scraper need a few
}  // namespace

struct HttpServer::Impl : std::enable_shared_from_this<HttpServer::Impl> {
  struct Conn : std::enable_shared_from_this<Conn> {
    Conn(std::shared_ptr<Impl> s, tcp::socket sock) : server(std::move(s)), socket(std::move(sock)), timer(socket.get_executor()) {}
    std::shared_ptr<Impl> server;  // outlives its connections
    tcp::socket socket;
    asio::steady_timer timer;
    boost::beast::flat_buffer buffer;
    std::optional<http::request_parser<http::string_body>> parser;
    http::response<http::string_body> res;
    std::list<std::weak_ptr<Conn>>::iterator self_it;
    bool closed = false;
    bool idle = false;  // waiting for a request: may be closed to make room
    bool head = false;  // the request being answered is a HEAD

    // Closes the connection if it is still at the same step after d (a
    // client that never sends, or never reads the answer).
    void arm(std::chrono::seconds d) {
      timer.expires_after(d);
      timer.async_wait([w = weak_from_this()](error_code ec) {
        if (auto c = w.lock(); c && !ec) c->close();
      });
    }

    void read() {
      parser.emplace();
      parser->header_limit(kMaxHeader);
      parser->body_limit(kMaxBody);
      idle = true;
      arm(kIdle);
      http::async_read(socket, buffer, *parser, [self = shared_from_this()](error_code ec, std::size_t) {
        self->idle = false;
        if (ec) {
          if (ec == http::error::header_limit || ec == http::error::body_limit) {
            self->answer({413, "application/json", "{\"error\":\"request too large\"}\n", {}}, false);
          } else if (ec != http::error::end_of_stream && ec != asio::error::operation_aborted) {
            self->answer({400, "application/json", "{\"error\":\"bad request\"}\n", {}}, false);
          } else {
            self->close();
          }
          return;
        }
        self->dispatch();
      });
    }

    void dispatch() {
      const auto& m = parser->get();
      Request r;
      r.method = std::string(m.method_string());
      const std::string target(m.target());
      const auto q = target.find('?');
      r.path = target.substr(0, q);
      if (q != std::string::npos) r.query = target.substr(q + 1);
      if (auto it = m.find(http::field::authorization); it != m.end()) r.authorization = std::string(it->value());
      r.body = m.body();
      const bool keep = m.keep_alive();
      head = m.method() == http::verb::head;
      arm(kBusy);
      auto answered = std::make_shared<bool>(false);
      // The reply holds the connection: nothing else does while a handler
      // waits for the workers.
      server->handler(r, [self = shared_from_this(), answered, keep](Response resp) {
        if (*answered) return;
        *answered = true;
        self->answer(std::move(resp), keep);
      });
    }

    void answer(Response r, bool keep) {
      if (closed) return;
      res = {};
      res.version(11);
      res.result(r.status);
      res.set(http::field::server, "weir-admin");
      res.set(http::field::content_type, r.content_type);
      res.set(http::field::cache_control, "no-store");
      for (auto& [k, v] : r.headers) res.set(k, v);
      res.keep_alive(keep);
      if (head) {
        // The length of what GET would send, and no body.
        res.content_length(r.body.size());
      } else {
        res.body() = std::move(r.body);
        res.prepare_payload();
      }
      http::async_write(socket, res, [self = shared_from_this(), keep](error_code ec, std::size_t) {
        if (ec || !keep) {
          self->close();
          return;
        }
        self->read();
      });
    }

    void close() {
      if (closed) return;
      closed = true;
      error_code ignored;
      timer.cancel();
      socket.shutdown(tcp::socket::shutdown_both, ignored);
      socket.close(ignored);
      server->conns.erase(self_it);
    }
  };

  Impl(asio::io_context& io, Handler h) : acceptor(io), backoff(io), handler(std::move(h)) {}
  tcp::acceptor acceptor;
  asio::steady_timer backoff;
  Handler handler;
  std::list<std::weak_ptr<Conn>> conns;
  bool stopped = false;

  // Full: the connection idle the longest makes room (keep-alive clients
  // reconnect); when every one is busy, the new one is refused.
  bool make_room() {
    for (auto it = conns.rbegin(); it != conns.rend(); ++it) {
      if (auto c = it->lock(); c && c->idle) {
        c->close();
        return true;
      }
    }
    return false;
  }

  void accept() {
    acceptor.async_accept([self = shared_from_this()](error_code ec, tcp::socket sock) {
      if (self->stopped) return;
      if (ec) {
        // Out of descriptors (or another accept error): try again a little
        // later rather than spin the main thread.
        self->backoff.expires_after(std::chrono::milliseconds(200));
        self->backoff.async_wait([self](error_code e) {
          if (!e && !self->stopped) self->accept();
        });
        return;
      }
      {
        if (self->conns.size() >= kMaxConnections && !self->make_room()) {
          error_code ignored;
          sock.close(ignored);
        } else {
          sock.set_option(tcp::no_delay(true), ec);
          auto c = std::make_shared<Conn>(self, std::move(sock));
          self->conns.push_front(c);
          c->self_it = self->conns.begin();
          c->read();
        }
      }
      self->accept();
    });
  }
};

HttpServer::HttpServer(asio::io_context& io, const std::string& address, std::uint16_t port, Handler handler)
    : impl_(std::make_shared<Impl>(io, std::move(handler))) {
  const tcp::endpoint ep(asio::ip::make_address(address), port);
  auto& a = impl_->acceptor;
  a.open(ep.protocol());
  a.set_option(tcp::acceptor::reuse_address(true));
  a.bind(ep);
  a.listen();
}

HttpServer::~HttpServer() { stop(); }

std::uint16_t HttpServer::port() const { return impl_->acceptor.local_endpoint().port(); }

void HttpServer::start() { impl_->accept(); }

void HttpServer::stop() {
  if (impl_->stopped) return;
  impl_->stopped = true;
  error_code ignored;
  impl_->acceptor.close(ignored);
  impl_->backoff.cancel();
  auto conns = impl_->conns;  // close() erases from the list
  for (auto& w : conns)
    if (auto c = w.lock()) c->close();
}

std::string query_param(const std::string& query, const std::string& name) {
  std::size_t pos = 0;
  while (pos <= query.size()) {
    const std::size_t amp = std::min(query.find('&', pos), query.size());
    const std::string_view part(query.data() + pos, amp - pos);
    const auto eq = part.find('=');
    if (part.substr(0, eq) == name) {
      std::string out;
      const std::string_view v = eq == std::string_view::npos ? std::string_view() : part.substr(eq + 1);
      for (std::size_t i = 0; i < v.size(); ++i) {
        if (v[i] == '+') {
          out += ' ';
        } else if (v[i] == '%' && i + 2 < v.size() && std::isxdigit(static_cast<unsigned char>(v[i + 1])) &&
                   std::isxdigit(static_cast<unsigned char>(v[i + 2]))) {
          out += static_cast<char>(std::stoi(std::string(v.substr(i + 1, 2)), nullptr, 16));
          i += 2;
        } else {
          out += v[i];
        }
      }
      return out;
    }
    pos = amp + 1;
  }
  return {};
}

}  // namespace weir::admin
