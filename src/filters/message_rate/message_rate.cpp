#include "filters/message_rate/message_rate.h"

#include <algorithm>
#include <cmath>

#include "core/clock.h"
#include "filters/message_rate/token_bucket.h"
#include "state/shared_counters.h"

namespace weir::filters {

namespace {

struct Buckets {
  TokenBucket messages, bytes;
  bool started = false;
};

// per: user with state.backend redis: tokens leased from the user's bucket
// in Redis, a batch at a time, and spent here without a round trip. The
// same interface as TokenBucket, so judge() runs on either.
class LeasedBudget {
 public:
  bool try_take(double n, std::int64_t) {
    if (tokens_ < n) {
      want_ = std::max(want_, n - tokens_);
      return false;
    }
    tokens_ -= n;
    return true;
  }
  std::int64_t take(double n, std::int64_t now_ms) {
    tokens_ -= n;
    if (tokens_ >= 0) return now_ms;
    // Paused until the debt could have been paid at the rate (at least one
    // round trip's worth, so the next batch can arrive).
    return now_ms + std::max<std::int64_t>(10, static_cast<std::int64_t>(std::ceil(-tokens_ * 1000 / rate_)));
  }

  double rate_ = 1, burst_ = 1, batch_ = 1;
  double tokens_ = 0, want_ = 0;  // want_: what a refused take lacked
  bool asking_ = false, primed_ = false;
  std::int64_t retry_at_ = 0;     // no request before (the bucket was empty)
  std::string key;
};

// 100 ms of the rate, within the burst: how much one instance takes at once
// (docs/configuration.md: the accuracy this gives up).
double batch_of(double rate, double burst) { return std::max(1.0, std::min(burst, std::ceil(rate / 10))); }

}  // namespace

struct MessageRateFilter::Shared {
  std::mutex mu;  // the user's sessions may be on several workers
  Buckets buckets[2];
  LeasedBudget messages[2], bytes[2];  // Redis-leased, per direction
  bool leased_set_up = false;
};

namespace {

// Asks Redis for the next batch when the budget runs low (shared->mu held).
void refill(const std::shared_ptr<MessageRateFilter::Shared>& shared, LeasedBudget& b, std::int64_t now) {
  if (b.asking_ || now < b.retry_at_ || b.tokens_ - b.want_ >= b.batch_ / 2) return;
  state::SharedCounters* store = state::SharedCounters::get();
  if (store == nullptr || !store->up()) return;
  b.asking_ = true;
  const double want = b.batch_ + std::max(0.0, b.want_ - b.tokens_);
  store->lease(b.key, b.rate_, b.burst_, want, [shared, &b](double granted, std::int64_t wait_ms, bool ok) {
    std::lock_guard lock(shared->mu);  // Redis thread; b lives as long as shared
    b.asking_ = false;
    if (!ok) return;
    b.primed_ = true;
    b.tokens_ += granted;
    b.want_ = 0;
    if (granted == 0) b.retry_at_ = core::coarse_now_ms() + std::max<std::int64_t>(wait_ms, 1);
  });
}

}  // namespace

namespace {

class MessageRateInstance final : public Instance {
 public:
  explicit MessageRateInstance(const MessageRateFilter& f) : f_(f), s_(f.settings()) {}

  HandshakeVerdict on_handshake(HandshakeContext& ctx) override {
    if (s_.per_user) {
      const std::string who = ctx.user.empty() ? "ip|" + std::string(ctx.client_ip) : "user|" + ctx.user;
      shared_ = f_.shared_for(who);
      if (state::SharedCounters::get() != nullptr) set_up_leases("m|" + ctx.route.name + "|" + who);
    }
    return HandshakeVerdict::proceed();
  }

  FrameVerdict on_frame_header(Direction d, const ws::FrameHeader& h, std::int64_t now) override {
    FrameVerdict v;
    if (shared_) {
      std::lock_guard lock(shared_->mu);
      const int i = static_cast<int>(d);
      const state::SharedCounters* store = state::SharedCounters::get();
      LeasedBudget& m = shared_->messages[i];
      LeasedBudget& b = shared_->bytes[i];
      // Redis's budget once a first batch came; this process's buckets
      // before that and while Redis is down.
      const bool leased = shared_->leased_set_up && store != nullptr && store->up() &&
                          (s_.messages_per_second == 0 || m.primed_) && (s_.bytes_per_second == 0 || b.primed_);
      v = leased ? judge(d, h, now, m, b) : judge(d, h, now, shared_->buckets[i].messages, shared_->buckets[i].bytes,
                                                     &shared_->buckets[i]);
      if (shared_->leased_set_up && (d == Direction::to_upstream ? s_.limit_client : s_.limit_upstream)) {
        if (s_.messages_per_second > 0) refill(shared_, m, core::coarse_now_ms());
        if (s_.bytes_per_second > 0) refill(shared_, b, core::coarse_now_ms());
      }
    } else {
      Buckets& b = buckets_[static_cast<int>(d)];
      v = judge(d, h, now, b.messages, b.bytes, &b);
    }
    if (v.kind != FrameVerdict::Kind::forward) count(f_.exceeded(d));
    return v;
  }

 private:
  void set_up_leases(const std::string& key) {
    std::lock_guard lock(shared_->mu);
    if (shared_->leased_set_up) return;
    shared_->leased_set_up = true;
    for (int i = 0; i < 2; ++i) {
      const char* dir = i == 0 ? "|in" : "|out";
      LeasedBudget& m = shared_->messages[i];
      m.rate_ = s_.messages_per_second;
      m.burst_ = s_.burst_messages;
      m.batch_ = batch_of(m.rate_, m.burst_);
      m.key = key + dir + "|msgs";
      LeasedBudget& b = shared_->bytes[i];
      b.rate_ = s_.bytes_per_second;
      b.burst_ = s_.burst_bytes;
      b.batch_ = batch_of(b.rate_, b.burst_);
      b.key = key + dir + "|bytes";
    }
  }

  // Over TokenBuckets (`local` set: started at the first frame) or
  // LeasedBudgets.
  template <class Bucket>
  FrameVerdict judge(Direction d, const ws::FrameHeader& h, std::int64_t now, Bucket& messages, Bucket& bytes,
                     Buckets* local = nullptr) {
    const bool limited = d == Direction::to_upstream ? s_.limit_client : s_.limit_upstream;
    if (!limited) return FrameVerdict::forward();
    if (local != nullptr && !local->started) {
      // Lazily, at the first frame: a session that never sends pays nothing.
      if (s_.messages_per_second > 0) local->messages = TokenBucket(s_.messages_per_second, s_.burst_messages, now);
      if (s_.bytes_per_second > 0) local->bytes = TokenBucket(s_.bytes_per_second, s_.burst_bytes, now);
      local->started = true;
    }
    const bool first = h.opcode != ws::Opcode::continuation;
    const auto len = static_cast<double>(h.payload_len);
    const bool count_msgs = s_.messages_per_second > 0 && first;
    const bool count_bytes = s_.bytes_per_second > 0;
    switch (s_.action) {
      case MessageRateFilter::Action::throttle: {
        std::int64_t until = now;
        if (count_msgs) until = std::max(until, messages.take(1, now));
        if (count_bytes) until = std::max(until, bytes.take(len, now));
        return until > now ? FrameVerdict::pause(until) : FrameVerdict::forward();
      }
      case MessageRateFilter::Action::close:
      case MessageRateFilter::Action::drop: {
        // A message is judged on its first frame (messages and that frame's
        // bytes); later fragments only charge their bytes, since what went
        // before is already relayed: an overdraft is paid by the next message.
        if (!first) {
          if (count_bytes) bytes.take(len, now);
          return FrameVerdict::forward();
        }
        bool ok = true;
        if (count_msgs && !messages.try_take(1, now)) ok = false;
        if (ok && count_bytes && !bytes.try_take(len, now)) {
          ok = false;
          if (count_msgs) messages.take(-1, now);  // give the message token back
        }
        if (ok) return FrameVerdict::forward();
        if (s_.action == MessageRateFilter::Action::drop) return FrameVerdict::drop();
        return FrameVerdict::close(ws::close_code::policy_violation, "message rate exceeded");
      }
    }
    return FrameVerdict::forward();
  }

  const MessageRateFilter& f_;
  const MessageRateFilter::Settings& s_;
  Buckets buckets_[2];
  std::shared_ptr<MessageRateFilter::Shared> shared_;  // per: user
};

}  // namespace

std::shared_ptr<config::FilterSettings> MessageRateFilter::parse(const config::FilterReader& v) {
  v.expect_keys({"messages_per_second", "burst_messages", "bytes_per_second", "burst_bytes", "direction", "action",
                 "per"});
  Settings s;
  if (auto f = v.find("messages_per_second")) s.messages_per_second = f->number(0.001, 1e9);
  if (auto f = v.find("bytes_per_second"))
    s.bytes_per_second = static_cast<double>(f->size(1, 1ull << 40, "from 1 byte to 1TiB"));
  if (s.messages_per_second == 0 && s.bytes_per_second == 0)
    v.fail(v.label() + " needs 'messages_per_second' or 'bytes_per_second' (or both)");
  if (auto f = v.find("burst_messages")) {
    if (s.messages_per_second == 0) f->fail(f->label() + " is set but 'messages_per_second' is not");
    s.burst_messages = static_cast<double>(f->integer(1, 1'000'000'000));
  } else {
    s.burst_messages = std::max(1.0, s.messages_per_second);
  }
  if (auto f = v.find("burst_bytes")) {
    if (s.bytes_per_second == 0) f->fail(f->label() + " is set but 'bytes_per_second' is not");
    s.burst_bytes = static_cast<double>(f->size(1, 1ull << 40, "from 1 byte to 1TiB"));
  } else {
    s.burst_bytes = s.bytes_per_second;
  }
  if (auto f = v.find("direction")) {
    const std::string d = f->choice({"client", "upstream", "both"});
    s.limit_client = d != "upstream";
    s.limit_upstream = d != "client";
  }
  if (auto f = v.find("action")) {
    const std::string a = f->choice({"close", "drop", "throttle"});
    s.action = a == "close" ? Action::close : a == "drop" ? Action::drop : Action::throttle;
  }
  if (auto f = v.find("per")) s.per_user = f->choice({"connection", "user"}) == "user";
  return std::make_shared<MessageRateFilter>(s);
}

std::shared_ptr<MessageRateFilter::Shared> MessageRateFilter::shared_for(const std::string& who) const {
  std::lock_guard lock(users_mu_);
  auto& slot = users_[who];
  auto shared = slot.lock();
  if (!shared) {
    shared = std::make_shared<Shared>();
    slot = shared;
    // Users whose sessions all ended leave an expired entry: swept when the
    // map has doubled since the last sweep.
    if (users_.size() >= sweep_at_) {
      std::erase_if(users_, [](const auto& kv) { return kv.second.expired(); });
      sweep_at_ = std::max<std::size_t>(1024, users_.size() * 2);
    }
  }
  return shared;
}

void MessageRateFilter::declare_metrics(obs::Registry& reg, const std::string& route) const {
  static constexpr const char* kActions[] = {"close", "drop", "throttle"};
  for (Direction d : {Direction::to_upstream, Direction::to_client}) {
    exceeded_[static_cast<int>(d)] =
        reg.counter("weir_message_rate_exceeded_total", "Frames over a message_rate limit, by the action taken",
                    {{"route", route},
                     {"direction", std::string(direction_name(d))},
                     {"action", kActions[static_cast<int>(s_.action)]}});
  }
}

MessageRateFilter::MessageRateFilter(Settings s) : s_(s) {}
MessageRateFilter::~MessageRateFilter() = default;

std::unique_ptr<Instance> MessageRateFilter::instantiate() const {
  return std::make_unique<MessageRateInstance>(*this);
}

bool MessageRateFilter::same_as(const config::FilterSettings& other) const {
  const auto* o = dynamic_cast<const MessageRateFilter*>(&other);
  return o != nullptr && o->s_ == s_;
}

}  // namespace weir::filters
