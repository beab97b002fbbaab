#include "app/worker_queries.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>

#include "core/clock.h"
#include "observability/log.h"

namespace weir::app {

namespace asio = boost::asio;
using boost::system::error_code;

namespace {

// Asks every worker, on its own loop, and answers once all did or the
// deadline passed (then naming the ones that did not: a stalled loop must
// not hold an admin request, or its connection, for ever).
template <class Part>
struct Gather {
  Gather(std::size_t n, asio::io_context& io) : parts(n), answered(n, false), timer(io), left(n) {}
  std::vector<Part> parts;
  std::vector<bool> answered;
  asio::steady_timer timer;
  std::size_t left;
  bool done = false;
  std::function<void(Gather&)> finish;

  void arrive(std::size_t i, Part p) {
    if (done) return;
    parts[i] = std::move(p);
    answered[i] = true;
    if (--left == 0) end();
  }
  void end() {
    if (done) return;
    done = true;
    timer.cancel();
    finish(*this);
  }
  std::vector<unsigned> missing() const {
    std::vector<unsigned> out;
    for (std::size_t i = 0; i < answered.size(); ++i)
      if (!answered[i]) out.push_back(static_cast<unsigned>(i));
    return out;
  }
};

template <class Part, class Ask>
void gather(Workers& workers, asio::io_context& io, Ask ask,
            std::function<void(Gather<Part>&)> finish) {
  auto g = std::make_shared<Gather<Part>>(workers.size(), io);
  g->finish = std::move(finish);
  g->timer.expires_after(std::chrono::seconds(1));
  g->timer.async_wait([g](error_code ec) {
    if (!ec) g->end();
  });
  for (std::size_t i = 0; i < workers.size(); ++i) {
    core::Worker* wp = workers[i].get();
    wp->post([wp, g, i, ask, io = &io]() mutable {
      Part p = ask(*wp);
      asio::post(*io, [g, i, p = std::move(p)]() mutable { g->arrive(i, std::move(p)); });
    });
  }
}

struct WorkerSessions {
  std::size_t total = 0;
  std::vector<core::SessionInfo> first;
};

}  // namespace

void list_sessions(Workers& workers, asio::io_context& io, std::size_t first,
                   std::function<void(admin::Gateway::SessionPage)> done) {
  gather<WorkerSessions>(
      workers, io,
      [first](core::Worker& w) {
        // The worker's list runs newest first and ids grow: the oldest
        // `first` are the ones with the lowest ids. Only they are described.
        WorkerSessions out;
        std::vector<core::Closable*> ring;
        ring.reserve(std::min<std::size_t>(first, 4096));
        std::size_t at = 0;
        w.for_each([&](core::Closable& c) {
          if (c.session_id() == 0) return;  // not a client session (the echo upstream's)
          ++out.total;
          if (first == 0) return;
          if (ring.size() < first) ring.push_back(&c);
          else ring[at++ % first] = &c;
        });
        for (core::Closable* c : ring) {
          core::SessionInfo i;
          if (c->describe(i)) out.first.push_back(std::move(i));
        }
        return out;
      },
      [done = std::move(done)](Gather<WorkerSessions>& g) {
        admin::Gateway::SessionPage page;
        for (auto& p : g.parts) {
          page.total += p.total;
          for (auto& i : p.first) page.sessions.push_back(std::move(i));
        }
        page.stalled = g.missing();
        done(std::move(page));
      });
}

// A probe posted to every worker: one that has not run it within 1 s is
// stalled (a loop iteration that long is a bug).
void probe_workers(Workers& workers, asio::io_context& io, std::function<void(std::vector<unsigned>)> done) {
  gather<char>(
      workers, io, [](core::Worker&) -> char { return 1; },
      [done = std::move(done)](Gather<char>& g) { done(g.missing()); });
}

void close_session(Workers& workers, asio::io_context& io, std::uint64_t id, std::uint16_t code, std::string reason,
                   std::function<void(bool)> done) {
  gather<char>(
      workers, io,
      [id, code, reason](core::Worker& w) -> char {
        core::Closable* target = nullptr;
        w.for_each([&](core::Closable& c) {
          if (c.session_id() == id) target = &c;
        });
        if (target == nullptr) return 0;
        log::Line(log::Level::info, "admin.close").unum("id", id).num("code", code).str("reason", reason);
        target->shutdown(code, reason);
        return 1;
      },
      [done = std::move(done)](Gather<char>& g) {
        bool found = false;
        for (char c : g.parts) found |= c != 0;
        done(found);
      });
}

namespace {

using Match = std::function<bool(const core::SessionInfo&)>;

// On a worker: every session `match` accepts, at most `max` (picked at
// random when there are more), is asked to close. Returns how many.
std::size_t close_on_worker(core::Worker& w, const Match& match, std::size_t max, std::uint16_t code,
                            const std::string& reason, const char* event) {
  std::vector<core::Closable*> targets;
  w.for_each([&](core::Closable& c) {
    core::SessionInfo i;
    if (c.session_id() == 0 || !c.describe(i)) return;
    if (match(i)) targets.push_back(&c);
  });
  if (targets.size() > max) {
    // A random `max` of them (partial Fisher-Yates).
    std::uint64_t x = 0x9e3779b97f4a7c15ull ^ static_cast<std::uint64_t>(core::coarse_now_ms()) ^ targets.size();
    for (std::size_t k = 0; k < max; ++k) {
      x ^= x >> 12, x ^= x << 25, x ^= x >> 27;
      const std::size_t j = k + static_cast<std::size_t>((x * 0x2545f4914f6cdd1dull) % (targets.size() - k));
      std::swap(targets[k], targets[j]);
    }
    targets.resize(max);
  }
  // Not while walking the list: a shutdown may end a session.
  for (core::Closable* c : targets) {
    log::Line(log::Level::info, event).unum("id", c->session_id()).num("code", code).str("reason", reason);
    c->shutdown(code, reason);
  }
  return targets.size();
}

// One worker after the other (from a random one), each closing what is
// left of `max`, so that the total never exceeds it.
struct Walk : std::enable_shared_from_this<Walk> {
  Workers* workers;
  asio::io_context* io;
  Match match;
  std::size_t left, next, steps = 0, closed = 0;
  std::uint16_t code;
  std::string reason;
  std::function<void(std::size_t)> done;

  void step() {
    if (left == 0 || steps == workers->size()) return done(closed);
    core::Worker* w = (*workers)[next % workers->size()].get();
    ++next;
    ++steps;
    w->post([self = shared_from_this(), w] {
      const std::size_t n = close_on_worker(*w, self->match, self->left, self->code, self->reason, "upstream.close");
      asio::post(*self->io, [self, n] {
        self->left -= n;
        self->closed += n;
        self->step();
      });
    });
  }
};

}  // namespace

void close_identity(Workers& workers, asio::io_context& io, std::string sub, std::string jti, std::uint16_t code,
                    std::string reason, std::function<void(std::size_t)> done) {
  Match match = [sub = std::move(sub), jti = std::move(jti)](const core::SessionInfo& i) {
    return (!sub.empty() && i.user == sub) || (!jti.empty() && i.token_id == jti);
  };
  gather<std::size_t>(
      workers, io,
      [match = std::move(match), code, reason](core::Worker& w) -> std::size_t {
        return close_on_worker(w, match, SIZE_MAX, code, reason, "admin.revoke_close");
      },
      [done = std::move(done)](Gather<std::size_t>& g) {
        std::size_t n = 0;
        for (std::size_t c : g.parts) n += c;
        done(n);
      });
}

void close_member(Workers& workers, asio::io_context& io, const void* member, std::size_t max,
                  std::int64_t min_age_ms, std::uint16_t code, std::string reason,
                  std::function<void(std::size_t)> done) {
  if (workers.empty()) return done(0);
  auto walk = std::make_shared<Walk>();
  walk->workers = &workers;
  walk->io = &io;
  walk->match = [member, min_age_ms](const core::SessionInfo& i) {
    return i.member == member && !i.pinned && i.age_ms >= min_age_ms && std::string_view(i.state) == "relay";
  };
  walk->left = max;
  walk->next = static_cast<std::size_t>(core::coarse_now_ms());
  walk->code = code;
  walk->reason = std::move(reason);
  walk->done = std::move(done);
  walk->step();
}

}  // namespace weir::app
