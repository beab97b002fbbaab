#include "ws/utf8.h"

#include <gtest/gtest.h>

namespace weir::ws {
namespace {

TEST(Utf8, AcceptsValid) {
  for (const char* s : {"", "hello", "κόσμε", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\xf4\x8f\xbf\xbf",
                        "\xed\x9f\xbf", "0123456789abcdefghij"})
    EXPECT_TRUE(is_valid_utf8(s)) << s;
}

TEST(Utf8, RejectsInvalid) {
  for (const char* s : {"\xff", "\xc0\xaf", "\xe0\x80\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80",
                        "\xf8\x88\x80\x80\x80", "\x80", "abc\xc2", "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64"})
    EXPECT_FALSE(is_valid_utf8(s)) << s;
}

TEST(Utf8, StreamsAcrossSplits) {
  const std::string s = "a\xf0\x9f\x98\x80z\xe2\x82\xac";
  for (std::size_t cut = 0; cut <= s.size(); ++cut) {
    Utf8Validator v;
    ASSERT_TRUE(v.feed(reinterpret_cast<const std::uint8_t*>(s.data()), cut));
    ASSERT_TRUE(v.feed(reinterpret_cast<const std::uint8_t*>(s.data()) + cut, s.size() - cut));
    EXPECT_TRUE(v.complete()) << cut;
  }
  Utf8Validator v;
  EXPECT_TRUE(v.feed(reinterpret_cast<const std::uint8_t*>("\xf0\x9f"), 2));
  EXPECT_FALSE(v.complete());
}

}  // namespace
}  // namespace weir::ws
