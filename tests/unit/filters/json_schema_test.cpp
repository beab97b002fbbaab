// json_schema: loading (errors with positions, $ref to siblings, pattern
// keywords refused) and verdicts on whole messages.

#include "filters/json_schema/json_schema.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "config/config.h"

namespace weir::filters {
namespace {

namespace fs = std::filesystem;

class JsonSchemaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("weir-schema-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ / name) << text;
    return (dir_ / name).string();
  }
  const JsonSchemaFilter& load(const std::string& yaml) {
    cfg_ = config::load_string("listeners: [{address: 127.0.0.1, port: 0}]\nroutes:\n  - upstreams: [echo]\n"
                               "    json_schema: " + yaml + "\n",
                               "t.yaml");
    return dynamic_cast<const JsonSchemaFilter&>(*cfg_.routes[0].filters.at(0));
  }
  std::string error_of(const std::string& yaml) {
    try {
      load(yaml);
    } catch (const config::ConfigError& e) {
      return e.what();
    }
    return {};
  }
  MessageVerdict run(const JsonSchemaFilter& f, std::string payload, ws::Opcode op = ws::Opcode::text,
                     Direction d = Direction::to_upstream) {
    Message m{op, payload};
    obs::CounterId c;
    return f.verdict(d, m, &c);
  }
  fs::path dir_;
  config::Config cfg_;
};

const char* kChat = R"({
  "type": "object",
  "required": ["type", "text"],
  "properties": {
    "type": {"enum": ["chat", "typing"]},
    "text": {"type": "string", "maxLength": 10},
    "to": {"$ref": "user.json"}
  },
  "additionalProperties": false
})";

TEST_F(JsonSchemaTest, ValidMessagesPassAndInvalidOnesSayWhereAndWhy) {
  write("user.json", R"({"type": "object", "required": ["id"], "properties": {"id": {"type": "integer"}}})");
  const auto& f = load("{client_to_upstream: " + write("chat.json", kChat) + "}");
  using K = MessageVerdict::Kind;
  EXPECT_EQ(run(f, R"({"type":"chat","text":"hi"})").kind, K::forward);
  EXPECT_EQ(run(f, R"({"type":"chat","text":"hi","to":{"id":7}})").kind, K::forward);
  auto v = run(f, R"({"type":"chat","text":"this is far too long"})");
  EXPECT_EQ(v.kind, K::close);
  EXPECT_EQ(v.code, 1008);
  EXPECT_NE(v.reason.find("/text"), std::string::npos) << v.reason;
  v = run(f, R"({"type":"chat","text":"hi","to":{"id":"seven"}})");  // through the $ref
  EXPECT_EQ(v.code, 1008);
  EXPECT_NE(v.reason.find("/to/id"), std::string::npos) << v.reason;
  EXPECT_EQ(run(f, R"({"type":"shout","text":"hi"})").code, 1008);
  EXPECT_EQ(run(f, R"({"type":"chat"})").code, 1008);
  EXPECT_EQ(run(f, R"({"type":"chat","text":"hi","extra":1})").code, 1008);
  v = run(f, R"({"type":"chat",)");
  EXPECT_EQ(v.code, 1007);
  EXPECT_EQ(v.reason.rfind("not JSON", 0), 0u);
  EXPECT_EQ(run(f, "{\"type\":\"chat\",\"text\":\"\xff\"}").code, 1007);  // not UTF-8
  // Deeper than max_depth fails before validation.
  EXPECT_EQ(run(f, std::string(100, '[') + std::string(100, ']')).code, 1008);
  // Binary is let through by default, and the other direction is not checked.
  EXPECT_EQ(run(f, "\x01\x02", ws::Opcode::binary).kind, K::forward);
  EXPECT_EQ(run(f, "not json", ws::Opcode::text, Direction::to_client).kind, K::forward);
  EXPECT_LE(run(f, "{\"type\":\"chat\",\"text\":\"hi\",\"" + std::string(300, 'k') + "\":1}").reason.size(), 123u);
}

TEST_F(JsonSchemaTest, DropAndBinaryRefusal) {
  write("user.json", R"({"type": "object"})");
  const auto& f = load("{upstream_to_client: " + write("chat.json", kChat) + ", on_failure: drop, binary: refuse}");
  EXPECT_EQ(run(f, "nope", ws::Opcode::text, Direction::to_client).kind, MessageVerdict::Kind::drop);
  EXPECT_EQ(run(f, "\x01", ws::Opcode::binary, Direction::to_client).kind, MessageVerdict::Kind::drop);
  EXPECT_EQ(run(f, "nope", ws::Opcode::text, Direction::to_upstream).kind, MessageVerdict::Kind::forward);
  const auto& g = load("{client_to_upstream: " + write("c2.json", kChat) + ", binary: refuse}");
  EXPECT_EQ(run(g, "\x01", ws::Opcode::binary).code, 1003);
}

TEST_F(JsonSchemaTest, StringsWithANulAreRefusedSinceTheValidatorWouldSeeOnlyTheirHead) {
  write("user.json", R"({"type": "object"})");
  const auto& f = load("{client_to_upstream: " + write("chat.json", kChat) + ", binary: msgpack}");
  // valijson reads "chat\u0000evil" as "chat", which the enum allows.
  auto v = run(f, R"({"type":"chat\u0000evil","text":"hi"})");
  EXPECT_EQ(v.kind, MessageVerdict::Kind::close);
  EXPECT_EQ(v.code, 1008);
  EXPECT_EQ(v.reason, "a NUL character in the string at /type");
  v = run(f, R"({"type":"chat","text":"hi","to":{"a\u0000b":1}})");  // keys too
  EXPECT_EQ(v.reason, std::string("a NUL character in the string at /to/a\0b", 40));
  EXPECT_EQ(v.code, 1008);
  // MessagePack alike: {"type": "chat\0evil", "text": "hi"}.
  const std::string mp = std::string("\x82\xa4type\xa9" "chat\0evil\xa4text\xa2hi", 24);
  v = run(f, mp, ws::Opcode::binary);
  EXPECT_EQ(v.code, 1008);
  EXPECT_EQ(v.reason, "a NUL character in the string at /type");
  EXPECT_EQ(run(f, R"({"type":"chat","text":"hi"})").kind, MessageVerdict::Kind::forward);
}

TEST_F(JsonSchemaTest, RejectAnswersWithThePointerThatFailed) {
  write("user.json", R"({"type": "object", "required": ["id"], "properties": {"id": {"type": "integer"}}})");
  const auto& f = load("{client_to_upstream: " + write("chat.json", kChat) +
                       ", on_failure: reject, reject_reply: '{\"e\":\"{pointer}\"}'}");
  auto v = run(f, R"({"type":"chat","text":"hi","to":{"id":"seven"}})");
  EXPECT_EQ(v.kind, MessageVerdict::Kind::reject);
  EXPECT_EQ(v.pointer, "/to/id");
  EXPECT_EQ(v.reply, R"({"e":"/to/id"})");
  v = run(f, "nope");  // not JSON: no pointer
  EXPECT_EQ(v.kind, MessageVerdict::Kind::reject);
  EXPECT_EQ(v.reply, R"({"e":""})");
  EXPECT_EQ(v.reason.rfind("not JSON", 0), 0u);
}

// MessagePack by hand: a fixmap of fixstr keys and values.
std::string mp_str(const std::string& s) { return std::string(1, static_cast<char>(0xa0 | s.size())) + s; }

TEST_F(JsonSchemaTest, MsgpackBinaryMessagesAreValidatedAgainstTheSameSchema) {
  write("user.json", R"({"type": "object", "required": ["id"], "properties": {"id": {"type": "integer"}}})");
  const auto& f = load("{client_to_upstream: " + write("chat.json", kChat) + ", binary: msgpack, max_binary_bytes: 64, max_depth: 8}");
  using K = MessageVerdict::Kind;
  // {"type": "chat", "text": "hi"}: forwarded, untouched.
  const std::string good = "\x82" + mp_str("type") + mp_str("chat") + mp_str("text") + mp_str("hi");
  std::string payload = good;
  Message m{ws::Opcode::binary, payload};
  obs::CounterId c;
  EXPECT_EQ(f.verdict(Direction::to_upstream, m, &c).kind, K::forward);
  EXPECT_EQ(payload, good);
  // {"type": "chat", "text": "hi", "to": {"id": "seven"}}: 1008 at the pointer, through the $ref.
  auto v = run(f, "\x83" + mp_str("type") + mp_str("chat") + mp_str("text") + mp_str("hi") + mp_str("to") + "\x81" +
                      mp_str("id") + mp_str("seven"),
               ws::Opcode::binary);
  EXPECT_EQ(v.kind, K::close);
  EXPECT_EQ(v.code, 1008);
  EXPECT_EQ(v.reason.rfind("schema: /to/id: ", 0), 0u) << v.reason;
  // {"type": "chat", "text": bin}: not representable.
  v = run(f, "\x82" + mp_str("type") + mp_str("chat") + mp_str("text") + std::string("\xc4\x01x", 3), ws::Opcode::binary);
  EXPECT_EQ(v.code, 1008);
  EXPECT_EQ(v.reason, "msgpack: /text: bin is not representable in JSON");
  v = run(f, std::string(70, '\x91') + '\xc0', ws::Opcode::binary);  // too big before too deep
  EXPECT_EQ(v.code, 1009);
  EXPECT_EQ(v.reason, "binary message over 64 bytes");
  v = run(f, std::string(9, '\x91') + '\xc0', ws::Opcode::binary);  // deeper than max_depth: 8
  EXPECT_EQ(v.code, 1008);
  EXPECT_EQ(v.reason, "nested deeper than 8");
  v = run(f, std::string(8, '\x91') + '\xc0', ws::Opcode::binary);  // at the limit: decoded, then validated
  EXPECT_EQ(v.code, 1008);
  EXPECT_EQ(v.reason.rfind("schema: /: ", 0), 0u) << v.reason;
  v = run(f, "garbage", ws::Opcode::binary);  // 'g' is a fixint: 6 bytes follow it
  EXPECT_EQ(v.code, 1007);
  EXPECT_EQ(v.reason, "not MessagePack: 6 trailing bytes after the object");
  EXPECT_EQ(run(f, good.substr(0, good.size() - 1), ws::Opcode::binary).reason, "not MessagePack: truncated");
  // Text is still JSON; the unchecked direction is not looked at.
  EXPECT_EQ(run(f, R"({"type":"chat","text":"hi"})").kind, K::forward);
  EXPECT_EQ(run(f, "garbage", ws::Opcode::binary, Direction::to_client).kind, K::forward);

  // drop: not relayed, the session goes on.
  const auto& d = load("{client_to_upstream: " + write("c2.json", kChat) + ", binary: msgpack, on_failure: drop}");
  EXPECT_EQ(run(d, "garbage", ws::Opcode::binary).kind, K::drop);
  EXPECT_EQ(run(d, good, ws::Opcode::binary).kind, K::forward);
  // The size limit holds in allow and refuse modes too.
  const auto& a = load("{client_to_upstream: " + write("c3.json", kChat) + ", max_binary_bytes: 1KiB}");
  EXPECT_EQ(run(a, std::string(1024, 'x'), ws::Opcode::binary).kind, K::forward);
  EXPECT_EQ(run(a, std::string(1025, 'x'), ws::Opcode::binary).code, 1009);
  EXPECT_EQ(run(a, std::string(2000, 'x')).code, 1007);  // text is not limited by it
  const auto& r = load("{client_to_upstream: " + write("c4.json", kChat) + ", binary: refuse, max_binary_bytes: 4}");
  EXPECT_EQ(run(r, "\x01", ws::Opcode::binary).code, 1003);
  EXPECT_EQ(run(r, "12345", ws::Opcode::binary).code, 1009);
}

TEST_F(JsonSchemaTest, BinarySettingsAreCheckedWhenLoading) {
  const std::string chat = write("chat.json", R"({"type": "object"})");
  std::string e = error_of("{client_to_upstream: " + chat + ", binary: cbor}");
  EXPECT_EQ(e.rfind("t.yaml:4:", 0), 0u) << e;
  EXPECT_NE(e.find("'json_schema.binary' must be one of allow, refuse, msgpack, got 'cbor'"), std::string::npos) << e;
  e = error_of("{client_to_upstream: " + chat + ", max_binary_bytes: lots}");
  EXPECT_EQ(e.rfind("t.yaml:4:", 0), 0u) << e;
  EXPECT_NE(e.find("max_binary_bytes"), std::string::npos) << e;
  e = error_of("{client_to_upstream: " + chat + ", max_binary_bytes: 0}");
  EXPECT_NE(e.find("from 1 byte to 1GiB"), std::string::npos) << e;
}

TEST_F(JsonSchemaTest, BadSchemasAreConfigErrorsWithPositions) {
  const std::string bad = write("bad.json", "{\n  \"type\": \"object\",\n  \"properties\": {,}\n}");
  std::string e = error_of("{client_to_upstream: " + bad + "}");
  EXPECT_EQ(e.rfind("t.yaml:4:39: 'json_schema.client_to_upstream': ", 0), 0u) << e;  // at the file name
  EXPECT_NE(e.find("bad.json:3:18: not JSON"), std::string::npos) << e;
  e = error_of("{client_to_upstream: " + (dir_ / "missing.json").string() + "}");
  EXPECT_NE(e.find("missing.json: cannot be read"), std::string::npos) << e;
  e = error_of("{client_to_upstream: " + write("p.json", R"({"properties": {"name": {"type": "string", "pattern": "^(a+)+$"}}})") + "}");
  EXPECT_NE(e.find("'/properties/name/pattern': pattern keywords are refused"), std::string::npos) << e;
  e = error_of("{client_to_upstream: " + write("t.json", R"({"type": 12})") + "}");
  EXPECT_NE(e.find("not a valid JSON Schema"), std::string::npos) << e;
  e = error_of("{client_to_upstream: " + write("r.json", R"({"$ref": "http://example.com/s.json"})") + "}");
  EXPECT_NE(e.find("only files next to the schema"), std::string::npos) << e;
  e = error_of("{client_to_upstream: " + write("r2.json", R"({"$ref": "nothere.json"})") + "}");
  EXPECT_NE(e.find("nothere.json: cannot be read"), std::string::npos) << e;
  // References that loop, within a file or between two, load (and validate).
  write("a.json", R"({"type": "object", "properties": {"b": {"$ref": "b.json"}}})");
  write("b.json", R"({"type": "object", "properties": {"a": {"$ref": "a.json"}}})");
  EXPECT_EQ(error_of("{client_to_upstream: " + (dir_ / "a.json").string() + "}"), "");
  const auto& tree = load("{client_to_upstream: " + write("tree.json", R"({"type": "object", "properties": {"kids": {"type": "array", "items": {"$ref": "#"}}}})") + "}");
  EXPECT_EQ(run(tree, R"({"kids":[{"kids":[{}]}]})").kind, MessageVerdict::Kind::forward);
  EXPECT_EQ(run(tree, R"({"kids":[{"kids":[1]}]})").code, 1008);
  EXPECT_NE(error_of("{on_failure: drop}").find("needs client_to_upstream or upstream_to_client"), std::string::npos);
  // A property merely named "pattern" is fine.
  EXPECT_EQ(error_of("{client_to_upstream: " + write("ok.json", R"({"properties": {"pattern": {"type": "string"}}})") + "}"),
            "");
}

}  // namespace
}  // namespace weir::filters
