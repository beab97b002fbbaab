// The Redis store (state/shared_counters.h) on hiredis's async API.
//
// Threading: one dedicated Redis I/O thread per process, with one
// connection, rather than hiredis attached to every worker's loop. Workers
// post their requests to it (a mutex-guarded queue and an eventfd) and it
// posts the answers back with Worker::post, so no worker ever waits on
// Redis. One connection makes this instance one lease holder (its slot
// counts live under one lease id, renewed by one timer, written back by one
// resync after a reconnect); per-worker connections would need N leases or
// cross-worker bookkeeping for the same thing. The connection pipelines:
// every request is written as soon as it is queued, replies come in order.
// Scripts are called with EVALSHA (their SHA1 is computed here; SCRIPT LOAD
// runs once per connection) and sent again with EVAL on NOSCRIPT.

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <deque>
#include <mutex>
#include <random>
#include <thread>
#include <unordered_map>

#include "config/config.h"
#include "core/clock.h"
#include "core/worker.h"
#include "observability/log.h"
#include "state/redis_scripts.h"

namespace weir::state {

namespace {

using namespace redis;

// A reply slower than this counts as Redis lost (the connection is dropped,
// the waiting handshakes fall back): a hung server must not hold handshakes
// until their timeout.
constexpr std::int64_t kReplyTimeoutMs = 1'000;
constexpr std::int64_t kBackoffMinMs = 100, kBackoffMaxMs = 5'000;

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

SharedCounters* g_shared = nullptr;

class RedisCounters final : public SharedCounters {
 public:
  explicit RedisCounters(const config::SharedState& s) : s_(s), wake_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
    std::random_device rd;
    char id[32];
    std::snprintf(id, sizeof id, "%08x%08x", rd(), rd());
    instance_ = id;
    thread_ = std::thread([this] { run(); });
  }
  ~RedisCounters() override {
    stop_.store(true);
    wake();
    thread_.join();
    ::close(wake_);
  }

  void admit(Admission a, core::Worker& worker, std::function<void(AdmissionResult)> done) override {
    enqueue([this, a = std::move(a), w = &worker, done = std::move(done)]() mutable {
      auto answer = [w, done = std::move(done)](AdmissionResult r) mutable {
        w->post([done = std::move(done), r] { done(r); });
      };
      if (ac_ == nullptr || !up_.load(std::memory_order_relaxed)) return answer({});
      std::vector<std::string> slots;
      for (const auto& s : a.slots) slots.push_back(s.key);
      send(admit_call(s_.key_prefix, lease_id_, a),
           [this, answer = std::move(answer), slots = std::move(slots)](redisReply* r) mutable {
             AdmissionResult res;
             if (r != nullptr && r->type == REDIS_REPLY_ARRAY && r->elements == 3) {
               res = admission_result(r->element[0]->integer, r->element[1]->integer, r->element[2]->integer);
               if (res.kind == AdmissionResult::Kind::admitted)
                 for (const auto& k : slots) book_.add(k);
             } else if (r != nullptr) {
               log_error("admit", r);
             }
             answer(res);
           });
    });
  }

  void lease(std::string key, double rate, double burst, double want,
             std::function<void(double, std::int64_t, bool)> done) override {
    enqueue([this, key = std::move(key), rate, burst, want, done = std::move(done)]() mutable {
      if (ac_ == nullptr || !up_.load(std::memory_order_relaxed)) return done(0, 0, false);
      send(grant_call(s_.key_prefix, key, rate, burst, want), [this, done = std::move(done)](redisReply* r) {
        if (r != nullptr && r->type == REDIS_REPLY_ARRAY && r->elements == 2)
          return done(static_cast<double>(r->element[0]->integer), r->element[1]->integer, true);
        if (r != nullptr) log_error("grant", r);
        done(0, 0, false);
      });
    });
  }

  void release(std::vector<std::string> keys) override {
    enqueue([this, keys = std::move(keys)] {
      std::vector<std::string> held;
      for (const auto& k : keys)
        if (book_.remove(k)) held.push_back(k);
      // While down the book alone changes; the resync after the reconnect
      // writes it back whole.
      if (held.empty() || ac_ == nullptr || !up_.load(std::memory_order_relaxed)) return;
      send(release_call(s_.key_prefix, lease_id_, held), [this](redisReply* r) {
        if (r != nullptr && r->type == REDIS_REPLY_ERROR) log_error("release", r);
      });
    });
  }

  void revoke(Revocations::Entry e) override {
    enqueue([this, e = std::move(e)]() mutable {
      unsent_.push_back(std::move(e));
      if (ac_ != nullptr && up_.load(std::memory_order_relaxed)) flush_revocations();
    });
  }

  void on_revoked(std::function<void(std::vector<Revocations::Entry>)> listener) override {
    enqueue([this, listener = std::move(listener)]() mutable {
      on_revoked_ = std::move(listener);
      if (ac_ != nullptr && up_.load(std::memory_order_relaxed)) load_revocations();
    });
  }

  void find(std::string key, core::Worker& worker, std::function<void(std::string)> done) override {
    enqueue([this, key = std::move(key), w = &worker, done = std::move(done)]() mutable {
      auto answer = [w, done = std::move(done)](std::string v) mutable {
        w->post([done = std::move(done), v = std::move(v)]() mutable { done(std::move(v)); });
      };
      if (ac_ == nullptr || !up_.load(std::memory_order_relaxed)) return answer("");
      command({"GET", map_key(key)}, [answer = std::move(answer)](redisReply* r) mutable {
        answer(std::string(text(r)));
      });
    });
  }

  void hold(std::string key, std::string value, std::int64_t ttl_ms) override {
    enqueue([this, key = std::move(key), value = std::move(value), ttl_ms]() mutable {
      Held& h = held_map_[key];
      h.value = std::move(value);  // the latest session's member
      h.ttl_ms = ttl_ms;
      ++h.sessions;
      write_map(key, h);
    });
  }

  void unhold(std::string key) override {
    enqueue([this, key = std::move(key)] {
      const auto it = held_map_.find(key);
      if (it == held_map_.end()) return;
      if (--it->second.sessions > 0) return;
      if (ac_ == nullptr || !up_.load(std::memory_order_relaxed)) {
        it->second.written_ms = 0;  // the resync after the reconnect writes it once, then drops it
        return;
      }
      write_map(key, it->second);  // the ttl runs from the end of the last session
      held_map_.erase(it);
    });
  }

  bool up() const override { return up_.load(std::memory_order_acquire); }
  bool refuse_when_down() const override { return s_.refuse_when_down; }
  std::string endpoint() const override { return s_.host + ":" + std::to_string(s_.port) + "/" + std::to_string(s_.db); }

 private:
  void enqueue(std::function<void()> f) {
    {
      std::lock_guard lock(mu_);
      jobs_.push_back(std::move(f));
    }
    wake();
  }
  void wake() {
    const std::uint64_t one = 1;
    (void)!::write(wake_, &one, sizeof one);
  }

  // Everything below runs on the Redis thread.
  void run() {
    while (!stop_.load()) {
      const std::int64_t now = now_ms();
      if (ac_ == nullptr && now >= next_connect_) connect();
      if (ac_ != nullptr && up_.load() && now >= next_renew_) renew();
      if (ac_ != nullptr && rev_loaded_ && !rev_reading_ && now >= next_rev_poll_) read_revocations();
      if (ac_ != nullptr && up_.load() && !held_map_.empty() && now >= next_map_refresh_) refresh_map(false);
      if (ac_ != nullptr && !sent_.empty() && now - sent_.front() > kReplyTimeoutMs) drop("no reply within 1s");
      std::int64_t wait = 1'000;
      if (ac_ == nullptr) wait = std::min(wait, next_connect_ - now);
      else if (up_.load()) wait = std::min(wait, next_renew_ - now);
      if (ac_ != nullptr && rev_loaded_ && !rev_reading_) wait = std::min(wait, next_rev_poll_ - now);
      if (ac_ != nullptr && up_.load() && !held_map_.empty()) wait = std::min(wait, next_map_refresh_ - now);
      if (!sent_.empty()) wait = std::min(wait, sent_.front() + kReplyTimeoutMs + 1 - now);
      pollfd fds[2] = {{wake_, POLLIN, 0}, {-1, 0, 0}};
      if (ac_ != nullptr) {
        fds[1].fd = ac_->c.fd;
        fds[1].events = static_cast<short>((want_read_ ? POLLIN : 0) | (want_write_ ? POLLOUT : 0));
      }
      ::poll(fds, 2, static_cast<int>(std::max<std::int64_t>(wait, 1)));
      if (fds[0].revents & POLLIN) {
        std::uint64_t n;
        (void)!::read(wake_, &n, sizeof n);
        std::vector<std::function<void()>> jobs;
        {
          std::lock_guard lock(mu_);
          jobs.swap(jobs_);
        }
        for (auto& j : jobs) j();
      }
      if (ac_ != nullptr && fds[1].fd == ac_->c.fd) {
        if (fds[1].revents & (POLLIN | POLLERR | POLLHUP)) redisAsyncHandleRead(ac_);
        if (ac_ != nullptr && (fds[1].revents & POLLOUT)) redisAsyncHandleWrite(ac_);
      }
    }
    if (ac_ != nullptr) {
      redisAsyncContext* ac = ac_;
      ac_ = nullptr;
      redisAsyncFree(ac);
    }
  }

  void connect() {
    redisAsyncContext* ac = redisAsyncConnect(s_.host.c_str(), s_.port);
    if (ac == nullptr || ac->err != 0) {
      const std::string err = ac != nullptr ? ac->errstr : "out of memory";
      if (ac != nullptr) redisAsyncFree(ac);
      return went_down(err);
    }
    ac_ = ac;
    ac->data = this;
    ac->ev.data = this;
    ac->ev.addRead = [](void* p) { static_cast<RedisCounters*>(p)->want_read_ = true; };
    ac->ev.delRead = [](void* p) { static_cast<RedisCounters*>(p)->want_read_ = false; };
    ac->ev.addWrite = [](void* p) { static_cast<RedisCounters*>(p)->want_write_ = true; };
    ac->ev.delWrite = [](void* p) { static_cast<RedisCounters*>(p)->want_write_ = false; };
    ac->ev.cleanup = [](void* p) {
      auto* self = static_cast<RedisCounters*>(p);
      self->want_read_ = self->want_write_ = false;
    };
    redisAsyncSetConnectCallback(ac, [](const redisAsyncContext* c, int status) {
      auto* self = static_cast<RedisCounters*>(c->data);
      if (status != REDIS_OK) {
        self->ac_ = nullptr;  // hiredis frees it
        self->sent_.clear();
        self->went_down(c->errstr);
      }
    });
    redisAsyncSetDisconnectCallback(ac, [](const redisAsyncContext* c, int) {
      auto* self = static_cast<RedisCounters*>(c->data);
      self->ac_ = nullptr;
      self->sent_.clear();
      self->went_down(c->err != 0 ? c->errstr : "connection closed");
    });
    // Pipelined behind the connect: AUTH, SELECT, the scripts, then this
    // instance's counts under a new lease. Up once that answers.
    auto fail_on_error = [this](const char* what) {
      return [this, what](redisReply* r) {
        if (r != nullptr && r->type == REDIS_REPLY_ERROR) {
          log_error(what, r);
          drop(std::string(what) + " failed");
        }
      };
    };
    if (!s_.password.empty()) command({"AUTH", s_.password}, fail_on_error("AUTH"));
    if (s_.db != 0) command({"SELECT", std::to_string(s_.db)}, fail_on_error("SELECT"));
    for (std::size_t i = 0; i < kScripts; ++i)
      command({"SCRIPT", "LOAD", script_source(static_cast<Script>(i))}, fail_on_error("SCRIPT LOAD"));
    resync();
  }

  // A new lease id takes over every count this instance holds.
  void resync() {
    const std::string old = lease_id_;
    lease_id_ = instance_ + ":" + std::to_string(++epoch_);
    send(book_.resync_call(s_.key_prefix, old, lease_id_, s_.lease_ttl.count()), [this](redisReply* r) {
      if (r == nullptr) return;
      if (r->type == REDIS_REPLY_ERROR) {
        log_error("resync", r);
        return drop("resync failed");
      }
      next_renew_ = now_ms() + s_.lease_ttl.count() / 3;
      backoff_ = kBackoffMinMs;
      if (!up_.exchange(true, std::memory_order_release)) {
        log::Line(log::Level::info, "redis.up")
            .str("redis", endpoint())
            .str("lease", lease_id_)
            .unum("slot_keys", book_.keys());
        down_logged_ = false;
      }
      // What this instance holds beyond slot counts, written back too (a
      // restarted, empty Redis learns it again), then what the others wrote.
      flush_revocations();
      refresh_map(true);
      for (auto& c : revocation_restore_commands(s_.key_prefix, Revocations::global().list(core::wall_now_ms())))
        command(std::move(c), [this](redisReply* r) {
          if (r != nullptr && r->type == REDIS_REPLY_ERROR) log_error("ZADD", r);
        });
      load_revocations();
    });
  }

  void renew() {
    next_renew_ = now_ms() + s_.lease_ttl.count() / 3;
    send(renew_call(s_.key_prefix, lease_id_, s_.lease_ttl.count()), [this](redisReply* r) {
      if (r == nullptr) return;
      if (r->type == REDIS_REPLY_ERROR) return log_error("renew", r);
      if (r->type == REDIS_REPLY_INTEGER && r->integer == 1) {
        log::Line(log::Level::warn, "redis.lease_lost").str("lease", lease_id_);
        resync();
      }
    });
  }

  // Revocations made here (while down too); one whose answer is lost goes
  // back to the queue for the next connection (their order does not matter:
  // an entry keeps the later end).
  void flush_revocations() {
    const std::int64_t now = core::wall_now_ms();
    std::vector<Revocations::Entry> todo;
    todo.swap(unsent_);
    for (auto& e : todo) {
      send(revoke_call(s_.key_prefix, instance_, e, now), [this, e](redisReply* r) {
        if (r == nullptr) return unsent_.push_back(e);
        if (r->type == REDIS_REPLY_ERROR) log_error("revoke", r);
      });
    }
  }

  // Every revocation in force, and where this instance reads the log on from.
  void load_revocations() {
    send(revocations_call(s_.key_prefix, core::wall_now_ms()), [this](redisReply* r) {
      if (r == nullptr) return;
      if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 || r->element[0]->type != REDIS_REPLY_STRING ||
          r->element[1]->type != REDIS_REPLY_ARRAY) {
        if (r->type == REDIS_REPLY_ERROR) log_error("revocations", r);
        return;
      }
      rev_last_id_.assign(r->element[0]->str, r->element[0]->len);
      rev_loaded_ = true;
      next_rev_poll_ = now_ms() + kRevocationPollMs;
      std::vector<Revocations::Entry> got;
      const redisReply* all = r->element[1];
      for (std::size_t i = 0; i + 1 < all->elements; i += 2) {
        if (auto e = revocation_entry(text(all->element[i]), text(all->element[i + 1]))) got.push_back(std::move(*e));
      }
      if (!got.empty() && on_revoked_) on_revoked_(std::move(got));
    });
  }

  // The log since the last id seen: the other instances' revocations.
  void read_revocations() {
    rev_reading_ = true;
    command(revocation_read_command(s_.key_prefix, rev_last_id_), [this](redisReply* r) {
      rev_reading_ = false;
      if (r == nullptr) return;
      next_rev_poll_ = now_ms() + kRevocationPollMs;
      if (r->type == REDIS_REPLY_ERROR) return log_error("XREAD", r);
      // [[stream, [[id, [field, value, ...]], ...]]], or nil when nothing is new.
      if (r->type != REDIS_REPLY_ARRAY || r->elements != 1 || r->element[0]->type != REDIS_REPLY_ARRAY ||
          r->element[0]->elements != 2 || r->element[0]->element[1]->type != REDIS_REPLY_ARRAY)
        return;
      const redisReply* entries = r->element[0]->element[1];
      std::vector<Revocations::Entry> got;
      for (std::size_t i = 0; i < entries->elements; ++i) {
        const redisReply* en = entries->element[i];
        if (en->type != REDIS_REPLY_ARRAY || en->elements != 2 || en->element[1]->type != REDIS_REPLY_ARRAY) continue;
        rev_last_id_ = std::string(text(en->element[0]));
        std::string_view m, u, from;
        const redisReply* f = en->element[1];
        for (std::size_t k = 0; k + 1 < f->elements; k += 2) {
          const std::string_view name = text(f->element[k]);
          const std::string_view value = text(f->element[k + 1]);
          if (name == "m") m = value;
          else if (name == "u") u = value;
          else if (name == "i") from = value;
        }
        if (from == instance_) continue;  // this instance's own: known already
        if (auto e = revocation_entry(m, u)) got.push_back(std::move(*e));
      }
      if (entries->elements >= kRevocationReadBatch) next_rev_poll_ = 0;  // more behind: read on at once
      if (!got.empty() && on_revoked_) on_revoked_(std::move(got));
    });
  }

  struct Held {
    std::string value;
    std::int64_t ttl_ms = 0;
    std::uint32_t sessions = 0;
    std::int64_t written_ms = 0;  // 0: not in Redis yet (down)
  };

  std::string map_key(const std::string& key) const { return s_.key_prefix + "sm:" + key; }

  void write_map(const std::string& key, Held& h) {
    if (ac_ == nullptr || !up_.load(std::memory_order_relaxed)) {
      h.written_ms = 0;  // written by the next resync
      return;
    }
    h.written_ms = now_ms();
    command({"SET", map_key(key), h.value, "PX", std::to_string(h.ttl_ms)}, [this](redisReply* r) {
      if (r != nullptr && r->type == REDIS_REPLY_ERROR) log_error("SET", r);
    });
  }

  // Every second: the keys of live sessions whose ttl is a third gone.
  void refresh_map(bool all) {
    const std::int64_t now = now_ms();
    next_map_refresh_ = now + 1'000;
    for (auto& [key, h] : held_map_)
      if (all || h.written_ms == 0 || now - h.written_ms >= h.ttl_ms / 3) write_map(key, h);
    // Entries whose last session ended while Redis was down: written, done.
    if (all && ac_ != nullptr && up_.load(std::memory_order_relaxed))
      std::erase_if(held_map_, [](const auto& kv) { return kv.second.sessions == 0; });
  }

  static std::string_view text(const redisReply* r) {
    return r != nullptr && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS)
               ? std::string_view(r->str, r->len)
               : std::string_view();
  }

  void went_down(const std::string& why) {
    up_.store(false, std::memory_order_release);
    if (stop_.load()) return;  // our own disconnect at exit: no outage to report
    rev_loaded_ = rev_reading_ = false;
    next_connect_ = now_ms() + backoff_;
    backoff_ = std::min(backoff_ * 2, kBackoffMaxMs);
    if (!down_logged_) {  // once per streak
      down_logged_ = true;
      log::Line(log::Level::warn, "redis.down")
          .str("redis", endpoint())
          .str("error", why)
          .str("on_redis_down", s_.refuse_when_down ? "refuse" : "local");
    }
  }

  void drop(const std::string& why) {
    if (ac_ == nullptr) return;
    redisAsyncContext* ac = ac_;
    ac_ = nullptr;
    sent_.clear();
    went_down(why);
    // Waiting callbacks get a null reply (their handshakes fall back).
    ac->onDisconnect = nullptr;
    redisAsyncFree(ac);
  }

  // Not again while down: a reconnect that fails the same way (a wrong
  // password) every few seconds says nothing new.
  void log_error(const char* what, redisReply* r) {
    if (down_logged_) return;
    log::Line(log::Level::warn, "redis.error").str("command", what).str("error", std::string_view(r->str, r->len));
  }

  using Done = std::function<void(redisReply*)>;
  struct Pending {
    RedisCounters* self;
    Call call;      // kept for the EVAL retry on NOSCRIPT
    bool scripted;
    Done done;
  };

  void command(std::vector<std::string> argv, Done done) {
    dispatch(new Pending{this, {Script::admit, {}, std::move(argv)}, false, std::move(done)}, nullptr);
  }
  void send(Call c, Done done) { dispatch(new Pending{this, std::move(c), true, std::move(done)}, "EVALSHA"); }

  void dispatch(Pending* p, const char* verb) {
    std::vector<std::string> argv;
    if (p->scripted) {
      argv.push_back(verb);
      argv.push_back(std::string(verb) == "EVAL" ? script_source(p->call.script) : script_sha1(p->call.script));
      argv.push_back(std::to_string(p->call.keys.size()));
      argv.insert(argv.end(), p->call.keys.begin(), p->call.keys.end());
    }
    argv.insert(argv.end(), p->call.args.begin(), p->call.args.end());
    std::vector<const char*> ptrs;
    std::vector<std::size_t> lens;
    for (const auto& a : argv) {
      ptrs.push_back(a.data());
      lens.push_back(a.size());
    }
    if (ac_ == nullptr ||
        redisAsyncCommandArgv(ac_, &RedisCounters::on_reply, p, static_cast<int>(argv.size()), ptrs.data(),
                              lens.data()) != REDIS_OK) {
      Done d = std::move(p->done);
      delete p;
      d(nullptr);
      return;
    }
    sent_.push_back(now_ms());
  }

  static void on_reply(redisAsyncContext*, void* reply, void* privdata) {
    auto* p = static_cast<Pending*>(privdata);
    RedisCounters* self = p->self;
    auto* r = static_cast<redisReply*>(reply);
    if (!self->sent_.empty()) self->sent_.pop_front();
    if (r != nullptr && p->scripted && r->type == REDIS_REPLY_ERROR &&
        std::string_view(r->str, r->len).starts_with("NOSCRIPT")) {
      return self->dispatch(p, "EVAL");  // SCRIPT FLUSH, or a restarted server
    }
    Done d = std::move(p->done);
    delete p;
    d(r);
  }

  const config::SharedState s_;
  const int wake_;
  std::string instance_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> up_{false};
  std::mutex mu_;
  std::vector<std::function<void()>> jobs_;
  // Redis thread only.
  redisAsyncContext* ac_ = nullptr;
  bool want_read_ = false, want_write_ = false;
  std::deque<std::int64_t> sent_;  // when each request in flight was written (replies come in order)
  LeaseBook book_;
  std::string lease_id_;
  std::uint64_t epoch_ = 0;
  std::int64_t next_connect_ = 0, next_renew_ = 0, backoff_ = kBackoffMinMs;
  bool down_logged_ = false;
  std::vector<Revocations::Entry> unsent_;
  std::function<void(std::vector<Revocations::Entry>)> on_revoked_;
  std::string rev_last_id_;
  bool rev_loaded_ = false, rev_reading_ = false;
  std::int64_t next_rev_poll_ = 0;
  std::unordered_map<std::string, Held> held_map_;  // session_map keys of live sessions
  std::int64_t next_map_refresh_ = 0;
};

}  // namespace

SharedCounters* SharedCounters::get() { return g_shared; }
void SharedCounters::set(SharedCounters* s) { g_shared = s; }

std::unique_ptr<SharedCounters> start_redis_counters(const config::SharedState& settings) {
  return std::make_unique<RedisCounters>(settings);
}

}  // namespace weir::state
