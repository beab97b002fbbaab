#include "app/server.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include <csignal>
#include <thread>
#include <vector>

#include "core/clock.h"
#include "core/heap_trim.h"
#include "core/worker.h"
#include "net/listener.h"
#include "net/tls.h"
#include "observability/log.h"
#include "proxy/gateway.h"
#include "proxy/runtime.h"
#include "proxy/session.h"
#include "upstream/echo_server.h"

namespace weir::app {

namespace asio = boost::asio;
using boost::system::error_code;

namespace {

class Server {
 public:
  explicit Server(std::shared_ptr<const config::Config> cfg) : cfg_(std::move(cfg)) {}

  int run() {
    std::signal(SIGPIPE, SIG_IGN);
    // Signal handling is in place before anything is announced: a SIGTERM
    // right after "listening" must drain, not kill.
    asio::io_context main_io(1);
    asio::signal_set signals(main_io, SIGINT, SIGTERM);
    asio::signal_set hup(main_io, SIGHUP);
    // The first generation: certificates are read before anything binds,
    // so a bad one is a config error (file:line:col), thrown to the caller.
    runtime_ = proxy::Runtime::build(cfg_, 1);
    warn_insecure_upstreams(*cfg_);
    unsigned n = cfg_->workers ? cfg_->workers : std::max(1u, std::thread::hardware_concurrency());
    for (unsigned i = 0; i < n; ++i) {
      workers_.push_back(std::make_unique<core::Worker>(i, runtime_->buffer_bytes));
      gateways_.push_back(std::make_unique<proxy::WorkerGateway>(*workers_.back(), runtime_));
    }
    try {
      bind_all();
    } catch (const std::exception& e) {
      log::Line(log::Level::error, "startup_failed").str("error", e.what());
      return 1;
    }
    for (auto& l : listeners_) {
      auto* lp = l.get();
      lp->worker().post([lp] { lp->start(); });
    }
    for (auto& e : echo_) {
      auto* ep = e.get();
      ep->worker().post([ep] { ep->start(); });
    }
    for (auto& w : workers_) w->start();
    log::Line(log::Level::info, "started").num("workers", n).str("version", WEIR_VERSION);

    asio::steady_timer tick(main_io);
    signals.async_wait([&](error_code ec, int sig) {
      if (ec) return;
      hup.cancel();
      begin_drain(sig, main_io, tick, signals);
    });
    wait_hup(hup);
    asio::steady_timer trim_tick(main_io);
    watch_heap(trim_tick);
    main_io.run();
    for (auto& w : workers_) w->stop();
    for (auto& w : workers_) w->join();
    // Listeners and echo servers belong to worker io_contexts: drop them first.
    listeners_.clear();
    echo_.clear();
    gateways_.clear();
    workers_.clear();
    log::Line(log::Level::info, "stopped");
    return 0;
  }

 private:
  void bind_all() {
    bool needs_echo = false;
    for (const auto& r : cfg_->routes)
      for (const auto& u : r.upstreams) needs_echo |= u.kind == config::Upstream::Kind::echo;
    if (needs_echo) {
      std::uint16_t port = 0;
      for (std::size_t i = 0; i < workers_.size(); ++i) {
        auto e = std::make_unique<upstream::EchoServer>(*workers_[i], "127.0.0.1", port);
        port = e->port();
        gateways_[i]->echo_port = port;
        echo_.push_back(std::move(e));
      }
      log::Line(log::Level::debug, "echo_upstream").str("address", "127.0.0.1").num("port", port);
    }
    for (std::size_t i = 0; i < cfg_->listeners.size(); ++i) {
      const auto& lc = cfg_->listeners[i];
      std::uint16_t port = lc.port;
      for (auto& gw : gateways_) {
        proxy::WorkerGateway* g = gw.get();
        auto l = std::make_unique<net::Listener>(g->worker(), lc.address, port,
                                                 [i, g](core::Worker&, int fd, const sockaddr* peer) {
                                                   proxy::Session::start(*g, fd, peer, i);
                                                 });
        port = l->port();
        listeners_.push_back(std::move(l));
      }
      log::Line(log::Level::info, "listening")
          .str("address", lc.address)
          .num("port", port)
          .str("scheme", lc.tls ? "wss" : "ws");
    }
  }

  static void warn_insecure_upstreams(const config::Config& cfg) {
    for (const auto& r : cfg.routes) {
      bool any = false;
      for (const auto& u : r.upstreams) any |= u.tls;
      if (any && !r.upstream_tls.verify) {
        log::Line(log::Level::warn, "upstream_tls_insecure")
            .str("route", r.name)
            .str("detail", "upstream_tls.verify is false: backend certificates and names are NOT checked");
      }
    }
  }

  // SIGHUP: build a whole new generation (the config file read again, every
  // certificate, key, CA and OCSP file, the filter chains) and swap it in for
  // new connections on every worker; established sessions keep theirs. A file
  // that fails to load is refused whole, with file:line:col, and the running
  // generation stays.
  void wait_hup(asio::signal_set& hup) {
    hup.async_wait([this, &hup](error_code ec, int) {
      if (ec) return;
      reload();
      wait_hup(hup);
    });
  }

  void reload() {
    const std::uint64_t generation = runtime_->generation + 1;
    std::shared_ptr<const config::Config> cfg = cfg_;
    std::shared_ptr<const proxy::Runtime> rt;
    try {
      if (!cfg_->path.empty()) cfg = std::make_shared<const config::Config>(config::load_file(cfg_->path));
      rt = proxy::Runtime::build(cfg, generation);
    } catch (const config::ConfigError& e) {
      reload_failed(e.what(), e.message, e.line);
      return;
    } catch (const std::exception& e) {
      reload_failed(e.what(), e.what(), 0);
      return;
    }
    const proxy::ReloadSummary diff = proxy::compare(*runtime_, *rt);
    warn_insecure_upstreams(*cfg);
    for (auto& gw : gateways_) {
      proxy::WorkerGateway* g = gw.get();
      g->worker().post([g, rt] { g->set_runtime(rt); });
    }
    cfg_ = std::move(cfg);
    runtime_ = std::move(rt);
    auto names = [](const std::vector<std::string>& v) {
      std::string s;
      for (const auto& n : v) s += (s.empty() ? "" : ",") + n;
      return s;
    };
    {
      log::Line l(log::Level::info, "config_reload");
      l.unum("generation", generation)
          .num("routes", static_cast<std::int64_t>(runtime_->routes.size()))
          .str("added", names(diff.added))
          .str("removed", names(diff.removed))
          .str("changed", names(diff.changed));
      if (diff.listeners_changed) l.str("listeners", "changed: takes effect at restart");
    }
    if (diff.listeners_changed) {
      log::Line(log::Level::warn, "listeners_unchanged")
          .str("detail", "listeners were added, removed or changed: a reload keeps the running ones; restart to apply");
    }
    if (!runtime_->tls->empty()) {
      log::Line(log::Level::info, "tls_reload").num("certificates", static_cast<std::int64_t>(runtime_->tls->certificates));
    }
  }

  // A refused reload says where (what: "file:line:col: message") and keeps
  // the running generation. tls_reload_failed is the same event under the
  // name the TLS reload had before config reloads existed.
  void reload_failed(const std::string& what, const std::string& message, int line) {
    log::Line(log::Level::error, "config_reload_failed").str("error", what).num("line", line);
    log::Line(log::Level::error, "tls_reload_failed").str("error", message).num("line", line);
  }

  // Once a second: after a burst of connections has paused, give the free
  // heap pages it left back to the kernel (core/heap_trim.h).
  void watch_heap(asio::steady_timer& tick) {
    tick.expires_after(std::chrono::seconds(1));
    tick.async_wait([this, &tick](error_code ec) {
      if (ec) return;
      std::uint64_t accepted = 0;
      for (const auto& w : workers_) accepted += w->stats().connections_accepted.get();
      if (trim_.observe(accepted, core::coarse_now_ms())) {
        const auto t0 = std::chrono::steady_clock::now();
        const bool released = core::trim_heap();
        const auto us = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0);
        log::Line(log::Level::debug, "heap_trimmed").num("us", us.count()).num("released", released ? 1 : 0);
      }
      watch_heap(tick);
    });
  }

  std::size_t live() const {
    std::size_t n = 0;
    for (const auto& w : workers_) n += w->live();
    return n;
  }

  // SIGTERM/SIGINT: stop accepting, let sessions end on their own for the
  // drain period, then close the rest with 1001 and give them the close
  // timeout to finish the handshake. A second signal stops at once.
  void begin_drain(int sig, asio::io_context& io, asio::steady_timer& tick, asio::signal_set& signals) {
    log::Line(log::Level::info, "shutdown")
        .str("signal", sig == SIGTERM ? "SIGTERM" : "SIGINT")
        .num("sessions", static_cast<std::int64_t>(live()))
        .num("drain_ms", cfg_->drain.count());
    for (auto& l : listeners_) {
      auto* lp = l.get();
      lp->worker().post([lp] { lp->stop(); });
    }
    signals.async_wait([&io](error_code ec, int) {
      if (!ec) io.stop();
    });
    const auto drain_end = std::chrono::steady_clock::now() + cfg_->drain;
    poll(io, tick, drain_end, /*closing=*/false);
  }

  void poll(asio::io_context& io, asio::steady_timer& tick, std::chrono::steady_clock::time_point end,
            bool closing) {
    if (live() == 0) {
      io.stop();
      return;
    }
    if (std::chrono::steady_clock::now() >= end) {
      if (closing) {
        log::Line(log::Level::warn, "shutdown_forced").num("sessions", static_cast<std::int64_t>(live()));
        io.stop();
        return;
      }
      log::Line(log::Level::info, "drain_over").num("sessions", static_cast<std::int64_t>(live()));
      for (auto& w : workers_) {
        auto* wp = w.get();
        wp->post([wp] { wp->shutdown_all(1001, "server shutting down"); });
      }
      std::chrono::milliseconds close_wait{1000};
      for (const auto& r : cfg_->routes) close_wait = std::max(close_wait, r.timeouts.close);
      end = std::chrono::steady_clock::now() + close_wait + std::chrono::milliseconds(200);
      closing = true;
    }
    tick.expires_after(std::chrono::milliseconds(50));
    tick.async_wait([this, &io, &tick, end, closing](error_code ec) {
      if (!ec) poll(io, tick, end, closing);
    });
  }

  std::shared_ptr<const config::Config> cfg_;        // main thread: the running config
  std::shared_ptr<const proxy::Runtime> runtime_;   // main thread: the running generation
  std::vector<std::unique_ptr<core::Worker>> workers_;
  std::vector<std::unique_ptr<proxy::WorkerGateway>> gateways_;  // one per worker, same order
  std::vector<std::unique_ptr<net::Listener>> listeners_;
  std::vector<std::unique_ptr<upstream::EchoServer>> echo_;
  core::TrimPolicy trim_;
};

}  // namespace

int run_server(std::shared_ptr<const config::Config> cfg) {
  Server s(std::move(cfg));
  return s.run();
}

}  // namespace weir::app
