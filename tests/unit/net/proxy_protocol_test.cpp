#include "net/proxy_protocol.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace weir::net {
namespace {

ProxyHeader parse(const std::string& s) {
  return parse_proxy_header(reinterpret_cast<const std::uint8_t*>(s.data()), s.size());
}

std::string v2(std::uint8_t ver_cmd, std::uint8_t fam, const std::vector<std::uint8_t>& body) {
  std::string s("\r\n\r\n\0\r\nQUIT\n", 12);
  s += static_cast<char>(ver_cmd);
  s += static_cast<char>(fam);
  s += static_cast<char>(body.size() >> 8);
  s += static_cast<char>(body.size() & 0xff);
  s.append(body.begin(), body.end());
  return s;
}

TEST(ProxyProtocol, V1Tcp4AndTcp6AndUnknown) {
  auto h = parse("PROXY TCP4 198.51.100.7 192.0.2.1 56324 443\r\nGET / HTTP/1.1\r\n");
  ASSERT_EQ(h.status, ProxyHeader::Status::done);
  EXPECT_EQ(h.source, "198.51.100.7");
  EXPECT_EQ(h.source_port, 56324);
  EXPECT_EQ(h.size, 45u);
  h = parse("PROXY TCP6 2001:db8::7 2001:db8::1 4000 443\r\n");
  ASSERT_EQ(h.status, ProxyHeader::Status::done);
  EXPECT_EQ(h.source, "2001:db8::7");
  h = parse("PROXY UNKNOWN whatever\r\n");
  ASSERT_EQ(h.status, ProxyHeader::Status::done);
  EXPECT_TRUE(h.local);
}

TEST(ProxyProtocol, V1NeedsMoreThenRefusesWhatIsNotOne) {
  EXPECT_EQ(parse("PRO").status, ProxyHeader::Status::need_more);
  EXPECT_EQ(parse("PROXY TCP4 1.2.3.4").status, ProxyHeader::Status::need_more);
  EXPECT_EQ(parse("GET / HTTP/1.1\r\n").status, ProxyHeader::Status::invalid);
  EXPECT_EQ(parse("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n").status, ProxyHeader::Status::invalid);
  EXPECT_EQ(parse("PROXY TCP4 2001:db8::1 5.6.7.8 1 2\r\n").status, ProxyHeader::Status::invalid);
  EXPECT_EQ(parse("PROXY TCP4 1.2.3.4 5.6.7.8 70000 2\r\n").status, ProxyHeader::Status::invalid);
  EXPECT_EQ(parse("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n").status, ProxyHeader::Status::invalid);
  EXPECT_EQ(parse("PROXY " + std::string(120, 'x')).status, ProxyHeader::Status::invalid);
}

TEST(ProxyProtocol, V2ProxyLocalAndTruncated) {
  std::vector<std::uint8_t> v4 = {198, 51, 100, 7, 192, 0, 2, 1, 0xDC, 0x04, 0x01, 0xBB};
  auto h = parse(v2(0x21, 0x11, v4) + "rest");
  ASSERT_EQ(h.status, ProxyHeader::Status::done);
  EXPECT_EQ(h.source, "198.51.100.7");
  EXPECT_EQ(h.source_port, 56324);
  EXPECT_EQ(h.size, 28u);
  std::vector<std::uint8_t> v6(36, 0);
  v6[0] = 0x20, v6[1] = 0x01, v6[2] = 0x0d, v6[3] = 0xb8, v6[15] = 7;
  h = parse(v2(0x21, 0x21, v6));
  ASSERT_EQ(h.status, ProxyHeader::Status::done);
  EXPECT_EQ(h.source, "2001:db8::7");
  h = parse(v2(0x20, 0x00, {}));  // LOCAL: a health check from the proxy itself
  ASSERT_EQ(h.status, ProxyHeader::Status::done);
  EXPECT_TRUE(h.local);
  const std::string whole = v2(0x21, 0x11, v4);
  for (std::size_t n = 0; n < whole.size(); ++n)
    EXPECT_EQ(parse(whole.substr(0, n)).status, ProxyHeader::Status::need_more) << n;
  EXPECT_EQ(parse(v2(0x31, 0x11, v4)).status, ProxyHeader::Status::invalid);   // version 3
  EXPECT_EQ(parse(v2(0x22, 0x11, v4)).status, ProxyHeader::Status::invalid);   // command 2
  EXPECT_EQ(parse(v2(0x21, 0x11, {1, 2, 3})).status, ProxyHeader::Status::invalid);  // short addresses
  EXPECT_EQ(parse(v2(0x21, 0x11, std::vector<std::uint8_t>(600, 0))).status, ProxyHeader::Status::invalid);
}

}  // namespace
}  // namespace weir::net
