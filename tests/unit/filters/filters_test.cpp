// The filter API: the registry and the filters' YAML, the resumable
// handshake chain (a filter resuming from a timer on the real worker loop, a
// session dying while a filter waits), the token bucket at its edges, and
// message_rate / max_message verdicts from frame headers.

#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <memory>
#include <string>

#include "../config/error_of.h"
#include "config/config.h"
#include "config/filter_types.h"
#include "core/clock.h"
#include "core/worker.h"
#include "filters/max_message/max_message.h"
#include "filters/message_rate/message_rate.h"
#include "filters/message_rate/token_bucket.h"
#include "filters/session_filters.h"
#include "http/head.h"

namespace weir::filters {
namespace {

using config::testing::error_of;

std::string route_with(const std::string& lines) {
  return "listeners: [{port: 8080}]\nroutes:\n  - upstreams: echo\n" + lines;
}

config::Config load(const std::string& lines) { return config::load_string(route_with(lines), "t.yaml"); }

// --------------------------------------------------------------- registry

TEST(FilterRegistry, KeysAreKnownAndOrdered) {
  ASSERT_NE(config::find_filter_type("origins"), nullptr);
  ASSERT_NE(config::find_filter_type("message_rate"), nullptr);
  ASSERT_NE(config::find_filter_type("max_message"), nullptr);
  EXPECT_EQ(config::find_filter_type("nope"), nullptr);
  // Written rate-first, run size-first (order 60 before 70), origin before both.
  const auto c = load("    message_rate: {messages_per_second: 10}\n    max_message: 1KiB\n    origins: '*'\n");
  const auto& f = c.routes[0].filters;
  ASSERT_EQ(f.size(), 3u);
  EXPECT_EQ(f[0]->key, "origins");
  EXPECT_EQ(f[1]->key, "max_message");
  EXPECT_EQ(f[2]->key, "message_rate");
  EXPECT_EQ(f[2]->pos.line, 4);
  const Chain chain(f);
  EXPECT_EQ(chain.hooks(), unsigned{kHandshake | kFrames});
  EXPECT_FALSE(chain.needs_payload());
}

TEST(FilterRegistry, ErrorsAtFileLineColumn) {
  EXPECT_EQ(error_of(route_with("    message_rate: {}\n")),
            "t.yaml:4:19: 'message_rate' needs 'messages_per_second' or 'bytes_per_second' (or both)");
  EXPECT_EQ(error_of(route_with("    message_rate: {messages_per_second: 5, action: kill}\n")),
            "t.yaml:4:52: 'message_rate.action' must be one of close, drop, throttle, got 'kill'");
  EXPECT_EQ(error_of(route_with("    message_rate: {messages_per_second: 5, acton: drop}\n")),
            "t.yaml:4:44: unknown key 'acton' in 'message_rate' (did you mean 'action'?)");
  EXPECT_EQ(error_of(route_with("    message_rate: {messages_per_second: -1}\n")),
            "t.yaml:4:41: 'message_rate.messages_per_second' must be a number from 0.001 to 1000000000, got '-1'");
  EXPECT_EQ(error_of(route_with("    message_rate: {bytes_per_second: 1KiB, burst_messages: 3}\n")),
            "t.yaml:4:60: 'message_rate.burst_messages' is set but 'messages_per_second' is not");
  EXPECT_EQ(error_of(route_with("    max_message: lots\n")),
            "t.yaml:4:18: invalid size 'lots' for 'max_message' (use e.g. 4096, 64KiB, 16MiB)");
  EXPECT_EQ(error_of(route_with("    max_message: {client_to_upstream: 1KiB, sideways: 3}\n")),
            "t.yaml:4:45: unknown key 'sideways' in 'max_message'");
  EXPECT_EQ(error_of(route_with("    origins: [example.com]\n")),
            "t.yaml:4:15: invalid origin 'example.com' (use scheme://host[:port] with no path, e.g. "
            "https://chat.example.com, scheme://*.domain for its subdomains, or '*')");
  EXPECT_EQ(error_of(route_with("    message_rat: {}\n")).substr(0, 62),
            "t.yaml:4:5: unknown key 'message_rat' in route (did you mean '");
}

TEST(FilterRegistry, SanitizeReadsPayloads) {
  const auto c = load("    sanitize: {direction: client, control_chars: drop}\n    max_message: 1KiB\n");
  const Chain chain(c.routes[0].filters);
  ASSERT_EQ(chain.filters().size(), 2u);
  EXPECT_EQ(chain.filters()[1]->name(), "sanitize");  // payload filters run last
  EXPECT_TRUE(chain.needs_payload());
  EXPECT_EQ(chain.hooks(), unsigned{kFrames | kMessages});
  EXPECT_EQ(error_of(route_with("    sanitize: {html: keep}\n")),
            "t.yaml:4:15: 'sanitize' changes nothing: set 'html: escape', 'html: strip' or 'control_chars: drop'");
  EXPECT_EQ(error_of(route_with("    sanitize: {direction: sideways}\n")),
            "t.yaml:4:27: 'sanitize.direction' must be one of client, upstream, both, got 'sideways'");
  EXPECT_EQ(error_of(route_with("    sanitize: {html: scrub}\n")),
            "t.yaml:4:22: 'sanitize.html' must be one of escape, strip, keep, got 'scrub'");
}

TEST(FilterRegistry, Settings) {
  const auto c = load(
      "    message_rate: {messages_per_second: 2.5, bytes_per_second: 1KiB, burst_bytes: 4KiB,"
      " direction: both, action: throttle}\n"
      "    max_message: {upstream_to_client: 2KiB}\n");
  const auto& mm = dynamic_cast<const MaxMessageFilter&>(*c.routes[0].filters[0]);
  EXPECT_EQ(mm.limit(Direction::to_upstream), 0u);
  EXPECT_EQ(mm.limit(Direction::to_client), 2048u);
  const auto& s = dynamic_cast<const MessageRateFilter&>(*c.routes[0].filters[1]).settings();
  EXPECT_DOUBLE_EQ(s.messages_per_second, 2.5);
  EXPECT_DOUBLE_EQ(s.burst_messages, 2.5);
  EXPECT_DOUBLE_EQ(s.bytes_per_second, 1024);
  EXPECT_DOUBLE_EQ(s.burst_bytes, 4096);
  EXPECT_TRUE(s.limit_client);
  EXPECT_TRUE(s.limit_upstream);
  EXPECT_EQ(s.action, MessageRateFilter::Action::throttle);
  // Same settings compare equal for a reload summary; different ones do not.
  const auto c2 = load("    max_message: {upstream_to_client: 2KiB}\n");
  const auto c3 = load("    max_message: {upstream_to_client: 3KiB}\n");
  EXPECT_TRUE(c.routes[0].filters[0]->same_as(*c2.routes[0].filters[0]));
  EXPECT_FALSE(c.routes[0].filters[0]->same_as(*c3.routes[0].filters[0]));
}

// ------------------------------------------------------- resumable chain

// Waits `delay_ms` on the worker's timer wheel, then answers.
class TimerFilter final : public Filter {
 public:
  TimerFilter(int delay_ms, HandshakeVerdict answer, int* instances)
      : delay_(delay_ms), answer_(std::move(answer)), instances_(instances) {
    key = "timer";
  }
  unsigned hooks() const override { return kHandshake; }
  bool same_as(const config::FilterSettings&) const override { return false; }
  std::unique_ptr<Instance> instantiate() const override { return std::make_unique<Inst>(*this); }

 private:
  struct Inst final : Instance, core::TimerTarget {
    explicit Inst(const TimerFilter& f) : f(f) { ++*f.instances_; }
    ~Inst() override {
      if (worker) worker->cancel_timer(this);
      --*f.instances_;
    }
    HandshakeVerdict on_handshake(HandshakeContext& ctx) override {
      ctx.upstream_headers.push_back({"X-Timer", "waited"});
      worker = &ctx.worker;
      resume = ctx.resume;
      worker->schedule_timer(this, core::coarse_now_ms() + f.delay_);
      return HandshakeVerdict::pending();
    }
    void on_due(std::int64_t) override {
      fired = true;
      resume(f.answer_);
    }
    const TimerFilter& f;
    core::Worker* worker = nullptr;
    Resume resume;
    bool fired = false;
  };
  int delay_;
  HandshakeVerdict answer_;
  int* instances_;
};

class CountingFilter final : public Filter {
 public:
  explicit CountingFilter(int* calls, bool refuse) : calls_(calls), refuse_(refuse) { key = "counting"; }
  unsigned hooks() const override { return kHandshake; }
  bool same_as(const config::FilterSettings&) const override { return false; }
  std::unique_ptr<Instance> instantiate() const override { return std::make_unique<Inst>(*this); }

 private:
  struct Inst final : Instance {
    explicit Inst(const CountingFilter& f) : f(f) {}
    HandshakeVerdict on_handshake(HandshakeContext&) override {
      ++*f.calls_;
      if (f.refuse_) return HandshakeVerdict::refuse(429, "slow down", {{"Retry-After", "3"}});
      return HandshakeVerdict::proceed();
    }
    const CountingFilter& f;
  };
  int* calls_;
  bool refuse_;
};

class ChainOnWorker : public ::testing::Test {
 protected:
  void SetUp() override {
    worker_ = std::make_unique<core::Worker>(0, 4096);
    worker_->start();
    ASSERT_EQ(http::parse_request_head(raw_, 8192, head_), http::ParseStatus::complete);
  }
  void TearDown() override {
    worker_->stop();
    worker_->join();
  }
  template <class F>
  void on_worker(F f) {
    std::promise<void> done;
    worker_->post([&] {
      f();
      done.set_value();
    });
    done.get_future().wait();
  }
  std::unique_ptr<core::Worker> worker_;
  std::string raw_ = "GET /chat HTTP/1.1\r\nHost: x\r\n\r\n";
  http::Head head_;
  config::Route route_;
};

TEST_F(ChainOnWorker, FilterResumesFromATimerThenTheNextOneRuns) {
  int instances = 0, calls = 0;
  std::vector<std::shared_ptr<const config::FilterSettings>> list{
      std::make_shared<TimerFilter>(30, HandshakeVerdict::proceed(), &instances),
      std::make_shared<CountingFilter>(&calls, true)};
  const Chain chain(list);
  std::unique_ptr<SessionFilters> sf;
  std::unique_ptr<HandshakeContext> ctx;
  std::promise<HandshakeVerdict> verdict;
  std::int64_t started = 0;
  on_worker([&] {
    sf = std::make_unique<SessionFilters>(chain);
    ctx = std::make_unique<HandshakeContext>(HandshakeContext{head_, "127.0.0.1", "", route_, *worker_});
    started = core::coarse_now_ms();
    const auto v = sf->run_handshake(*ctx, [&](HandshakeVerdict v) { verdict.set_value(std::move(v)); });
    EXPECT_EQ(v.kind, HandshakeVerdict::Kind::pending);
    EXPECT_EQ(calls, 0);  // the second filter waits for the first
    EXPECT_TRUE(sf->waiting());
  });
  auto fut = verdict.get_future();
  ASSERT_EQ(fut.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  const HandshakeVerdict v = fut.get();
  on_worker([&] {
    EXPECT_GE(core::coarse_now_ms() - started, 25);
    EXPECT_EQ(calls, 1);
    EXPECT_EQ(v.kind, HandshakeVerdict::Kind::refuse);
    EXPECT_EQ(v.status, 429u);
    ASSERT_EQ(v.headers.size(), 1u);
    EXPECT_EQ(v.headers[0].name, "Retry-After");
    EXPECT_EQ(sf->decided_by(), "counting");
    ASSERT_EQ(ctx->upstream_headers.size(), 1u);
    EXPECT_EQ(ctx->upstream_headers[0].value, "waited");
    EXPECT_FALSE(sf->waiting());
    sf.reset();
  });
  EXPECT_EQ(instances, 0);
}

TEST_F(ChainOnWorker, SessionDiesWhileAFilterWaits) {
  int instances = 0, calls = 0;
  std::vector<std::shared_ptr<const config::FilterSettings>> list{
      std::make_shared<TimerFilter>(20, HandshakeVerdict::proceed(), &instances),
      std::make_shared<CountingFilter>(&calls, false)};
  const Chain chain(list);
  bool done_called = false;
  Resume kept;
  on_worker([&] {
    auto sf = std::make_unique<SessionFilters>(chain);
    HandshakeContext ctx{head_, "127.0.0.1", "", route_, *worker_};
    EXPECT_EQ(sf->run_handshake(ctx, [&](HandshakeVerdict) { done_called = true; }).kind,
              HandshakeVerdict::Kind::pending);
    EXPECT_EQ(instances, 1);
    // A Resume copied out of the filter (as a fetch callback would hold it).
    sf->cancel();
    sf.reset();  // the session is gone: its instances too (their timer cancelled)
  });
  EXPECT_EQ(instances, 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(60));
  on_worker([&] { EXPECT_FALSE(kept.alive()); });
  EXPECT_FALSE(done_called);
  EXPECT_EQ(calls, 0);
}

TEST_F(ChainOnWorker, AResumeThatOutlivesItsSessionDoesNothing) {
  // A filter hands its Resume to something that outlives the session (a
  // shared fetch): calling it after the session died is a no-op.
  struct Keeper final : Filter {
    Resume* out;
    explicit Keeper(Resume* o) : out(o) { key = "keeper"; }
    unsigned hooks() const override { return kHandshake; }
    bool same_as(const config::FilterSettings&) const override { return false; }
    std::unique_ptr<Instance> instantiate() const override {
      struct I final : Instance {
        Resume* out;
        explicit I(Resume* o) : out(o) {}
        HandshakeVerdict on_handshake(HandshakeContext& ctx) override {
          *out = ctx.resume;
          return HandshakeVerdict::pending();
        }
      };
      return std::make_unique<I>(out);
    }
  };
  Resume kept;
  bool done_called = false;
  std::vector<std::shared_ptr<const config::FilterSettings>> list{std::make_shared<Keeper>(&kept)};
  const Chain chain(list);
  on_worker([&] {
    auto sf = std::make_unique<SessionFilters>(chain);
    HandshakeContext ctx{head_, "127.0.0.1", "", route_, *worker_};
    sf->run_handshake(ctx, [&](HandshakeVerdict) { done_called = true; });
    EXPECT_TRUE(kept.alive());
    sf.reset();
    EXPECT_FALSE(kept.alive());
    kept(HandshakeVerdict::proceed());  // harmless
  });
  EXPECT_FALSE(done_called);
}

TEST(SessionFiltersSync, ResumeFromInsideTheHookCountsAsTheAnswer) {
  struct Eager final : Filter {
    Eager() { key = "eager"; }
    unsigned hooks() const override { return kHandshake; }
    bool same_as(const config::FilterSettings&) const override { return false; }
    std::unique_ptr<Instance> instantiate() const override {
      struct I final : Instance {
        HandshakeVerdict on_handshake(HandshakeContext& ctx) override {
          ctx.resume(HandshakeVerdict::refuse(401, "no token", {{"WWW-Authenticate", "Bearer"}}));
          return HandshakeVerdict::pending();
        }
      };
      return std::make_unique<I>();
    }
  };
  std::vector<std::shared_ptr<const config::FilterSettings>> list{std::make_shared<Eager>()};
  const Chain chain(list);
  SessionFilters sf(chain);
  core::Worker worker(0, 4096);  // not started: nothing here needs its loop
  http::Head head;
  config::Route route;
  HandshakeContext ctx{head, "", "", route, worker};
  bool done_called = false;
  const auto v = sf.run_handshake(ctx, [&](HandshakeVerdict) { done_called = true; });
  EXPECT_EQ(v.kind, HandshakeVerdict::Kind::refuse);
  EXPECT_EQ(v.status, 401u);
  EXPECT_EQ(sf.decided_by(), "eager");
  EXPECT_FALSE(done_called);  // answered synchronously: the caller has it
}

// ------------------------------------------------------------ token bucket

TEST(TokenBucket, Edges) {
  TokenBucket b(10, 5, 1000);  // 10/s, burst 5, full
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(b.try_take(1, 1000));
  EXPECT_FALSE(b.try_take(1, 1000));  // empty
  EXPECT_FALSE(b.try_take(1, 1099));  // 0.99 tokens
  EXPECT_TRUE(b.try_take(1, 1100));   // exactly 1 after 100 ms
  EXPECT_FALSE(b.try_take(1, 1100));
  // Refill never exceeds the burst, however long the pause.
  EXPECT_TRUE(b.try_take(5, 1000000));
  EXPECT_FALSE(b.try_take(1, 1000000));
  // A cost above the burst passes once from a full bucket, leaving a debt.
  TokenBucket big(1000, 100, 0);
  EXPECT_TRUE(big.try_take(250, 0));
  EXPECT_FALSE(big.try_take(1, 100));   // -150 + 100 = -50
  EXPECT_FALSE(big.try_take(100, 200)); // -50 + 100 = 50 < 100, not full
  EXPECT_TRUE(big.try_take(50, 200));
  // take() goes into debt and says when it is paid back.
  TokenBucket t(100, 1, 0);            // 0.1 token/ms
  EXPECT_EQ(t.take(1, 0), 0);           // had 1
  EXPECT_EQ(t.take(1, 0), 10);          // -1: 10 ms to repay
  EXPECT_EQ(t.take(2, 10), 30);         // back to 0 at 10, then -2: 20 ms more
  EXPECT_EQ(t.take(0.05, 30), 31);      // a fraction of a token still waits a whole ms
  // Time going backwards (a coarse clock read on another path) refills nothing.
  TokenBucket back(1000, 10, 500);
  EXPECT_TRUE(back.try_take(10, 500));
  EXPECT_FALSE(back.try_take(1, 400));
}

// ------------------------------------------------- message_rate, max_message

ws::FrameHeader data(std::uint64_t len, bool first = true, bool fin = true) {
  ws::FrameHeader h;
  h.opcode = first ? ws::Opcode::text : ws::Opcode::continuation;
  h.fin = fin;
  h.payload_len = len;
  return h;
}

std::unique_ptr<Instance> rate(MessageRateFilter::Action a, double mps, double bps = 0) {
  MessageRateFilter::Settings s;
  s.messages_per_second = mps;
  s.burst_messages = mps;
  s.bytes_per_second = bps;
  s.burst_bytes = bps;
  s.action = a;
  static std::vector<std::shared_ptr<MessageRateFilter>> keep;  // the settings outlive the instances
  keep.push_back(std::make_shared<MessageRateFilter>(s));
  return keep.back()->instantiate();
}

TEST(MessageRate, CloseDropThrottle) {
  const auto up = Direction::to_upstream;
  auto close = rate(MessageRateFilter::Action::close, 2);
  EXPECT_EQ(close->on_frame_header(up, data(10), 0).kind, FrameVerdict::Kind::forward);
  EXPECT_EQ(close->on_frame_header(up, data(10), 0).kind, FrameVerdict::Kind::forward);
  const auto v = close->on_frame_header(up, data(10), 0);
  EXPECT_EQ(v.kind, FrameVerdict::Kind::close);
  EXPECT_EQ(v.code, 1008);
  // The upstream's messages are not limited by default.
  for (int i = 0; i < 10; ++i)
    EXPECT_EQ(close->on_frame_header(Direction::to_client, data(10), 0).kind, FrameVerdict::Kind::forward);

  auto drop = rate(MessageRateFilter::Action::drop, 2);
  int dropped = 0;
  for (int i = 0; i < 10; ++i) dropped += drop->on_frame_header(up, data(1), 0).kind == FrameVerdict::Kind::drop;
  EXPECT_EQ(dropped, 8);
  EXPECT_EQ(drop->on_frame_header(up, data(1), 500).kind, FrameVerdict::Kind::forward);  // 1 token back
  // Continuation frames never count as messages.
  for (int i = 0; i < 5; ++i)
    EXPECT_EQ(drop->on_frame_header(up, data(1, false, false), 500).kind, FrameVerdict::Kind::forward);

  auto throttle = rate(MessageRateFilter::Action::throttle, 10);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(throttle->on_frame_header(up, data(1), 0).kind, FrameVerdict::Kind::forward);
  const auto p = throttle->on_frame_header(up, data(1), 0);
  EXPECT_EQ(p.kind, FrameVerdict::Kind::pause);
  EXPECT_EQ(p.until_ms, 100);  // one token at 10/s
}

TEST(MessageRate, BytesPerSecond) {
  auto b = rate(MessageRateFilter::Action::close, 0, 1000);  // 1000 B/s, burst 1000
  const auto up = Direction::to_upstream;
  EXPECT_EQ(b->on_frame_header(up, data(600), 0).kind, FrameVerdict::Kind::forward);
  EXPECT_EQ(b->on_frame_header(up, data(300), 0).kind, FrameVerdict::Kind::forward);
  EXPECT_EQ(b->on_frame_header(up, data(200), 0).kind, FrameVerdict::Kind::close);
  EXPECT_EQ(b->on_frame_header(up, data(200), 100).kind, FrameVerdict::Kind::forward);
}

TEST(MaxMessage, PerDirectionAcrossFragments) {
  MaxMessageFilter f(100, 0);
  f.key = "max_message";
  auto i = f.instantiate();
  const auto up = Direction::to_upstream;
  EXPECT_EQ(i->on_frame_header(up, data(100), 0).kind, FrameVerdict::Kind::forward);
  EXPECT_EQ(i->on_frame_header(up, data(60, true, false), 0).kind, FrameVerdict::Kind::forward);
  const auto v = i->on_frame_header(up, data(41, false, true), 0);
  EXPECT_EQ(v.kind, FrameVerdict::Kind::close);
  EXPECT_EQ(v.code, 1009);
  EXPECT_EQ(i->on_frame_header(Direction::to_client, data(1 << 20), 0).kind, FrameVerdict::Kind::forward);
}

}  // namespace
}  // namespace weir::filters

namespace weir::filters {
namespace {

TEST(MessageRate, PerUserBucketsAreSharedByTheUsersSessionsOnly) {
  const auto cfg = load("    message_rate: {messages_per_second: 2, per: user}\n");
  const auto* f = dynamic_cast<const MessageRateFilter*>(cfg.routes[0].filters[0].get());
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->hooks(), unsigned{kFrames | kHandshake});
  core::Worker worker(0, 4096);
  http::Head head;
  auto session = [&](const char* user, const char* ip) {
    auto inst = f->instantiate();
    HandshakeContext ctx{head, ip, "", cfg.routes[0], worker};
    ctx.user = user;
    EXPECT_EQ(inst->on_handshake(ctx).kind, HandshakeVerdict::Kind::proceed);
    return inst;
  };
  const auto up = Direction::to_upstream;
  ws::FrameHeader h;
  h.opcode = ws::Opcode::text;
  h.fin = true;
  h.payload_len = 1;
  auto a1 = session("alice", "10.0.0.1"), a2 = session("alice", "10.0.0.2"), b = session("bob", "10.0.0.1");
  // Two per second for alice, over both of her sessions.
  EXPECT_EQ(a1->on_frame_header(up, h, 0).kind, FrameVerdict::Kind::forward);
  EXPECT_EQ(a2->on_frame_header(up, h, 0).kind, FrameVerdict::Kind::forward);
  EXPECT_EQ(a1->on_frame_header(up, h, 0).kind, FrameVerdict::Kind::close);
  EXPECT_EQ(a2->on_frame_header(up, h, 0).kind, FrameVerdict::Kind::close);
  // Bob has his own; a session without a user is keyed on its address.
  EXPECT_EQ(b->on_frame_header(up, h, 0).kind, FrameVerdict::Kind::forward);
  auto anon1 = session("", "10.0.0.9"), anon2 = session("", "10.0.0.9");
  EXPECT_EQ(anon1->on_frame_header(up, h, 0).kind, FrameVerdict::Kind::forward);
  EXPECT_EQ(anon2->on_frame_header(up, h, 0).kind, FrameVerdict::Kind::forward);
  EXPECT_EQ(anon1->on_frame_header(up, h, 0).kind, FrameVerdict::Kind::close);
  // When every session of alice is gone, a new one starts full.
  a1.reset();
  a2.reset();
  auto a3 = session("alice", "10.0.0.1");
  EXPECT_EQ(a3->on_frame_header(up, h, 0).kind, FrameVerdict::Kind::forward);
  EXPECT_EQ(error_of(route_with("    message_rate: {messages_per_second: 2, per: route}\n")).find("t.yaml:4:"), 0u);
}

}  // namespace
}  // namespace weir::filters
