#include "filters/max_message/max_message.h"

namespace weir::filters {

namespace {

class MaxMessageInstance final : public Instance {
 public:
  explicit MaxMessageInstance(const MaxMessageFilter& f) : f_(f) {}

  FrameVerdict on_frame_header(Direction d, const ws::FrameHeader& h, std::int64_t) override {
    const std::uint64_t limit = f_.limit(d);
    if (limit == 0) return FrameVerdict::forward();
    std::uint64_t& seen = seen_[static_cast<int>(d)];
    if (h.opcode != ws::Opcode::continuation) seen = 0;
    if (h.payload_len > limit - std::min(seen, limit)) {
      count(f_.exceeded(d));
      return FrameVerdict::close(ws::close_code::too_big, "message too big");
    }
    seen += h.payload_len;
    return FrameVerdict::forward();
  }

 private:
  const MaxMessageFilter& f_;
  std::uint64_t seen_[2] = {0, 0};  // bytes of the current message each way
};

constexpr std::uint64_t kMax = 1ull << 40;

}  // namespace

std::shared_ptr<config::FilterSettings> MaxMessageFilter::parse(const config::FilterReader& v) {
  if (v.is_scalar()) {
    const auto n = v.size(1, kMax, "from 1 byte to 1TiB");
    return std::make_shared<MaxMessageFilter>(n, n);
  }
  v.expect_keys({"client_to_upstream", "upstream_to_client"});
  std::uint64_t up = 0, down = 0;
  if (auto f = v.find("client_to_upstream")) up = f->size(1, kMax, "from 1 byte to 1TiB");
  if (auto f = v.find("upstream_to_client")) down = f->size(1, kMax, "from 1 byte to 1TiB");
  if (up == 0 && down == 0) v.fail(v.label() + " needs 'client_to_upstream' or 'upstream_to_client' (or a size for both)");
  return std::make_shared<MaxMessageFilter>(up, down);
}

void MaxMessageFilter::declare_metrics(obs::Registry& reg, const std::string& route) const {
  for (Direction d : {Direction::to_upstream, Direction::to_client}) {
    exceeded_[static_cast<int>(d)] = reg.counter("weir_max_message_exceeded_total",
                                                 "Sessions closed 1009 by max_message, by the message's direction",
                                                 {{"route", route}, {"direction", std::string(direction_name(d))}});
  }
}

std::unique_ptr<Instance> MaxMessageFilter::instantiate() const {
  return std::make_unique<MaxMessageInstance>(*this);
}

bool MaxMessageFilter::same_as(const config::FilterSettings& other) const {
  const auto* o = dynamic_cast<const MaxMessageFilter*>(&other);
  return o != nullptr && o->limit_[0] == limit_[0] && o->limit_[1] == limit_[1];
}

}  // namespace weir::filters
