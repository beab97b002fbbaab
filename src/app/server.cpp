#include "app/server.h"
#include "app/notify.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include <unistd.h>

#include <chrono>
#include <csignal>
#include <thread>
#include <vector>

#include "admin/admin_api.h"
#include "app/cpus.h"
#include "app/process_metrics.h"
#include "app/server_metrics.h"
#include "app/worker_queries.h"
#include "core/clock.h"
#include "core/heap_trim.h"
#include "core/worker.h"
#include "net/listener.h"
#include "net/tls.h"
#include "observability/log.h"
#include "proxy/gateway.h"
#include "proxy/runtime.h"
#include "proxy/session.h"
#include "state/shared_counters.h"
#include "upstream/dns_watch.h"
#include "upstream/echo_server.h"
#include "upstream/probe.h"
#include "upstream/supervisor.h"
#include "ws/frame.h"

namespace weir::app {

namespace asio = boost::asio;
using boost::system::error_code;

namespace {

class Server final : public admin::Gateway {
 public:
  explicit Server(std::shared_ptr<const config::Config> cfg) : cfg_(std::move(cfg)) {}
  ~Server() override {
    for (auto id : collectors_) obs::Registry::global().remove_collector(id);
  }

  // admin::Gateway (main thread).
  void stalled_workers(std::function<void(std::vector<unsigned>)> done) override;
  std::size_t worker_count() const override { return workers_.size(); }
  void sessions(std::size_t first, std::function<void(SessionPage)> done) override;
  void close_session(std::uint64_t id, std::uint16_t code, std::string reason,
                     std::function<void(bool)> done) override;
  void close_identity(std::string sub, std::string jti, std::uint16_t code, std::string reason,
                      std::function<void(std::size_t)> done) override {
    app::close_identity(workers_, *main_io_, std::move(sub), std::move(jti), code, std::move(reason),
                        std::move(done));
  }
  std::shared_ptr<const config::Config> config() const override { return cfg_; }

  // Redis thread: revocations another instance made (or all in force, after
  // a reconnect). New ones refuse handshakes from now on and close the
  // matching live sessions here, as POST /admin/revoke does where it ran.
  void revoked_elsewhere(asio::io_context& io, std::vector<state::Revocations::Entry> got) {
    auto& store = state::Revocations::global();
    const std::int64_t now = core::wall_now_ms();
    for (auto& e : got) {
      if (e.until_ms <= now || store.covers(e.kind, e.value, e.until_ms)) continue;
      if (!store.add(e.kind, e.value, e.until_ms, now)) {
        log::Line(log::Level::warn, "revoke.shared_full").str("value", e.value);
        continue;
      }
      const bool by_sub = e.kind == state::Revocations::Kind::subject;
      asio::post(io, [this, by_sub, value = std::move(e.value), ttl = (e.until_ms - now + 999) / 1000] {
        app::close_identity(workers_, *main_io_, by_sub ? value : "", by_sub ? "" : value,
                            ws::close_code::policy_violation, "token revoked",
                            [by_sub, value, ttl](std::size_t closed) {
                              log::Line(log::Level::info, "revoke.shared")
                                  .str(by_sub ? "sub" : "jti", value)
                                  .num("ttl_seconds", ttl)
                                  .unum("sessions_closed", closed);
                            });
      });
    }
  }
  std::uint64_t generation() const override { return runtime_ ? runtime_->generation : 0; }
  bool listening() const override { return listening_; }
  bool draining() const override { return draining_; }
  double uptime_seconds() const override {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
  }
  std::size_t open_sessions() const override { return live(); }
  std::vector<upstream::Supervisor::GroupStatus> upstream_groups() const override {
    return supervisor_ ? supervisor_->status() : std::vector<upstream::Supervisor::GroupStatus>{};
  }
  bool drain_member(const std::string& group, const std::string& member, bool on,
                    std::chrono::milliseconds timeout) override {
    return supervisor_ && supervisor_->drain(group, member, on, timeout);
  }
  std::vector<admin::UpstreamHealth> upstream_health() const override {
    std::vector<admin::UpstreamHealth> out;
    if (!prober_) return out;
    for (auto& [text, r] : prober_->results()) out.push_back({text, r.healthy, r.probed, r.last_error});
    return out;
  }

  int run() {
    std::signal(SIGPIPE, SIG_IGN);
    // Signal handling is in place before anything is announced: a SIGTERM
    // right after "listening" must drain, not kill.
    asio::io_context main_io(1);
    main_io_ = &main_io;
    asio::signal_set signals(main_io, SIGINT, SIGTERM);
    asio::signal_set hup(main_io, SIGHUP);
    asio::signal_set usr1(main_io, SIGUSR1);
    // The first generation: certificates are read before anything binds,
    // so a bad one is a config error (file:line:col), thrown to the caller.
    runtime_ = proxy::Runtime::build(cfg_, 1);
    warn_insecure_upstreams(*cfg_);
    unsigned n = cfg_->workers ? cfg_->workers : available_cpus();
    const unsigned long fds = raise_fd_limit();
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
    // Bound before any worker runs: a configured admin port that is taken
    // stops Weir here, with nothing to unwind.
    if (!start_admin(main_io)) return 1;
    // Before any worker runs (the limits find it from their first
    // handshake), and after the last early return (its thread posts to
    // main_io, a local of this function).
    if (cfg_->state.backend == config::SharedState::Backend::redis) {
      shared_ = state::start_redis_counters(cfg_->state);
      state::SharedCounters::set(shared_.get());
      shared_->on_revoked([this, io = main_io_](std::vector<state::Revocations::Entry> got) {
        revoked_elsewhere(*io, std::move(got));
      });
    }
    for (auto& b : bound_)
      for (auto& l : b.per_worker) {
        auto* lp = l.get();
        lp->worker().post([lp] { lp->start(); });
      }
    for (auto& e : echo_) {
      auto* ep = e.get();
      ep->worker().post([ep] { ep->start(); });
    }
    for (auto& w : workers_) w->start();
    add_collectors();
    prober_ = std::make_unique<upstream::Prober>(main_io);
    prober_->set_config(*cfg_);
    supervisor_ = std::make_unique<upstream::Supervisor>(
        main_io, [this](const upstream::MemberState* m, std::size_t max, std::int64_t min_age, std::uint16_t code,
                        std::string reason, std::function<void(std::size_t)> done) {
          app::close_member(workers_, *main_io_, m, max, min_age, code, std::move(reason), std::move(done));
        });
    supervisor_->set_groups(runtime_->groups, runtime_->group_tls);
    // Names of groups with resolve_interval: a changed answer rebuilds the
    // generation with one member per address, as a reload would.
    dns_ = std::make_unique<upstream::DnsWatch>(main_io, [this](const config::ResolvedNames& names) {
      if (draining_) return true;
      const config::ResolvedNames was = resolved_;
      resolved_ = names;
      if (reload(false)) return true;
      resolved_ = was;  // refused (e.g. a certificate mid-rotation): the next answer tries again
      return false;
    });
    dns_->set(*cfg_);
    listening_ = true;
    log::Line(log::Level::info, "started")
        .num("workers", n)
        .str("version", WEIR_VERSION)
        .unum("max_fds", fds);
    notify_ready(0);

    asio::steady_timer tick(main_io);
    signals.async_wait([&](error_code ec, int sig) {
      if (ec) return;
      hup.cancel();
      begin_drain(sig, main_io, tick, signals);
    });
    wait_hup(hup);
    wait_usr1(usr1);
    asio::steady_timer trim_tick(main_io);
    watch_heap(trim_tick);
    main_io.run();
    // Both hold Asio objects of main_io, which goes before this Server.
    if (admin_) admin_->stop();
    admin_.reset();
    prober_.reset();
    supervisor_.reset();
    dns_.reset();
    for (auto& w : workers_) w->stop();
    for (auto& w : workers_) w->join();
    state::SharedCounters::set(nullptr);
    shared_.reset();
    // Listeners and echo servers belong to worker io_contexts: drop them first.
    bound_.clear();
    retired_.clear();
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
    for (std::size_t i = 0; i < cfg_->listeners.size(); ++i)
      bound_.push_back(bind_listener(cfg_->listeners[i], runtime_->listener_nth(i)));
    // Pre-warmed pools live on their worker (upstream/prewarm.h): made there.
    for (auto& gw : gateways_) {
      proxy::WorkerGateway* g = gw.get();
      g->worker().post([g] { g->start_prewarm(); });
    }
  }

  // A configured listener, bound on every worker (SO_REUSEPORT). Known by
  // its configured address:port (and which of several with the same one,
  // as port 0 may be); a connection it accepts looks its index up
  // in the worker's current generation, so reloads may reorder, add or
  // remove listeners without touching the sockets of the others.
  struct Bound {
    std::string address;
    std::uint16_t conf_port = 0;
    std::size_t nth = 0;
    std::uint16_t port = 0;  // as bound (differs from conf_port when that is 0)
    std::string key;
    std::vector<std::unique_ptr<net::Listener>> per_worker;
  };

  // Throws std::system_error when the address cannot be bound.
  Bound bind_listener(const config::Listener& lc, std::size_t nth) {
    Bound b;
    b.address = lc.address;
    b.conf_port = lc.port;
    b.nth = nth;
    b.key = proxy::listener_key(lc);
    std::uint16_t port = lc.port;
    for (auto& gw : gateways_) {
      proxy::WorkerGateway* g = gw.get();
      const std::string address = lc.address;
      const std::uint16_t conf_port = lc.port;
      auto l = std::make_unique<net::Listener>(
          g->worker(), lc.address, port, [g, address, conf_port, nth](core::Worker&, int fd, const sockaddr* peer) {
            const std::size_t i = g->runtime()->listener_index(address, conf_port, nth);
            if (i == proxy::Runtime::npos) {
              ::close(fd);  // removed by a reload an instant ago; its socket closes next
              return;
            }
            proxy::Session::start(*g, fd, peer, i);
          });
      port = l->port();
      b.per_worker.push_back(std::move(l));
    }
    b.port = port;
    log::Line(log::Level::info, "listening")
        .str("address", lc.address)
        .num("port", port)
        .str("scheme", lc.tls ? "wss" : "ws");
    return b;
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

  // SIGUSR1: the log file is reopened (after logrotate moved it).
  void wait_usr1(asio::signal_set& usr1) {
    usr1.async_wait([this, &usr1](error_code ec, int) {
      if (ec) return;
      log::reopen();
      wait_usr1(usr1);
    });
  }

  // The admin listener (docs/admin.md). One the config names must bind, or
  // Weir does not start; the default one (127.0.0.1:9901, no `admin` block)
  // may be taken by another instance: then Weir runs without it and says so.
  bool start_admin(asio::io_context& io) {
    const auto& a = cfg_->admin;
    if (!a.enabled) {
      log::Line(log::Level::info, "admin_disabled");
      return true;
    }
    try {
      admin_ = std::make_unique<admin::HttpServer>(io, a.address, a.port, admin::make_handler(*this));
    } catch (const std::exception& e) {
      log::Line l(a.configured ? log::Level::error : log::Level::warn, "admin_unavailable");
      l.str("address", a.address).num("port", a.port).str("error", e.what());
      if (a.configured) return false;
      return true;
    }
    admin_->start();
    log::Line(log::Level::info, "admin_listening")
        .str("address", a.address)
        .num("port", admin_->port())
        .str("auth", a.token.empty() ? "none (loopback only)" : "bearer token");
    return true;
  }

  void add_collectors() {
    auto& reg = obs::Registry::global();
    collectors_.push_back(reg.add_collector([this](std::vector<obs::Registry::Sample>& out) {
      add_server_metrics(out, workers_,
                         {runtime_ ? runtime_->generation : 0, reloads_ok_, reloads_failed_, draining_, live()});
      add_process_metrics(out);
    }));
  }

  // reread: the file (SIGHUP, POST /admin/reload); else the running config
  // again with the names' latest addresses (DnsWatch).
  // False when refused (the running generation stays).
  bool reload(bool reread = true) {
    if (reread) notify_reloading();
    const std::uint64_t generation = runtime_->generation + 1;
    std::shared_ptr<const config::Config> cfg = cfg_;
    std::shared_ptr<const proxy::Runtime> rt;
    try {
      if (reread && !cfg_->path.empty()) cfg = std::make_shared<const config::Config>(config::load_file(cfg_->path));
      rt = proxy::Runtime::build(config::with_addresses(cfg, resolved_), generation);
    } catch (const config::ConfigError& e) {
      reload_failed(e.what(), e.message, e.line);
      return false;
    } catch (const std::exception& e) {
      reload_failed(e.what(), e.what(), 0);
      return false;
    }
    if (cfg->admin.enabled != cfg_->admin.enabled || cfg->admin.address != cfg_->admin.address ||
        cfg->admin.port != cfg_->admin.port) {
      log::Line(log::Level::warn, "admin_unchanged")
          .str("detail", "admin.address and admin.port take effect at restart; the admin listener stays as it is "
                         "(admin.token and upstream_probe_interval do change)");
    }
    if (changed(cfg->state, cfg_->state)) {
      log::Line(log::Level::warn, "state_unchanged")
          .str("detail", "the state block (Redis) takes effect at restart; the limits keep the store they have");
    }
    const proxy::ReloadSummary diff = proxy::compare(*runtime_, *rt);
    // New listeners are bound before anything changes: an address that
    // cannot be bound refuses the whole reload, as a bad file does.
    std::vector<Bound> added;
    for (std::size_t i = 0; i < rt->config->listeners.size(); ++i) {
      const auto& lc = rt->config->listeners[i];
      const std::size_t nth = rt->listener_nth(i);
      if (runtime_->listener_index(lc.address, lc.port, nth) != proxy::Runtime::npos) continue;
      try {
        added.push_back(bind_listener(lc, nth));
      } catch (const std::exception& e) {
        const std::string what = cfg->path + ": listener " + proxy::listener_key(lc) + ": " + e.what();
        reload_failed(what, what, 0);
        return false;  // `added` closes what it bound (never started)
      }
    }
    std::vector<Bound> removed;
    for (auto it = bound_.begin(); it != bound_.end();) {
      if (rt->listener_index(it->address, it->conf_port, it->nth) == proxy::Runtime::npos) {
        removed.push_back(std::move(*it));
        it = bound_.erase(it);
      } else {
        ++it;
      }
    }
    warn_insecure_upstreams(*cfg);
    // Each worker swaps its generation, then opens its share of the new
    // listeners and closes its share of the removed ones; config_reload is
    // logged once every worker has: from then on, a new connection anywhere
    // gets the new generation.
    auto left = std::make_shared<std::size_t>(gateways_.size());
    auto done = [this, generation, diff, routes = rt->routes.size(), left, reread] {
      if (--*left != 0) return;
      log_reload(generation, routes, diff, reread ? "config" : "dns");
      notify_ready(live());
    };
    for (std::size_t w = 0; w < gateways_.size(); ++w) {
      proxy::WorkerGateway* g = gateways_[w].get();
      std::vector<net::Listener*> open, close;
      for (auto& b : added) open.push_back(b.per_worker[w].get());
      for (auto& b : removed) close.push_back(b.per_worker[w].get());
      g->worker().post([g, rt, open, close, done, io = main_io_] {
        g->set_runtime(rt);
        for (auto* l : open) l->start();
        for (auto* l : close) l->stop();
        asio::post(*io, done);
      });
    }
    for (auto& b : added) bound_.push_back(std::move(b));
    // A stopped listener stays allocated until exit: an event for it may be
    // in flight on its worker, and listeners come and go rarely.
    for (auto& b : removed) retired_.push_back(std::move(b));
    cfg_ = std::move(cfg);
    runtime_ = std::move(rt);
    ++reloads_ok_;
    if (prober_) prober_->set_config(*cfg_);
    if (supervisor_) supervisor_->set_groups(runtime_->groups, runtime_->group_tls);
    if (dns_ && reread) dns_->set(*cfg_);
    if (!runtime_->tls->empty()) {
      log::Line(log::Level::info, "tls.reload").num("certificates", static_cast<std::int64_t>(runtime_->tls->certificates));
    }
    return true;
  }

  void log_reload(std::uint64_t generation, std::size_t routes, const proxy::ReloadSummary& diff, const char* cause) {
    auto names = [](const std::vector<std::string>& v) {
      std::string s;
      for (const auto& n : v) s += (s.empty() ? "" : ",") + n;
      return s;
    };
    log::Line l(log::Level::info, "config.reload");
    l.unum("generation", generation)
        .str("cause", cause)
        .num("routes", static_cast<std::int64_t>(routes))
        .str("added", names(diff.added))
        .str("removed", names(diff.removed))
        .str("changed", names(diff.changed));
    if (!diff.listeners_added.empty()) l.str("listeners_added", names(diff.listeners_added));
    if (!diff.listeners_removed.empty()) l.str("listeners_removed", names(diff.listeners_removed));
    if (!diff.listeners_changed.empty()) l.str("listeners_changed", names(diff.listeners_changed));
  }

  // A refused reload says where (what: "file:line:col: message") and keeps
  // the running generation. tls_reload_failed is the same event under the
  // name the TLS reload had before config reloads existed.
  void reload_failed(const std::string& what, const std::string& message, int line) {
    ++reloads_failed_;
    log::Line(log::Level::error, "config.reload_failed").str("error", what).num("line", line);
    log::Line(log::Level::error, "tls.reload_failed").str("error", message).num("line", line);
    notify_ready(live());  // still serving, with the running generation
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
      // The service manager's status line, when it changed.
      if (const std::size_t n = live(); n != status_sent_) {
        status_sent_ = n;
        notify_status(n);
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
    draining_ = true;  // /readyz answers 503 from now on
    notify_stopping(live());
    log::Line(log::Level::info, "shutdown")
        .str("signal", sig == SIGTERM ? "SIGTERM" : "SIGINT")
        .num("sessions", static_cast<std::int64_t>(live()))
        .num("drain_ms", cfg_->drain.count());
    for (auto& b : bound_)
      for (auto& l : b.per_worker) {
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
  static bool changed(const config::SharedState& a, const config::SharedState& b) {
    return a.backend != b.backend || a.host != b.host || a.port != b.port || a.db != b.db ||
           a.password != b.password || a.refuse_when_down != b.refuse_when_down || a.lease_ttl != b.lease_ttl ||
           a.key_prefix != b.key_prefix;
  }

  std::unique_ptr<state::SharedCounters> shared_;  // state.backend: redis; outlives the workers' use
  std::vector<std::unique_ptr<core::Worker>> workers_;
  std::vector<std::unique_ptr<proxy::WorkerGateway>> gateways_;  // one per worker, same order
  std::vector<Bound> bound_;    // the current generation's listeners
  std::vector<Bound> retired_;  // removed by reloads, stopped
  asio::io_context* main_io_ = nullptr;
  std::vector<std::unique_ptr<upstream::EchoServer>> echo_;
  core::TrimPolicy trim_;
  std::size_t status_sent_ = 0;  // connections in the last STATUS= sent
  std::unique_ptr<admin::HttpServer> admin_;
  std::unique_ptr<upstream::Prober> prober_;
  std::unique_ptr<upstream::Supervisor> supervisor_;
  std::unique_ptr<upstream::DnsWatch> dns_;
  config::ResolvedNames resolved_;  // the names' latest addresses (main thread)
  std::vector<std::size_t> collectors_;
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  std::uint64_t reloads_ok_ = 0, reloads_failed_ = 0;
  bool listening_ = false;
  bool draining_ = false;
};

void Server::stalled_workers(std::function<void(std::vector<unsigned>)> done) {
  probe_workers(workers_, *main_io_, std::move(done));
}

void Server::sessions(std::size_t first, std::function<void(SessionPage)> done) {
  list_sessions(workers_, *main_io_, first, std::move(done));
}

void Server::close_session(std::uint64_t id, std::uint16_t code, std::string reason, std::function<void(bool)> done) {
  app::close_session(workers_, *main_io_, id, code, std::move(reason), std::move(done));
}

}  // namespace

int run_server(std::shared_ptr<const config::Config> cfg) {
  Server s(std::move(cfg));
  return s.run();
}

}  // namespace weir::app
