#include "filters/sanitize/sanitize.h"

#include <boost/json.hpp>

#include "filters/json_pointer.h"
#include "filters/verdicts.h"
#include "ws/utf8.h"

namespace weir::filters {

namespace json = boost::json;

namespace {

// Bytes to drop at text[i] (0: keep): a C0 control other than TAB/LF/CR, DEL,
// or a C1 control encoded in UTF-8 (C2 80..C2 9F).
std::size_t control_at(std::string_view text, std::size_t i) {
  const auto c = static_cast<unsigned char>(text[i]);
  if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7F) return 1;
  if (c == 0xC2 && i + 1 < text.size()) {
    const auto n = static_cast<unsigned char>(text[i + 1]);
    if (n >= 0x80 && n <= 0x9F) return 2;
  }
  return 0;
}

bool needs_escape(char c) { return c == '&' || c == '<' || c == '>' || c == '"' || c == '\''; }

// escape and/or drop controls; false when nothing needed either.
bool escape_and_drop(std::string_view text, bool escape, bool drop, std::string& out) {
  // Most messages need nothing: find the first byte that does before copying.
  std::size_t first = 0;
  for (; first < text.size(); ++first) {
    if (escape && needs_escape(text[first])) break;
    if (drop && control_at(text, first) != 0) break;
  }
  if (first == text.size()) return false;
  out.clear();
  out.reserve(text.size() + text.size() / 8 + 16);
  out.append(text.substr(0, first));
  for (std::size_t i = first; i < text.size();) {
    if (drop) {
      if (const std::size_t n = control_at(text, i)) {
        i += n;
        continue;
      }
    }
    if (escape && needs_escape(text[i])) {
      append_escaped(text.substr(i, 1), out);
    } else {
      out.push_back(text[i]);
    }
    ++i;
  }
  return true;
}


class SanitizeInstance final : public Instance {
 public:
  explicit SanitizeInstance(const SanitizeFilter& f) : f_(f) {}

  MessageVerdict on_message(Direction d, Message& m) override {
    obs::CounterId counted{};
    MessageVerdict v = f_.verdict(d, m, scratch_, &counted);
    if (v.kind != MessageVerdict::Kind::forward) count(counted);
    return v;
  }

 private:
  const SanitizeFilter& f_;
  std::string scratch_;  // reused between messages
};

}  // namespace

bool sanitize_text(std::string_view text, const SanitizeRules& rules, std::string& out) {
  using Html = SanitizeRules::Html;
  if (rules.html != Html::strip) return escape_and_drop(text, rules.html == Html::escape, rules.drop_controls, out);
  // Controls go before the parse (the parser would turn most into U+FFFD)
  // and after it (written as entities, e.g. &#1;).
  std::string_view in = text;
  std::string dropped;
  if (rules.drop_controls && escape_and_drop(text, false, true, dropped)) in = dropped;
  // Valid UTF-8 text with no '<', '&', CR or NUL is text to the parser too:
  // escaping it is what a parse and a write would give, without the parse
  // (controls aside, which the parser turns into U+FFFD). Most chat
  // messages are so.
  using namespace std::string_view_literals;
  if (in.find_first_of("<&\r\0"sv) == std::string_view::npos && ws::is_valid_utf8(in)) {
    if (!escape_and_drop(in, true, false, out)) out.assign(in);
  } else {
    strip_html(in, rules.policy, out);
    if (rules.drop_controls && escape_and_drop(out, false, true, dropped)) out.swap(dropped);
  }
  return out != text;
}

SanitizeFilter::Outcome SanitizeFilter::sanitize(std::string& payload, std::string& scratch, std::string* why) const {
  if (s_.pointers.empty()) {
    if (!sanitize_text(payload, s_.rules, scratch)) return Outcome::unchanged;
    payload.swap(scratch);
    return Outcome::rewritten;
  }
  json::parse_options opt;
  opt.max_depth = 1000;  // the parser stops there, before building deeper
  boost::system::error_code ec;
  json::monotonic_resource mr;
  json::value doc = json::parse(payload, ec, &mr, opt);
  if (ec) {
    if (why != nullptr) *why = "not JSON: " + ec.message();
    return Outcome::not_json;
  }
  bool changed = false;
  for (const std::string& p : s_.pointers) {
    json::value* v = doc.find_pointer(p, ec);
    if (v == nullptr || !v->is_string()) continue;  // absent or not a string: not ours
    if (!sanitize_text(v->get_string(), s_.rules, scratch)) continue;
    v->get_string() = scratch;
    changed = true;
  }
  if (!changed) return Outcome::unchanged;
  payload = json::serialize(doc);
  return Outcome::rewritten;
}

MessageVerdict SanitizeFilter::verdict(Direction d, Message& m, std::string& scratch, obs::CounterId* counted) const {
  if (m.opcode != ws::Opcode::text || !applies(d)) return MessageVerdict::forward();
  std::string why;
  switch (sanitize(m.payload, scratch, &why)) {
    case Outcome::unchanged:
      return MessageVerdict::forward();
    case Outcome::rewritten:
      *counted = rewrites_[static_cast<int>(d)];
      return MessageVerdict::replace();
    case Outcome::not_json:
      break;
  }
  *counted = failures_[static_cast<int>(d)];
  return refuse_message(s_.on_failure, name(), Refused::not_json, std::move(why), {});
}

std::shared_ptr<config::FilterSettings> SanitizeFilter::parse(const config::FilterReader& v) {
  v.expect_keys({"html", "allow", "max_tags", "max_bytes", "control_chars", "pointers", "on_failure",
                 "reject_reply", "log_payload", "direction"});
  Settings s;
  using Html = SanitizeRules::Html;
  SanitizeRules& rules = s.rules;
  if (auto f = v.find("html")) {
    const std::string h = f->choice({"escape", "strip", "keep"});
    rules.html = h == "escape" ? Html::escape : h == "strip" ? Html::strip : Html::keep;
  }
  if (auto f = v.find("allow")) {
    if (rules.html != Html::strip) f->fail(f->label() + " needs 'html: strip'");
    rules.policy = HtmlPolicy{};
    for (const auto& item : f->items(true)) {
      const std::string problem = rules.policy.allow(item.string("a tag such as b, or a[href]"));
      if (!problem.empty()) item.fail(f->label() + ": " + problem);
    }
    if (rules.policy.empty()) f->fail(f->label() + " allows no tag: leave it out for the default, or use 'html: escape'");
  }
  if (auto f = v.find("max_tags")) {
    if (rules.html != Html::strip) f->fail(f->label() + " needs 'html: strip'");
    rules.policy.max_tags = f->integer(1, 10000);
  }
  if (auto f = v.find("max_bytes")) {
    if (rules.html != Html::strip) f->fail(f->label() + " needs 'html: strip'");
    rules.policy.max_bytes = f->size(1, 1 << 20, "from 1 byte to 1MiB");
  }
  if (auto f = v.find("control_chars")) rules.drop_controls = f->choice({"drop", "keep"}) == "drop";
  if (rules.html == Html::keep && !rules.drop_controls) {
    v.fail(v.label() + " changes nothing: set 'html: escape', 'html: strip' or 'control_chars: drop'");
  }
  if (auto f = v.find("pointers")) {
    for (const auto& item : f->items(true)) {
      std::string p = item.string("a JSON pointer such as /msg/text");
      if (!valid_json_pointer(p))
        item.fail(f->label() + " holds '" + p +
                  "', not a JSON pointer: empty, or '/' then tokens ('~' only as ~0 or ~1)");
      s.pointers.push_back(std::move(p));
    }
    if (s.pointers.empty()) f->fail(f->label() + " is empty: leave it out to sanitize whole messages");
  }
  for (const char* key : {"on_failure", "reject_reply", "log_payload"})
    if (auto f = v.find(key); f && s.pointers.empty())
      f->fail(f->label() + " needs 'pointers' (only a JSON message can fail)");
  s.on_failure = read_on_failure(v);
  if (auto f = v.find("direction")) {
    const std::string d = f->choice({"client", "upstream", "both"});
    s.from[static_cast<int>(Direction::to_upstream)] = d != "upstream";
    s.from[static_cast<int>(Direction::to_client)] = d != "client";
  }
  return std::make_shared<SanitizeFilter>(std::move(s));
}

std::unique_ptr<Instance> SanitizeFilter::instantiate() const {
  return std::make_unique<SanitizeInstance>(*this);
}

bool SanitizeFilter::same_as(const config::FilterSettings& other) const {
  const auto* o = dynamic_cast<const SanitizeFilter*>(&other);
  return o != nullptr && o->s_ == s_;
}

void SanitizeFilter::declare_metrics(obs::Registry& reg, const std::string& route) const {
  for (Direction d : {Direction::to_upstream, Direction::to_client}) {
    if (!applies(d)) continue;
    const obs::Labels labels = {{"route", route}, {"direction", std::string(direction_name(d))}};
    rewrites_[static_cast<int>(d)] =
        reg.counter("weir_sanitize_rewrites_total", "Text messages the sanitize filter rewrote", labels);
    if (!s_.pointers.empty())
      failures_[static_cast<int>(d)] = reg.counter(
          "weir_sanitize_failures_total", "Text messages the sanitize filter refused: not JSON on a pointers route",
          labels);
  }
}

}  // namespace weir::filters
