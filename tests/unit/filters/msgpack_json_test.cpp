// MessagePack -> JSON (filters/json_schema/msgpack_json.h): every type, the
// edges of the mapping, malformed payloads and depth.

#include "filters/json_schema/msgpack_json.h"

#include <gtest/gtest.h>
#include <msgpuck.h>

#include <boost/json.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

namespace weir::filters {
namespace {

namespace json = boost::json;
using E = MsgpackJson::Error;

// Builds a payload with msgpuck's encoders: mp(out, [](char* p) { return mp_encode_nil(p); }).
class Mp {
 public:
  template <class F>
  Mp& add(F&& encode) {
    char buf[64];
    char* end = encode(buf);
    out_.append(buf, static_cast<std::size_t>(end - buf));
    return *this;
  }
  Mp& raw(std::string_view bytes) {
    out_ += bytes;
    return *this;
  }
  Mp& str(std::string_view s) {
    add([&](char* p) { return mp_encode_strl(p, static_cast<std::uint32_t>(s.size())); });
    return raw(s);
  }
  const std::string& bytes() const { return out_; }

 private:
  std::string out_;
};

MsgpackJson decode(const std::string& payload, unsigned max_depth = 64) { return msgpack_to_json(payload, max_depth); }

json::value ok(const std::string& payload, unsigned max_depth = 64) {
  MsgpackJson r = decode(payload, max_depth);
  EXPECT_EQ(r.error, E::none) << r.why;
  return r.value;
}

TEST(MsgpackJson, EveryTypeMapsToItsJsonValue) {
  EXPECT_TRUE(ok(Mp().add([](char* p) { return mp_encode_nil(p); }).bytes()).is_null());
  EXPECT_EQ(ok(Mp().add([](char* p) { return mp_encode_bool(p, true); }).bytes()), json::value(true));
  EXPECT_EQ(ok(Mp().add([](char* p) { return mp_encode_bool(p, false); }).bytes()), json::value(false));
  for (std::uint64_t u : {0ull, 127ull, 128ull, 255ull, 256ull, 65535ull, 65536ull, 4294967295ull, 4294967296ull}) {
    const json::value v = ok(Mp().add([u](char* p) { return mp_encode_uint(p, u); }).bytes());
    ASSERT_TRUE(v.is_int64()) << u;
    EXPECT_EQ(v.as_int64(), static_cast<std::int64_t>(u));
  }
  for (std::int64_t i : std::initializer_list<std::int64_t>{-1, -32, -33, -128, -129, -32768, -32769, -2147483648ll, -2147483649ll,
                                                             std::numeric_limits<std::int64_t>::min()}) {
    const json::value v = ok(Mp().add([i](char* p) { return mp_encode_int(p, i); }).bytes());
    ASSERT_TRUE(v.is_int64()) << i;
    EXPECT_EQ(v.as_int64(), i);
  }
  // An int format holding a non-negative number (other encoders write those).
  EXPECT_EQ(ok(std::string("\xd0\x05", 2)).as_int64(), 5);
  EXPECT_EQ(ok(Mp().add([](char* p) { return mp_encode_float(p, 1.5f); }).bytes()).as_double(), 1.5);
  EXPECT_EQ(ok(Mp().add([](char* p) { return mp_encode_double(p, -0.25); }).bytes()).as_double(), -0.25);
  EXPECT_EQ(ok(Mp().str("héllo").bytes()), json::value("héllo"));
  EXPECT_EQ(ok(Mp().str("").bytes()), json::value(""));
  const std::string long_text(70000, 'x');  // str 32
  EXPECT_EQ(ok(Mp().str(long_text).bytes()).as_string(), long_text);

  // {"type": "chat", "n": [1, -2, 2.5, null, true], "o": {}}
  Mp doc;
  doc.add([](char* p) { return mp_encode_map(p, 3); })
      .str("type").str("chat")
      .str("n").add([](char* p) { return mp_encode_array(p, 5); })
      .add([](char* p) { return mp_encode_uint(p, 1); })
      .add([](char* p) { return mp_encode_int(p, -2); })
      .add([](char* p) { return mp_encode_double(p, 2.5); })
      .add([](char* p) { return mp_encode_nil(p); })
      .add([](char* p) { return mp_encode_bool(p, true); })
      .str("o").add([](char* p) { return mp_encode_map(p, 0); });
  EXPECT_EQ(ok(doc.bytes()), json::parse(R"({"type":"chat","n":[1,-2,2.5,null,true],"o":{}})"));
  // 16- and 32-bit container headers.
  EXPECT_EQ(ok(std::string("\xdc\x00\x01\xc0", 4)), json::parse("[null]"));
  EXPECT_EQ(ok(std::string("\xdd\x00\x00\x00\x01\xc3", 6)), json::parse("[true]"));
  EXPECT_EQ(ok(std::string("\xde\x00\x01\xa1k\xc2", 6)), json::parse(R"({"k":false})"));
  EXPECT_EQ(ok(std::string("\xdf\x00\x00\x00\x01\xa1k\xc0", 8)), json::parse(R"({"k":null})"));
}

TEST(MsgpackJson, Uint64AboveInt64MaxStaysUnsigned) {
  const std::uint64_t max = std::numeric_limits<std::int64_t>::max();
  json::value v = ok(Mp().add([max](char* p) { return mp_encode_uint(p, max); }).bytes());
  ASSERT_TRUE(v.is_int64());
  EXPECT_EQ(v.as_int64(), std::numeric_limits<std::int64_t>::max());
  v = ok(Mp().add([max](char* p) { return mp_encode_uint(p, max + 1); }).bytes());
  ASSERT_TRUE(v.is_uint64());
  EXPECT_EQ(v.as_uint64(), max + 1);
  v = ok(Mp().add([](char* p) { return mp_encode_uint(p, std::numeric_limits<std::uint64_t>::max()); }).bytes());
  ASSERT_TRUE(v.is_uint64());
  EXPECT_EQ(v.as_uint64(), std::numeric_limits<std::uint64_t>::max());
}

TEST(MsgpackJson, WhatJsonCannotHoldIsNotRepresentable) {
  auto fails = [](const std::string& payload, const std::string& pointer, const std::string& why) {
    const MsgpackJson r = decode(payload);
    EXPECT_EQ(r.error, E::not_representable) << r.why;
    EXPECT_EQ(r.pointer, pointer);
    EXPECT_EQ(r.why, why);
    EXPECT_TRUE(r.value.is_null());
  };
  fails(Mp().add([](char* p) { return mp_encode_float(p, std::nanf("")); }).bytes(), "",
        "msgpack: /: NaN or infinity is not representable in JSON");
  fails(Mp().add([](char* p) { return mp_encode_double(p, std::nan("")); }).bytes(), "",
        "msgpack: /: NaN or infinity is not representable in JSON");
  fails(Mp().add([](char* p) { return mp_encode_double(p, -INFINITY); }).bytes(), "",
        "msgpack: /: NaN or infinity is not representable in JSON");
  // {"a": [1, bin]}
  fails(Mp().add([](char* p) { return mp_encode_map(p, 1); }).str("a")
            .add([](char* p) { return mp_encode_array(p, 2); })
            .add([](char* p) { return mp_encode_uint(p, 1); })
            .add([](char* p) { return mp_encode_bin(p, "xy", 2); }).bytes(),
        "/a/1", "msgpack: /a/1: bin is not representable in JSON");
  // {"a/b~": ext}: the pointer escapes '/' and '~'.
  fails(Mp().add([](char* p) { return mp_encode_map(p, 1); }).str("a/b~")
            .raw("\xc7\x03\x07xyz").bytes(),  // ext 8: 3 bytes of type 7
        "/a~1b~0", "msgpack: /a~1b~0: ext is not representable in JSON");
  // {1: true}
  fails(Mp().add([](char* p) { return mp_encode_map(p, 1); })
            .add([](char* p) { return mp_encode_uint(p, 1); })
            .add([](char* p) { return mp_encode_bool(p, true); }).bytes(),
        "", "msgpack: /: a map key that is not a string");
  // ["\xff"] and a key that is not UTF-8.
  fails(Mp().add([](char* p) { return mp_encode_array(p, 1); }).str("\xff").bytes(), "/0",
        "msgpack: /0: a string that is not UTF-8");
  fails(Mp().add([](char* p) { return mp_encode_map(p, 1); }).str("\xc3\x28").add([](char* p) { return mp_encode_nil(p); }).bytes(),
        "", "msgpack: /: a string that is not UTF-8");
  // {"k": 1, "k": 2}: the schema would judge one and a backend might take the other.
  fails(Mp().add([](char* p) { return mp_encode_map(p, 2); })
            .str("k").add([](char* p) { return mp_encode_uint(p, 1); })
            .str("k").add([](char* p) { return mp_encode_uint(p, 2); }).bytes(),
        "/k", "msgpack: /k: a repeated map key");
}

TEST(MsgpackJson, MalformedPayloadsAreNotMsgpack) {
  auto fails = [](const std::string& payload, const std::string& why) {
    const MsgpackJson r = decode(payload);
    EXPECT_EQ(r.error, E::not_msgpack) << r.why;
    EXPECT_EQ(r.why, why);
  };
  fails("", "not MessagePack: empty");
  fails("\xa5" "ab", "not MessagePack: truncated");                         // str of 5, 2 bytes
  fails(std::string("\x93\x01\x02", 3), "not MessagePack: truncated");      // array of 3, 2 items
  fails(std::string("\x81\xa1k", 3), "not MessagePack: truncated");         // map without its value
  fails("\xcd\x01", "not MessagePack: truncated");                          // uint16, 1 byte
  fails("\xcb\x00\x00", "not MessagePack: truncated");                      // double, 2 bytes
  fails(std::string("\xc0\xc0", 2), "not MessagePack: 1 trailing bytes after the object");
  fails(std::string("\x91\x01\x02\x03", 4), "not MessagePack: 2 trailing bytes after the object");
  fails("\xc1", "not MessagePack: byte 0xc1");                              // never used
  fails(std::string("\x92\x01\xc1", 3), "not MessagePack: byte 0xc1");
  // Counts that wrap mp_check's int counter (it lets these five bytes pass)
  // are caught by the decoder: no read out of bounds.
  fails(std::string("\xdd\xff\xff\xff\xff", 5), "not MessagePack: truncated");
  fails(std::string("\xdf\x80\x00\x00\x00", 5), "not MessagePack: truncated");
  // Here mp_check's counter wraps to -1 after the header: it "ends" there.
  fails(std::string("\xdf\xff\xff\xff\xff\x01", 6), "not MessagePack: 1 trailing bytes after the object");
  fails(std::string("\xdb\xff\xff\xff\xff" "abc", 8), "not MessagePack: truncated");
}

std::string nested_arrays(std::size_t depth) { return std::string(depth, '\x91') + '\xc0'; }

TEST(MsgpackJson, DepthIsBoundedLikeJsonText) {
  // Exactly at the limit passes, one more level fails, as json::parse with
  // the same max_depth does for the same document as text.
  for (unsigned limit : {1u, 3u, 64u}) {
    json::parse_options opt;
    opt.max_depth = limit;
    boost::system::error_code ec;
    json::parse(std::string(limit, '[') + "null" + std::string(limit, ']'), ec, {}, opt);
    EXPECT_FALSE(ec) << limit;
    json::parse(std::string(limit + 1, '[') + "null" + std::string(limit + 1, ']'), ec, {}, opt);
    EXPECT_EQ(ec, json::error::too_deep) << limit;

    EXPECT_EQ(decode(nested_arrays(limit), limit).error, E::none) << limit;
    const MsgpackJson r = decode(nested_arrays(limit + 1), limit);
    EXPECT_EQ(r.error, E::too_deep) << limit;
    EXPECT_EQ(r.why, "nested deeper than " + std::to_string(limit));
  }
  // Maps count as levels too: {"a": {"a": 1}} is two.
  const std::string maps = "\x81\xa1" "a" "\x81\xa1" "a" "\x01";
  EXPECT_EQ(decode(maps, 2).error, E::none);
  EXPECT_EQ(decode(maps, 1).error, E::too_deep);
  // A scalar has no depth.
  EXPECT_EQ(decode("\x01", 1).error, E::none);
}

TEST(MsgpackJson, HundredThousandLevelsCostNoStack) {
  // mp_check walks it with a counter; the decoder stops at max_depth.
  MsgpackJson r = decode(nested_arrays(100000), 1000);
  EXPECT_EQ(r.error, E::too_deep);
  std::string maps;
  for (int i = 0; i < 100000; ++i) maps += "\x81\xa1" "k";
  maps += '\xc0';
  r = decode(maps, 64);
  EXPECT_EQ(r.error, E::too_deep);
  // Truncated at the bottom: malformed, found by mp_check before any decoding.
  r = decode(std::string(100000, '\x91'), 1000);
  EXPECT_EQ(r.error, E::not_msgpack);
}

}  // namespace
}  // namespace weir::filters
