#include "filters/message_log/message_log.h"

#include <cstdint>
#include <string>

#include "observability/log.h"

namespace weir::filters {

namespace {

// A per-thread xorshift: sampling needs no cryptographic randomness and must
// not lock.
double uniform() {
  thread_local std::uint64_t s = 0x9e3779b97f4a7c15ull ^ reinterpret_cast<std::uintptr_t>(&s);
  s ^= s << 13;
  s ^= s >> 7;
  s ^= s << 17;
  return static_cast<double>(s >> 11) * (1.0 / 9007199254740992.0);
}

constexpr const char* opcode_name(ws::Opcode op) {
  return op == ws::Opcode::text ? "text" : op == ws::Opcode::binary ? "binary" : "other";
}

class MessageLogInstance final : public Instance {
 public:
  explicit MessageLogInstance(const MessageLogFilter& f) : f_(f) {}

  HandshakeVerdict on_handshake(HandshakeContext& ctx) override {
    id_ = ctx.session_id;
    trace_ = std::string(ctx.trace_id);
    route_ = &ctx.route.name;
    return HandshakeVerdict::proceed();
  }

  FrameVerdict on_frame_header(Direction d, const ws::FrameHeader& h, std::int64_t) override {
    auto& m = msg_[static_cast<int>(d)];
    if (h.opcode != ws::Opcode::continuation) {
      m.opcode = h.opcode;
      m.size = 0;
      m.frames = 0;
      m.started = true;
    }
    m.size += h.payload_len;
    ++m.frames;
    // A message whose first frame a throttle pause held is not shown to
    // the chain again (filters/api.h): its rest is not logged with a wrong size.
    const bool whole = m.started;
    if (h.fin) m.started = false;
    if (h.fin && whole && (f_.sample() >= 1.0 || uniform() < f_.sample())) {
      log::Line(log::Level::info, "message")
          .unum("id", id_)
          .str("trace_id", trace_)
          .str("route", route_ ? *route_ : std::string())
          .str("direction", direction_name(d))
          .str("opcode", opcode_name(m.opcode))
          .unum("size", m.size)
          .unum("frames", m.frames);
    }
    return FrameVerdict::forward();
  }

 private:
  struct Current {
    ws::Opcode opcode = ws::Opcode::text;
    std::uint64_t size = 0;
    std::uint32_t frames = 0;
    bool started = false;  // its first frame was seen
  };
  const MessageLogFilter& f_;
  std::uint64_t id_ = 0;
  std::string trace_;
  const std::string* route_ = nullptr;  // in the session's config generation
  Current msg_[2];
};

}  // namespace

std::shared_ptr<config::FilterSettings> MessageLogFilter::parse(const config::FilterReader& v) {
  if (v.is_scalar()) {
    if (!v.boolean()) return std::make_shared<MessageLogFilter>(0.0);
    return std::make_shared<MessageLogFilter>(1.0);
  }
  v.expect_keys({"sample"});
  double sample = 1.0;
  if (auto s = v.find("sample")) sample = s->number(0.0, 1.0);
  return std::make_shared<MessageLogFilter>(sample);
}

std::unique_ptr<Instance> MessageLogFilter::instantiate() const { return std::make_unique<MessageLogInstance>(*this); }

bool MessageLogFilter::same_as(const config::FilterSettings& other) const {
  const auto* o = dynamic_cast<const MessageLogFilter*>(&other);
  return o != nullptr && o->sample_ == sample_;
}

}  // namespace weir::filters
