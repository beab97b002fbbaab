#include "filters/message_rate/message_rate.h"

#include <algorithm>

#include "filters/message_rate/token_bucket.h"

namespace weir::filters {

namespace {

struct Buckets {
  TokenBucket messages, bytes;
  bool started = false;
};

}  // namespace

struct MessageRateFilter::Shared {
  std::mutex mu;  // the user's sessions may be on several workers
  Buckets buckets[2];
};

namespace {

class MessageRateInstance final : public Instance {
 public:
  explicit MessageRateInstance(const MessageRateFilter& f) : f_(f), s_(f.settings()) {}

  HandshakeVerdict on_handshake(HandshakeContext& ctx) override {
    if (s_.per_user) {
      shared_ = f_.shared_for(ctx.user.empty() ? "ip|" + std::string(ctx.client_ip) : "user|" + ctx.user);
    }
    return HandshakeVerdict::proceed();
  }

  FrameVerdict on_frame_header(Direction d, const ws::FrameHeader& h, std::int64_t now) override {
    FrameVerdict v;
    if (shared_) {
      std::lock_guard lock(shared_->mu);
      v = judge(d, h, now, shared_->buckets[static_cast<int>(d)]);
    } else {
      v = judge(d, h, now, buckets_[static_cast<int>(d)]);
    }
    if (v.kind != FrameVerdict::Kind::forward) count(f_.exceeded(d));
    return v;
  }

 private:
  FrameVerdict judge(Direction d, const ws::FrameHeader& h, std::int64_t now, Buckets& b) {
    const bool limited = d == Direction::to_upstream ? s_.limit_client : s_.limit_upstream;
    if (!limited) return FrameVerdict::forward();
    if (!b.started) {
      // Lazily, at the first frame: a session that never sends pays nothing.
      if (s_.messages_per_second > 0) b.messages = TokenBucket(s_.messages_per_second, s_.burst_messages, now);
      if (s_.bytes_per_second > 0) b.bytes = TokenBucket(s_.bytes_per_second, s_.burst_bytes, now);
      b.started = true;
    }
    const bool first = h.opcode != ws::Opcode::continuation;
    const auto len = static_cast<double>(h.payload_len);
    const bool count_msgs = s_.messages_per_second > 0 && first;
    const bool count_bytes = s_.bytes_per_second > 0;
    switch (s_.action) {
      case MessageRateFilter::Action::throttle: {
        std::int64_t until = now;
        if (count_msgs) until = std::max(until, b.messages.take(1, now));
        if (count_bytes) until = std::max(until, b.bytes.take(len, now));
        return until > now ? FrameVerdict::pause(until) : FrameVerdict::forward();
      }
      case MessageRateFilter::Action::close:
      case MessageRateFilter::Action::drop: {
        // A message is judged on its first frame (messages and that frame's
        // bytes); later fragments only charge their bytes, since what went
        // before is already relayed: an overdraft is paid by the next message.
        if (!first) {
          if (count_bytes) b.bytes.take(len, now);
          return FrameVerdict::forward();
        }
        bool ok = true;
        if (count_msgs && !b.messages.try_take(1, now)) ok = false;
        if (ok && count_bytes && !b.bytes.try_take(len, now)) {
          ok = false;
          if (count_msgs) b.messages.take(-1, now);  // give the message token back
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
