// Groups with resolve_interval: which names are watched, how a resolved name
// becomes one member per address (config::with_addresses), and the config's
// errors for resolve_interval and the top-level resolver. The lookups
// themselves run against a real DNS server in
// tests/integration/test_dns_members.py.

#include <gtest/gtest.h>

#include "../config/error_of.h"
#include "config/config.h"

namespace weir::config {
namespace {

using testing::error_of;

constexpr const char* kConfig = R"(listeners: [{port: 1}]
resolver: {nameservers: ["127.0.0.1:5353", "[::1]:53"], timeout: 500ms}
upstream_groups:
  - name: pods
    members: [pods.svc:9000, 10.0.0.9:9000, {address: "wss://other.svc:443", weight: 3}]
    resolve_interval: 5s
  - name: fixed
    members: [fixed.svc:9000]
routes:
  - {name: a, match: {path: /a}, upstream_group: pods}
  - {name: b, match: {path: /b}, upstream_group: fixed}
)";

TEST(DnsMembers, NamesOfResolvingGroupsOnly) {
  const auto c = load_string(kConfig, "t.yaml");
  EXPECT_EQ(c.resolver.nameservers, (std::vector<std::string>{"127.0.0.1:5353", "[::1]:53"}));
  EXPECT_EQ(c.resolver.timeout.count(), 500);
  const auto n = names_to_resolve(c);
  ASSERT_EQ(n.size(), 2u);  // not the address literal, not the group without resolve_interval
  EXPECT_EQ(n.at("pods.svc").count(), 5000);
  EXPECT_EQ(n.at("other.svc").count(), 5000);
}

TEST(DnsMembers, EachAddressBecomesAMemberWithTheSameSettings) {
  const auto c = std::make_shared<const Config>(load_string(kConfig, "t.yaml"));
  EXPECT_EQ(with_addresses(c, {}), c);  // nothing resolved: the same config
  const auto x = with_addresses(c, {{"pods.svc", {"10.1.0.1", "10.1.0.2"}}, {"other.svc", {"fd00::5"}}});
  ASSERT_NE(x, c);
  const auto& g = *x->upstream_groups[0];
  ASSERT_EQ(g.members.size(), 4u);
  EXPECT_EQ(g.members[0].up.text, "pods.svc:9000@10.1.0.1");
  EXPECT_EQ(g.members[0].up.address, "10.1.0.1");
  EXPECT_EQ(g.members[0].up.host, "pods.svc");  // still the name, for TLS
  EXPECT_EQ(g.members[1].up.text, "pods.svc:9000@10.1.0.2");
  EXPECT_EQ(g.members[2].up.text, "10.0.0.9:9000");
  EXPECT_EQ(g.members[3].up.text, "wss://other.svc:443@fd00::5");
  EXPECT_TRUE(g.members[3].up.tls);
  EXPECT_EQ(g.members[3].weight, 3u);
  EXPECT_EQ(g.retries, 2u);  // not written: members - 1, at most 2, of the new count
  // The route follows its group; the other group and route are untouched.
  EXPECT_EQ(x->routes[0].group.get(), &g);
  ASSERT_EQ(x->routes[0].upstreams.size(), 4u);
  EXPECT_EQ(x->routes[0].upstreams[1].address, "10.1.0.2");
  EXPECT_EQ(x->upstream_groups[1], c->upstream_groups[1]);
  EXPECT_EQ(x->routes[1].group, c->routes[1].group);
  // The original is unchanged (it is what the next re-resolution expands again).
  EXPECT_EQ(c->upstream_groups[0]->members.size(), 3u);
}

TEST(DnsMembers, ConfigErrors) {
  const std::string head = "listeners: [{port: 1}]\n";
  const std::string group = "upstream_groups:\n  - name: g\n    members: [a.svc:1]\n";
  EXPECT_EQ(error_of(head + group + "    resolve_interval: 10ms\nroutes: [{upstream_group: g}]\n"),
            "t.yaml:5:23: 'resolve_interval' must be at least 100ms");
  EXPECT_EQ(error_of(head + "resolver: {nameservers: [dns.local:53]}\nroutes: [{upstreams: echo}]\n"),
            "t.yaml:2:26: each entry of 'resolver.nameservers' must be an address literal and port, e.g. "
            "10.0.0.2:53 or [fd00::2]:53, got 'dns.local:53'");
  EXPECT_EQ(error_of(head + "resolver: {servers: [1.1.1.1:53]}\nroutes: [{upstreams: echo}]\n"),
            "t.yaml:2:12: unknown key 'servers' in resolver");
}

}  // namespace
}  // namespace weir::config
