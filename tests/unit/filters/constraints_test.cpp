// constraints: each limit at its edge (exactly at it passes, one past fails,
// with the JSON pointer that failed), message types, RE2 patterns by JSON
// pointer (including one that would backtrack for ever in a backtracking
// engine), a 10 000-deep array stopped by the parser, and config errors.

#include "filters/constraints/constraints.h"

#include <gtest/gtest.h>

#include <string>

#include "../config/error_of.h"
#include "config/config.h"

namespace weir::filters {
namespace {

using Failure = ConstraintsFilter::Failure;

class ConstraintsTest : public ::testing::Test {
 protected:
  const ConstraintsFilter& load(const std::string& yaml) {
    cfg_ = config::load_string("listeners: [{address: 127.0.0.1, port: 0}]\nroutes:\n  - upstreams: [echo]\n"
                               "    constraints: " + yaml + "\n",
                               "t.yaml");
    return dynamic_cast<const ConstraintsFilter&>(*cfg_.routes[0].filters.at(0));
  }
  Failure check(const ConstraintsFilter& f, std::string payload, ws::Opcode op = ws::Opcode::text,
                Direction d = Direction::to_upstream) {
    Message m{op, payload};
    why_.clear();
    return f.check(d, m, &why_);
  }
  config::Config cfg_;
  std::string why_;
};

TEST_F(ConstraintsTest, DepthIsStoppedByTheParserAtTheLimit) {
  const auto& f = load("{max_depth: 3}");
  EXPECT_EQ(check(f, "[[[1]]]"), Failure::none);  // exactly 3
  EXPECT_EQ(check(f, "[[[[1]]]]"), Failure::depth);
  EXPECT_EQ(why_, "nested deeper than 3");
  EXPECT_EQ(check(f, R"({"a":{"b":{"c":{}}}})"), Failure::depth);
  // 10 000 deep: refused at depth 4, whatever follows (not even well-formed).
  EXPECT_EQ(check(f, std::string(10'000, '[')), Failure::depth);
  const auto& deep = load("{max_string_length: 8}");  // no max_depth: 1000 still holds
  EXPECT_EQ(check(deep, std::string(10'000, '[') + std::string(10'000, ']')), Failure::depth);
}

TEST_F(ConstraintsTest, SizesAtAndPastTheirEdgeWithThePointer) {
  const auto& f = load("{max_string_length: 4, max_array_length: 3, max_object_keys: 2}");
  EXPECT_EQ(check(f, R"({"ab":"abcd","l":[1,2,3]})"), Failure::none);
  EXPECT_EQ(check(f, R"({"ab":"abcde"})"), Failure::string_length);
  EXPECT_EQ(why_, "string longer than 4 bytes at /ab");
  EXPECT_EQ(check(f, R"({"abcde":1})"), Failure::string_length);  // keys too
  EXPECT_EQ(why_, "key longer than 4 bytes at /abcde");
  EXPECT_EQ(check(f, R"({"l":[1,[1,2,3,4]]})"), Failure::array_length);
  EXPECT_EQ(why_, "array longer than 3 at /l/1");
  EXPECT_EQ(check(f, R"({"a":1,"b":2,"c":3})"), Failure::object_keys);
  EXPECT_EQ(why_, "object with more than 2 keys at /");
  EXPECT_EQ(check(f, R"({"a/b":{"x~":"12345"}})"), Failure::string_length);
  EXPECT_EQ(why_, "string longer than 4 bytes at /a~1b/x~0");  // RFC 6901 escapes
  EXPECT_EQ(check(f, "\"hélo\""), Failure::string_length);  // bytes, not characters (5)
  EXPECT_EQ(check(f, "{\"a\":"), Failure::not_json);
  EXPECT_EQ(check(f, "\xff"), Failure::not_json);
}

TEST_F(ConstraintsTest, MessageTypesAndDirections) {
  const auto& f = load("{message_types: text}");
  EXPECT_EQ(check(f, "anything, not JSON"), Failure::none);  // no JSON limit: any text
  EXPECT_EQ(check(f, "\x01\x02", ws::Opcode::binary), Failure::message_type);
  EXPECT_EQ(why_, "binary messages are refused");
  // direction: client by default: the backend's messages are not checked.
  EXPECT_EQ(check(f, "\x01", ws::Opcode::binary, Direction::to_client), Failure::none);
  const auto& both = load("{direction: both, message_types: [binary]}");
  EXPECT_EQ(check(both, "hi", ws::Opcode::text, Direction::to_client), Failure::message_type);
  EXPECT_EQ(check(both, "hi", ws::Opcode::binary, Direction::to_client), Failure::none);
  // JSON limits apply to text only: binary passes them.
  const auto& json = load("{max_depth: 2}");
  EXPECT_EQ(check(json, "[[[[", ws::Opcode::binary), Failure::none);
}

TEST_F(ConstraintsTest, PatternsMatchTheWholeValueAtAPointer) {
  const auto& f = load(R"({patterns: [{pointer: /type, match: "chat|typing"}, {pointer: /n, match: "[0-9]{1,3}"},
                                      {pointer: /to/0, match: "[a-z]+"}]})");
  EXPECT_EQ(check(f, R"({"type":"chat","n":42,"to":["bob"]})"), Failure::none);
  EXPECT_EQ(check(f, R"({"other":1})"), Failure::none);  // absent: nothing to check
  EXPECT_EQ(check(f, R"({"type":"chatter"})"), Failure::pattern);  // whole value, not a prefix
  EXPECT_EQ(why_, "/type does not match chat|typing");
  EXPECT_EQ(check(f, R"({"n":1234})"), Failure::pattern);  // numbers as their JSON text
  EXPECT_EQ(check(f, R"({"type":{"x":1}})"), Failure::pattern);
  EXPECT_EQ(why_, "/type is not a single value");
  EXPECT_EQ(check(f, R"({"to":["Bob"]})"), Failure::pattern);
  // (load() replaces the config: f is not used past here.)
  const auto& dec = load(R"({patterns: [{pointer: /p, match: "[0-9]+\\.[0-9]+"}, {pointer: /b, match: "true"}]})");
  EXPECT_EQ(check(dec, R"({"p":1.5,"b":true})"), Failure::none);  // 1.5, not 1.5E0
  EXPECT_EQ(check(dec, R"({"p":1673382441.141209})"), Failure::none);
  EXPECT_EQ(check(dec, R"({"b":false})"), Failure::pattern);
}

TEST_F(ConstraintsTest, APatternThatBacktracksElsewhereIsLinearHere) {
  // (a+)+$ against "aaaa...!" takes exponential time in a backtracking engine.
  const auto& f = load(R"({patterns: [{pointer: /s, match: "(a+)+"}]})");
  const std::string evil = R"({"s":")" + std::string(100'000, 'a') + "!\"}";
  EXPECT_EQ(check(f, evil), Failure::pattern);
}

TEST_F(ConstraintsTest, VerdictsAndCloseCodes) {
  const auto& f = load("{max_depth: 1, message_types: text}");
  obs::CounterId c;
  std::string p = "[[1]]";
  Message m{ws::Opcode::text, p};
  auto v = f.verdict(Direction::to_upstream, m, &c);
  EXPECT_EQ(v.kind, MessageVerdict::Kind::close);
  EXPECT_EQ(v.code, 1008);
  std::string q = "nope";
  Message n{ws::Opcode::text, q};
  EXPECT_EQ(f.verdict(Direction::to_upstream, n, &c).code, 1007);
  std::string b = "x";
  Message bin{ws::Opcode::binary, b};
  EXPECT_EQ(f.verdict(Direction::to_upstream, bin, &c).code, 1003);
  const auto& drop = load("{max_depth: 1, on_failure: drop}");
  EXPECT_EQ(drop.verdict(Direction::to_upstream, m, &c).kind, MessageVerdict::Kind::drop);
}

TEST_F(ConstraintsTest, RejectRepliesWithTheReasonAndPointer) {
  obs::CounterId c;
  std::string p = R"({"msg":{"text":"abcdef"}})";
  Message m{ws::Opcode::text, p};
  // The standard reply.
  const auto& f = load("{max_string_length: 4, on_failure: reject}");
  auto v = f.verdict(Direction::to_upstream, m, &c);
  EXPECT_EQ(v.kind, MessageVerdict::Kind::reject);
  EXPECT_EQ(v.reply,
            R"({"error":"message rejected","filter":"constraints","reason":"string longer than 4 bytes at /msg/text",)"
            R"("pointer":"/msg/text"})");
  EXPECT_EQ(v.reason, "string longer than 4 bytes at /msg/text");
  EXPECT_EQ(v.pointer, "/msg/text");
  EXPECT_EQ(v.log_prefix, 0u);
  // A configured shape: placeholders inside longer strings and in keys, quotes
  // in the reason escaped, other values kept as they are.
  const auto& g = load(
      "{patterns: [{pointer: /t, match: 'a\"b'}], on_failure: reject, log_payload: 8, reject_reply: "
      "'{\"type\":\"error\",\"code\":4001,\"detail\":\"bad {pointer}: {reason}\",\"{filter}\":true}'}");
  std::string t = R"({"t":"zz"})";
  Message tm{ws::Opcode::text, t};
  v = g.verdict(Direction::to_upstream, tm, &c);
  EXPECT_EQ(v.kind, MessageVerdict::Kind::reject);
  EXPECT_EQ(v.reply, R"({"type":"error","code":4001,"detail":"bad /t: /t does not match a\"b","constraints":true})");
  EXPECT_EQ(v.log_prefix, 8u);
  // A message type refused: no pointer.
  const auto& types = load("{message_types: text, on_failure: reject}");
  std::string b = "x";
  Message bin{ws::Opcode::binary, b};
  v = types.verdict(Direction::to_upstream, bin, &c);
  EXPECT_EQ(v.kind, MessageVerdict::Kind::reject);
  EXPECT_EQ(v.pointer, "");
  EXPECT_NE(v.reply.find(R"("pointer":"")"), std::string::npos);
  // drop keeps the reason for the log.
  const auto& drop = load("{max_string_length: 4, on_failure: drop}");
  v = drop.verdict(Direction::to_upstream, m, &c);
  EXPECT_EQ(v.kind, MessageVerdict::Kind::drop);
  EXPECT_EQ(v.reason, "string longer than 4 bytes at /msg/text");
}

TEST_F(ConstraintsTest, ConfigErrors) {
  using config::testing::error_of;
  const std::string head = "listeners: [{port: 1}]\nroutes:\n  - upstreams: [echo]\n    constraints: ";
  EXPECT_EQ(error_of(head + "{direction: both}\n"),
            "t.yaml:4:18: 'constraints' checks nothing: set message_types, a JSON limit or patterns");
  EXPECT_EQ(error_of(head + "{patterns: [{pointer: /a, match: \"(\"}]}\n"),
            "t.yaml:4:51: 'constraints.patterns[0].match' is not a valid RE2 pattern: missing ): (");
  EXPECT_EQ(error_of(head + "{patterns: [{pointer: a, match: x}]}\n"),
            "t.yaml:4:40: 'constraints.patterns[0].pointer' must be a JSON pointer: empty, or '/' then tokens "
            "('~' only as ~0 or ~1)");
  EXPECT_NE(error_of(head + "{patterns: [{pointer: /a~2, match: x}]}\n").find("must be a JSON pointer"), std::string::npos);
  EXPECT_EQ(error_of(head + "{max_depth: 0}\n"), "t.yaml:4:30: 'constraints.max_depth' must be an integer from 1 to 1000, got '0'");
  EXPECT_EQ(error_of(head + "{max_depth: 2, reject_reply: '{}'}\n"),
            "t.yaml:4:47: 'constraints.reject_reply' needs on_failure: reject");
  EXPECT_EQ(error_of(head + "{max_depth: 2, on_failure: reject, reject_reply: '{nope'}\n"),
            "t.yaml:4:67: 'constraints.reject_reply': not JSON: syntax error");
  EXPECT_EQ(error_of(head + "{max_depth: 2, on_failure: bounce}\n"),
            "t.yaml:4:45: 'constraints.on_failure' must be one of close, drop, reject, got 'bounce'");
}

}  // namespace
}  // namespace weir::filters
