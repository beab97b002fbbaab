#include "upstream/probe.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include "observability/log.h"
#include "observability/metrics.h"

namespace weir::upstream {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using boost::system::error_code;

struct Prober::Impl : std::enable_shared_from_this<Prober::Impl> {
  struct Target {
    config::Upstream up;
    ProbeResult result;
    obs::GaugeId healthy;
    std::uint64_t round = 0;  // the round a probe in flight belongs to
  };

  explicit Impl(asio::io_context& i) : io(i), timer(i) {}
  asio::io_context& io;
  std::chrono::milliseconds interval;
  asio::steady_timer timer;
  std::map<std::string, Target> targets;
  std::uint64_t round = 0;
  bool stopped = false;

  void set(const config::Config& cfg) {
    interval = cfg.admin.upstream_probe_interval;
    std::map<std::string, Target> next;
    for (const auto& r : cfg.routes)
      for (const auto& u : r.upstreams) {
        if (next.count(u.text)) continue;
        Target t;
        if (auto it = targets.find(u.text); it != targets.end()) t = it->second;
        t.up = u;
        t.healthy = obs::Registry::global().gauge("weir_upstream_healthy",
                                                  "1 when the last readiness probe of the upstream connected",
                                                  {{"upstream", u.text}});
        if (u.kind == config::Upstream::Kind::echo || interval.count() == 0) {
          // Nothing to probe: the built-in echo is in-process; probing off
          // means upstreams count as healthy.
          t.result = {true, true, {}};
          report(t);
        }
        next.emplace(u.text, std::move(t));
      }
    for (const auto& [text, t] : targets)
      if (!next.count(text)) obs::Registry::global().remove_series("weir_upstream_healthy", {{"upstream", text}});
    targets = std::move(next);
    timer.cancel();
    if (interval.count() > 0) tick();
  }

  void report(Target& t) {
    obs::Registry::global().slot(obs::Registry::kMainSlot)[t.healthy.at].set(t.result.healthy ? 1 : 0);
  }

  void tick() {
    if (stopped) return;
    ++round;
    for (auto& [text, t] : targets)
      if (t.up.kind == config::Upstream::Kind::tcp) probe(text);
    timer.expires_after(interval);
    timer.async_wait([self = shared_from_this()](error_code ec) {
      if (!ec) self->tick();
    });
  }

  void probe(const std::string& text) {
    auto& t = targets.at(text);
    t.round = round;
    auto resolver = std::make_shared<tcp::resolver>(io);
    auto socket = std::make_shared<tcp::socket>(io);
    auto deadline = std::make_shared<asio::steady_timer>(io);
    // A probe that takes longer than the interval (or 2 s) has failed.
    deadline->expires_after(std::min<std::chrono::milliseconds>(interval, std::chrono::seconds(2)));
    const std::uint64_t r = round;
    auto self = shared_from_this();
    deadline->async_wait([self, text, r, socket, resolver](error_code ec) {
      if (ec) return;
      resolver->cancel();
      error_code ignored;
      socket->close(ignored);
      self->done(text, r, "timeout");
    });
    resolver->async_resolve(
        t.up.address.empty() ? t.up.host : t.up.address, std::to_string(t.up.port),
        [self, text, r, socket, resolver, deadline](error_code ec, tcp::resolver::results_type eps) {
          auto it = self->targets.find(text);
          if (it == self->targets.end() || it->second.round != r) return;  // the deadline answered
          if (ec) {
            deadline->cancel();
            self->done(text, r, "resolve: " + ec.message());
            return;
          }
          asio::async_connect(*socket, eps, [self, text, r, socket, deadline](error_code ec, const tcp::endpoint&) {
            deadline->cancel();
            error_code ignored;
            socket->close(ignored);
            self->done(text, r, ec ? ec.message() : std::string());
          });
        });
  }

  void done(const std::string& text, std::uint64_t r, std::string error) {
    auto it = targets.find(text);
    if (it == targets.end() || it->second.round != r) return;  // a later round or config took over
    Target& t = it->second;
    it->second.round = 0;  // one answer per round (the deadline or the connect)
    const bool healthy = error.empty();
    if (t.result.probed && t.result.healthy != healthy) {
      log::Line(healthy ? log::Level::info : log::Level::warn, healthy ? "upstream.up" : "upstream.down")
          .str("upstream", text)
          .str("error", error);
    }
    t.result = {healthy, true, std::move(error)};
    report(t);
  }
};

Prober::Prober(asio::io_context& io) : impl_(std::make_shared<Impl>(io)) {}

Prober::~Prober() { stop(); }

void Prober::set_config(const config::Config& cfg) { impl_->set(cfg); }

void Prober::stop() {
  impl_->stopped = true;
  impl_->timer.cancel();
}

std::map<std::string, ProbeResult> Prober::results() const {
  std::map<std::string, ProbeResult> out;
  for (const auto& [text, t] : impl_->targets) out.emplace(text, t.result);
  return out;
}

}  // namespace weir::upstream
