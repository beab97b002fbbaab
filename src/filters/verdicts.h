#pragma once
// Shared by the filters that judge whole messages (json_schema,
// constraints): the verdict on a refused message, and a per-session part
// that only asks its filter and counts what it refused.

#include <cstdint>
#include <string>

#include "filters/api.h"

namespace weir::filters {

// What failed: payload not in its format, JSON or MessagePack (1007), a
// message type refused (1003), a message over a filter's size limit (1009),
// or a rule broken (1008). close false: the message is dropped (counted as
// such).
enum class Refused : std::uint8_t { not_json, message_type, rule, too_big };

inline MessageVerdict refuse_message(bool close, Refused what, const std::string& why) {
  if (!close) return MessageVerdict::drop();
  const std::uint16_t code = what == Refused::not_json       ? ws::close_code::invalid_payload
                             : what == Refused::message_type ? ws::close_code::unsupported_data
                             : what == Refused::too_big      ? ws::close_code::too_big
                                                             : ws::close_code::policy_violation;
  return MessageVerdict::close(code, close_reason(why));
}

// F::verdict(Direction, const Message&, obs::CounterId* counted) const.
template <class F>
class VerdictInstance final : public Instance {
 public:
  explicit VerdictInstance(const F& f) : f_(f) {}
  MessageVerdict on_message(Direction d, Message& m) override {
    obs::CounterId counted{};
    MessageVerdict v = f_.verdict(d, m, &counted);
    if (v.kind != MessageVerdict::Kind::forward) count(counted);
    return v;
  }

 private:
  const F& f_;
};

}  // namespace weir::filters
