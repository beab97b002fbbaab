#include "filters/verdicts.h"

#include <boost/json.hpp>

namespace weir::filters {

namespace json = boost::json;

struct ReplyTemplate::Impl {
  std::string text;
  json::value doc;
};

namespace {

void replace_all(std::string& s, std::string_view what, std::string_view with) {
  for (std::size_t at = s.find(what); at != std::string::npos; at = s.find(what, at + with.size()))
    s.replace(at, what.size(), with);
}

// Placeholders in every string (keys too: a template may name a field after
// the filter).
void fill(json::value& v, std::string_view filter, std::string_view reason, std::string_view pointer) {
  auto sub = [&](std::string s) {
    if (s.find('{') == std::string::npos) return s;
    replace_all(s, "{reason}", reason);
    replace_all(s, "{pointer}", pointer);
    replace_all(s, "{filter}", filter);
    return s;
  };
  if (v.is_string()) {
    v = sub(std::string(v.as_string()));
  } else if (v.is_array()) {
    for (auto& item : v.as_array()) fill(item, filter, reason, pointer);
  } else if (v.is_object()) {
    json::object out;
    for (auto& kv : v.as_object()) {
      fill(kv.value(), filter, reason, pointer);
      out[sub(std::string(kv.key()))] = std::move(kv.value());
    }
    v = std::move(out);
  }
}

// At most n bytes of s, cut at a UTF-8 character boundary, with "..." when
// cut: a reason or pointer quotes the message's keys, and an answer must not
// grow with them.
std::string cut(std::string_view s, std::size_t n) {
  if (s.size() <= n) return std::string(s);
  std::size_t at = n;
  while (at > 0 && (static_cast<unsigned char>(s[at]) & 0xC0) == 0x80) --at;
  return std::string(s.substr(0, at)) + "...";
}

}  // namespace

std::shared_ptr<const ReplyTemplate> ReplyTemplate::parse(std::string_view text, std::string* error) {
  boost::system::error_code ec;
  json::value doc = json::parse(text, ec);
  if (ec) {
    *error = "not JSON: " + ec.message();
    return nullptr;
  }
  return std::make_shared<ReplyTemplate>(std::make_shared<Impl>(Impl{std::string(text), std::move(doc)}));
}

std::shared_ptr<const ReplyTemplate> ReplyTemplate::standard() {
  static const auto standard = [] {
    std::string e;
    return parse(R"({"error":"message rejected","filter":"{filter}","reason":"{reason}","pointer":"{pointer}"})", &e);
  }();
  return standard;
}

std::string ReplyTemplate::render(std::string_view filter, std::string_view reason, std::string_view pointer) const {
  json::value v = impl_->doc;
  fill(v, filter, reason, pointer);
  return json::serialize(v);
}

const std::string& ReplyTemplate::text() const { return impl_->text; }

bool OnFailure::operator==(const OnFailure& o) const {
  return mode == o.mode && log_payload == o.log_payload &&
         (reply == o.reply || (reply && o.reply && reply->text() == o.reply->text()));
}

OnFailure read_on_failure(const config::FilterReader& v) {
  OnFailure how;
  if (auto f = v.find("on_failure")) {
    const std::string mode = f->choice({"close", "drop", "reject"});
    how.mode = mode == "close" ? OnFailure::Mode::close : mode == "drop" ? OnFailure::Mode::drop : OnFailure::Mode::reject;
  }
  if (auto f = v.find("reject_reply")) {
    if (how.mode != OnFailure::Mode::reject) f->fail(f->label() + " needs on_failure: reject");
    std::string error;
    how.reply = ReplyTemplate::parse(f->string("a JSON document, e.g. '{\"error\":\"{reason}\"}'"), &error);
    if (!how.reply) f->fail(f->label() + ": " + error);
  } else if (how.mode == OnFailure::Mode::reject) {
    how.reply = ReplyTemplate::standard();
  }
  if (auto f = v.find("log_payload")) how.log_payload = static_cast<std::uint32_t>(f->size(0, 4096, "0-4KiB"));
  return how;
}

MessageVerdict refuse_message(const OnFailure& how, std::string_view filter, Refused what, std::string why,
                              std::string pointer) {
  MessageVerdict v;
  switch (how.mode) {
    case OnFailure::Mode::close: {
      const std::uint16_t code = what == Refused::not_json       ? ws::close_code::invalid_payload
                                 : what == Refused::message_type ? ws::close_code::unsupported_data
                                 : what == Refused::too_big      ? ws::close_code::too_big
                                                                 : ws::close_code::policy_violation;
      v = MessageVerdict::close(code, close_reason(std::move(why)));
      break;
    }
    case OnFailure::Mode::drop:
      v = MessageVerdict::drop();
      v.reason = std::move(why);
      break;
    case OnFailure::Mode::reject:
      v = MessageVerdict::reject(how.reply->render(filter, cut(why, kMaxReplyField), cut(pointer, kMaxReplyField)));
      v.reason = std::move(why);
      break;
  }
  v.pointer = std::move(pointer);
  v.log_prefix = how.log_payload;
  return v;
}

}  // namespace weir::filters
