#include "filters/constraints/constraints.h"

#include <re2/re2.h>

#include <boost/json.hpp>

#include <charconv>

#include "filters/json_pointer.h"
#include "filters/verdicts.h"

namespace weir::filters {

namespace json = boost::json;

namespace {

constexpr const char* kReasons[ConstraintsFilter::kFailures] = {
    "message_type", "not_json", "depth", "string_length", "array_length", "object_keys", "pattern"};

// A scalar as a pattern sees it: a string's text; a number as written in
// the shortest form that reads back the same (1.5, not 1.5E0); true, false
// or null.
std::string scalar_text(const json::value& v) {
  switch (v.kind()) {
    case json::kind::string: return std::string(v.get_string());
    case json::kind::int64: return std::to_string(v.get_int64());
    case json::kind::uint64: return std::to_string(v.get_uint64());
    case json::kind::double_: {
      char buf[64];
      const auto r = std::to_chars(buf, buf + sizeof buf, v.get_double());
      return std::string(buf, r.ptr);
    }
    case json::kind::bool_: return v.get_bool() ? "true" : "false";
    default: return "null";
  }
}


using Failure = ConstraintsFilter::Failure;
using Settings = ConstraintsFilter::Settings;

// The first limit a document breaks, depth first; *at: where (a JSON pointer).
Failure walk(const json::value& v, const Settings& s, std::string& at, std::string* why) {
  switch (v.kind()) {
    case json::kind::string:
      if (s.max_string && v.get_string().size() > s.max_string) {
        *why = "string longer than " + std::to_string(s.max_string) + " bytes at " + (at.empty() ? "/" : at);
        return Failure::string_length;
      }
      return Failure::none;
    case json::kind::array: {
      const auto& a = v.get_array();
      if (s.max_array && a.size() > s.max_array) {
        *why = "array longer than " + std::to_string(s.max_array) + " at " + (at.empty() ? "/" : at);
        return Failure::array_length;
      }
      const std::size_t len = at.size();
      for (std::size_t i = 0; i < a.size(); ++i) {
        at += "/" + std::to_string(i);
        if (const Failure f = walk(a[i], s, at, why); f != Failure::none) return f;
        at.resize(len);
      }
      return Failure::none;
    }
    case json::kind::object: {
      const auto& o = v.get_object();
      if (s.max_keys && o.size() > s.max_keys) {
        *why = "object with more than " + std::to_string(s.max_keys) + " keys at " + (at.empty() ? "/" : at);
        return Failure::object_keys;
      }
      const std::size_t len = at.size();
      for (const auto& kv : o) {
        append_pointer_token(at, kv.key());
        if (s.max_string && kv.key().size() > s.max_string) {
          *why = "key longer than " + std::to_string(s.max_string) + " bytes at " + at;
          return Failure::string_length;
        }
        if (const Failure f = walk(kv.value(), s, at, why); f != Failure::none) return f;
        at.resize(len);
      }
      return Failure::none;
    }
    default:
      return Failure::none;
  }
}

}  // namespace

ConstraintsFilter::ConstraintsFilter(Settings s) : s_(std::move(s)) {}
ConstraintsFilter::~ConstraintsFilter() = default;

ConstraintsFilter::Failure ConstraintsFilter::check(Direction d, const Message& m, std::string* why,
                                                    std::string* at_out) const {
  if (!s_.from[static_cast<int>(d)]) return Failure::none;
  const bool text = m.opcode == ws::Opcode::text;
  if (text ? !s_.text : !s_.binary) {
    *why = text ? "text messages are refused" : "binary messages are refused";
    return Failure::message_type;
  }
  if (!text || !s_.json()) return Failure::none;
  json::parse_options opt;
  opt.max_depth = s_.max_depth ? s_.max_depth : 1000;  // the parser stops there, before building deeper
  boost::system::error_code ec;
  json::monotonic_resource mr;
  const json::value doc = json::parse(m.payload, ec, &mr, opt);
  if (ec == json::error::too_deep) {
    *why = "nested deeper than " + std::to_string(opt.max_depth);
    return Failure::depth;
  }
  if (ec) {
    *why = "not JSON: " + ec.message();
    return Failure::not_json;
  }
  std::string at;
  if (const Failure f = walk(doc, s_, at, why); f != Failure::none) {
    if (at_out != nullptr) *at_out = at;
    return f;
  }
  for (const auto& p : s_.patterns) {
    const json::value* v = doc.find_pointer(p.pointer, ec);
    if (v == nullptr) continue;  // absent: required-ness is json_schema's business
    if (v->is_object() || v->is_array()) {
      *why = p.pointer + " is not a single value";
      if (at_out != nullptr) *at_out = p.pointer;
      return Failure::pattern;
    }
    const std::string scalar = scalar_text(*v);
    if (!re2::RE2::FullMatch(scalar, *p.re)) {
      *why = p.pointer + " does not match " + p.text;
      if (at_out != nullptr) *at_out = p.pointer;
      return Failure::pattern;
    }
  }
  return Failure::none;
}

MessageVerdict ConstraintsFilter::verdict(Direction d, const Message& m, obs::CounterId* counted) const {
  std::string why, at;
  const Failure f = check(d, m, &why, &at);
  if (f == Failure::none) return MessageVerdict::forward();
  *counted = failures_[static_cast<int>(d)][static_cast<int>(f) - 1];
  return refuse_message(s_.on_failure, name(),
                        f == Failure::not_json       ? Refused::not_json
                        : f == Failure::message_type ? Refused::message_type
                                                     : Refused::rule,
                        std::move(why), std::move(at));
}

std::shared_ptr<config::FilterSettings> ConstraintsFilter::parse(const config::FilterReader& v) {
  v.expect_keys({"direction", "message_types", "max_depth", "max_string_length", "max_array_length",
                 "max_object_keys", "patterns", "on_failure", "reject_reply", "log_payload"});
  Settings s;
  if (auto f = v.find("direction")) {
    const std::string d = f->choice({"client", "upstream", "both"});
    s.from[static_cast<int>(Direction::to_upstream)] = d != "upstream";
    s.from[static_cast<int>(Direction::to_client)] = d != "client";
  }
  if (auto f = v.find("message_types")) {
    s.text = s.binary = false;
    for (const auto& t : f->items(true)) (t.choice({"text", "binary"}) == "text" ? s.text : s.binary) = true;
    if (!s.text && !s.binary) f->fail(f->label() + " must allow text, binary or both");
  }
  if (auto f = v.find("max_depth")) s.max_depth = static_cast<unsigned>(f->integer(1, 1000));
  if (auto f = v.find("max_string_length")) s.max_string = f->size(1, 1ull << 30, "from 1 byte to 1GiB");
  if (auto f = v.find("max_array_length")) s.max_array = f->integer(1, 1ull << 30);
  if (auto f = v.find("max_object_keys")) s.max_keys = f->integer(1, 1ull << 30);
  if (auto f = v.find("patterns")) {
    const auto items = f->items(false);
    for (std::size_t i = 0; i < items.size(); ++i) {
      const auto& item = items[i];
      const std::string at = f->label().substr(0, f->label().size() - 1) + "[" + std::to_string(i) + "].";
      item.expect_keys({"pointer", "match"});
      Pattern p;
      const auto ptr = item.require("pointer");
      p.pointer = ptr.string("a JSON pointer such as /type");
      if (!valid_json_pointer(p.pointer))
        ptr.fail(at + "pointer' must be a JSON pointer: empty, or '/' then tokens ('~' only as ~0 or ~1)");
      const auto match = item.require("match");
      p.text = match.string("an RE2 pattern");
      re2::RE2::Options o;
      o.set_log_errors(false);
      o.set_max_mem(1 << 20);  // a pattern's compiled program; bounded per filter
      auto re = std::make_shared<re2::RE2>(p.text, o);
      if (!re->ok()) match.fail(at + "match' is not a valid RE2 pattern: " + re->error());
      p.re = std::move(re);
      s.patterns.push_back(std::move(p));
    }
  }
  s.on_failure = read_on_failure(v);
  if (s.text && s.binary && !s.json()) v.fail(v.label() + " checks nothing: set message_types, a JSON limit or patterns");
  return std::make_shared<ConstraintsFilter>(std::move(s));
}

std::unique_ptr<Instance> ConstraintsFilter::instantiate() const {
  return std::make_unique<VerdictInstance<ConstraintsFilter>>(*this);
}

bool ConstraintsFilter::same_as(const config::FilterSettings& other) const {
  const auto* o = dynamic_cast<const ConstraintsFilter*>(&other);
  if (o == nullptr) return false;
  const Settings& a = s_;
  const Settings& b = o->s_;
  if (a.from[0] != b.from[0] || a.from[1] != b.from[1] || a.text != b.text || a.binary != b.binary ||
      a.max_depth != b.max_depth || a.max_string != b.max_string || a.max_array != b.max_array ||
      a.max_keys != b.max_keys || !(a.on_failure == b.on_failure) || a.patterns.size() != b.patterns.size())
    return false;
  for (std::size_t i = 0; i < a.patterns.size(); ++i)
    if (a.patterns[i].pointer != b.patterns[i].pointer || a.patterns[i].text != b.patterns[i].text) return false;
  return true;
}

void ConstraintsFilter::declare_metrics(obs::Registry& reg, const std::string& route) const {
  for (Direction d : {Direction::to_upstream, Direction::to_client}) {
    if (!s_.from[static_cast<int>(d)]) continue;
    for (int r = 0; r < kFailures; ++r) {
      failures_[static_cast<int>(d)][r] =
          reg.counter("weir_constraint_failures_total", "Messages the constraints filter refused, by reason",
                      {{"route", route}, {"direction", std::string(direction_name(d))}, {"reason", kReasons[r]}});
    }
  }
}

}  // namespace weir::filters
