#pragma once
// Shared by the filters that judge whole messages (json_schema,
// constraints): what they do with a message they refuse (`on_failure`), the
// reply a `reject` sends back, and a per-session part that only asks its
// filter and counts what it refused.
//
// YAML (beside the filter's own keys):
//   on_failure: reject        # close (default) | drop | reject
//   reject_reply: '{"type":"error","reason":"{reason}","at":"{pointer}"}'
//   log_payload: 64           # bytes of a refused message the audit log shows (default 0)

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "config/filter_reader.h"
#include "filters/api.h"

namespace weir::filters {

// The JSON text message a `reject` sends back: a JSON document whose
// strings may hold {reason}, {pointer} and {filter}, replaced (JSON-escaped)
// per refusal.
class ReplyTemplate {
 public:
  struct Impl;
  explicit ReplyTemplate(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  // The default: {"error":"message rejected","filter":..,"reason":..,"pointer":..}
  static std::shared_ptr<const ReplyTemplate> standard();
  // From a JSON text; null and *error when it is not JSON.
  static std::shared_ptr<const ReplyTemplate> parse(std::string_view json, std::string* error);
  std::string render(std::string_view filter, std::string_view reason, std::string_view pointer) const;
  const std::string& text() const;  // as configured (for same_as)

 private:
  std::shared_ptr<const Impl> impl_;
};

struct OnFailure {
  enum class Mode : std::uint8_t { close, drop, reject };
  Mode mode = Mode::close;
  std::shared_ptr<const ReplyTemplate> reply;  // reject
  std::uint32_t log_payload = 0;
  bool operator==(const OnFailure& o) const;
};

// Reads on_failure, reject_reply and log_payload (keys the filter's
// expect_keys lists).
OnFailure read_on_failure(const config::FilterReader& v);

// What failed: payload not in its format, JSON or MessagePack (1007), a
// message type refused (1003), a message over a filter's size limit (1009),
// or a rule broken (1008).
enum class Refused : std::uint8_t { not_json, message_type, rule, too_big };

// The verdict on a refused message: why (log, Close reason, {reason}) and
// where (a JSON pointer, or empty). In an answer, each is cut to
// kMaxReplyField bytes.
inline constexpr std::size_t kMaxReplyField = 256;
MessageVerdict refuse_message(const OnFailure& how, std::string_view filter, Refused what, std::string why,
                              std::string pointer);

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
