#include "net/cidr.h"

#include <gtest/gtest.h>

#include "config/config.h"
#include "filters/ip_policy/ip_policy.h"

namespace weir::net {
namespace {

bool in(const char* block, const char* ip) {
  const auto c = parse_cidr(block);
  const auto a = parse_ip(ip);
  EXPECT_TRUE(c) << block;
  EXPECT_TRUE(a) << ip;
  return c && a && c->contains(*a);
}

TEST(Cidr, MatchesIpv4Ipv6AndMappedAddresses) {
  EXPECT_TRUE(in("10.0.0.0/8", "10.255.1.2"));
  EXPECT_FALSE(in("10.0.0.0/8", "11.0.0.1"));
  EXPECT_TRUE(in("192.168.1.128/25", "192.168.1.200"));
  EXPECT_FALSE(in("192.168.1.128/25", "192.168.1.127"));
  EXPECT_TRUE(in("2001:db8::/32", "2001:db8:ffff::1"));
  EXPECT_FALSE(in("2001:db8::/32", "2001:db9::1"));
  EXPECT_TRUE(in("10.0.0.0/8", "::ffff:10.1.2.3"));   // a dual-stack socket's view of 10.1.2.3
  EXPECT_TRUE(in("::/0", "::ffff:10.1.2.3"));
  EXPECT_TRUE(in("127.0.0.1", "127.0.0.1"));
  EXPECT_FALSE(in("127.0.0.1", "127.0.0.2"));
  EXPECT_TRUE(in("all", "2001:db8::1"));
  EXPECT_TRUE(in("0.0.0.0/0", "8.8.8.8"));
  EXPECT_FALSE(in("0.0.0.0/0", "2001:db8::1"));  // every IPv4 address, not every address
}

TEST(Cidr, RefusesBadBlocksSayingWhy) {
  std::string why;
  EXPECT_FALSE(parse_cidr("10.0.0.1/8", &why));
  EXPECT_NE(why.find("host bits"), std::string::npos);
  EXPECT_FALSE(parse_cidr("10.0.0.0/33", &why));
  EXPECT_NE(why.find("0-32"), std::string::npos);
  EXPECT_FALSE(parse_cidr("::/129", &why));
  EXPECT_FALSE(parse_cidr("10.0.0.0/", &why));
  EXPECT_FALSE(parse_cidr("example.com", &why));
  EXPECT_FALSE(parse_cidr("", &why));
  EXPECT_FALSE(parse_ip("1.2.3.4:80"));
  EXPECT_FALSE(parse_ip("[::1]"));
}

TEST(Cidr, ForwardedForIsBelievedOnlyFromTrustedPeers) {
  const std::vector<Cidr> trusted{*parse_cidr("10.0.0.0/8")};
  // An untrusted peer: its header changes nothing.
  EXPECT_EQ(client_from_forwarded("203.0.113.9", trusted, {"1.2.3.4"}), "203.0.113.9");
  // A trusted peer: the last hop it added.
  EXPECT_EQ(client_from_forwarded("10.0.0.2", trusted, {"198.51.100.7"}), "198.51.100.7");
  // Trusted hops are skipped from the right; what the client wrote (left) is not believed.
  EXPECT_EQ(client_from_forwarded("10.0.0.2", trusted, {"6.6.6.6, 198.51.100.7, 10.0.0.9"}), "198.51.100.7");
  // Several fields are one list, in order.
  EXPECT_EQ(client_from_forwarded("10.0.0.2", trusted, {"6.6.6.6", "198.51.100.7"}), "198.51.100.7");
  // Ports and brackets as some proxies write them.
  EXPECT_EQ(client_from_forwarded("10.0.0.2", trusted, {"[2001:db8::5]:443"}), "2001:db8::5");
  EXPECT_EQ(client_from_forwarded("10.0.0.2", trusted, {"198.51.100.7:5555"}), "198.51.100.7");
  // Garbage: the walk stops at the last good address.
  EXPECT_EQ(client_from_forwarded("10.0.0.2", trusted, {"junk, 10.0.0.3"}), "10.0.0.3");
  EXPECT_EQ(client_from_forwarded("10.0.0.2", trusted, {}), "10.0.0.2");
}

TEST(IpPolicy, FirstMatchWinsAndTheDefaultFollowsTheRules) {
  using filters::IpPolicyFilter;
  auto rule = [](bool allow, const char* b) { return IpPolicyFilter::Rule{allow, *parse_cidr(b)}; };
  const IpPolicyFilter p({rule(false, "10.1.2.3"), rule(true, "10.0.0.0/8")});
  EXPECT_FALSE(p.allows("10.1.2.3"));
  EXPECT_TRUE(p.allows("10.1.2.4"));
  EXPECT_FALSE(p.allows("11.0.0.1"));  // an allow list: the rest is denied
  EXPECT_FALSE(p.allows("not an ip"));
  const IpPolicyFilter deny_only({rule(false, "192.0.2.0/24")});
  EXPECT_FALSE(deny_only.allows("192.0.2.55"));
  EXPECT_TRUE(deny_only.allows("198.51.100.1"));  // a deny list: the rest is allowed
}

TEST(IpPolicy, ConfigErrorsSayWhere) {
  try {
    config::load_string(
        "listeners: [{address: 127.0.0.1, port: 0}]\n"
        "routes:\n"
        "  - upstreams: [echo]\n"
        "    ip_policy: [{allow: 10.0.0.1/8}]\n",
        "t.yaml");
    FAIL() << "accepted";
  } catch (const config::ConfigError& e) {
    EXPECT_EQ(e.line, 4) << e.what();
    EXPECT_NE(e.message.find("host bits"), std::string::npos) << e.what();
  }
  try {
    config::load_string("listeners: [{address: 127.0.0.1, port: 0}]\ntrusted_proxies: [10.0.0.0/40]\n"
                        "routes: [{upstreams: [echo]}]\n",
                        "t.yaml");
    FAIL() << "accepted";
  } catch (const config::ConfigError& e) {
    EXPECT_EQ(e.line, 2) << e.what();
  }
  const auto ok = config::load_string(
      "listeners: [{address: 127.0.0.1, port: 0}]\ntrusted_proxies: [10.0.0.0/8, '::1']\n"
      "routes: [{upstreams: [echo], ip_policy: {deny: [192.0.2.0/24], allow: [all]}}]\n",
      "t.yaml");
  EXPECT_EQ(ok.trusted_proxies.size(), 2u);
}

}  // namespace
}  // namespace weir::net
