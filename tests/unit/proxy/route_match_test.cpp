#include "proxy/route_match.h"

#include "filters/origin/origin_filter.h"

#include <gtest/gtest.h>

namespace weir::proxy {
namespace {

config::Route route(std::string name, std::string host, std::string path, bool prefix) {
  config::Route r;
  r.name = std::move(name);
  r.match.host = std::move(host);
  r.match.path = std::move(path);
  r.match.path_prefix = prefix;
  r.upstreams.push_back(*config::parse_upstream("echo"));
  return r;
}

http::Head head(const std::string& raw) {
  http::Head h;
  EXPECT_EQ(http::parse_request_head(raw, 8192, h), http::ParseStatus::complete);
  return h;
}

TEST(RouteMatch, FirstMatchingRouteWins) {
  config::Config cfg;
  cfg.routes.push_back(route("exact", "", "/chat", false));
  cfg.routes.push_back(route("wild", "*.example.com", "/", true));
  cfg.routes.push_back(route("api", "", "/api/", true));
  auto h = [](std::string target, std::string host) {
    return "GET " + target + " HTTP/1.1\r\nHost: " + host + "\r\n\r\n";
  };
  std::string r1 = h("/chat?room=1", "a.test"), r2 = h("/chat/x", "b.example.com:8080"),
              r3 = h("/api/v1", "other"), r4 = h("/nothing", "example.com");
  EXPECT_EQ(match_route(cfg, head(r1)), 0u);
  EXPECT_EQ(match_route(cfg, head(r2)), 1u);
  EXPECT_EQ(match_route(cfg, head(r3)), 2u);
  EXPECT_FALSE(match_route(cfg, head(r4)).has_value());  // wildcard needs a label before the suffix
}

TEST(RouteMatch, HeaderConditions) {
  config::Config cfg;
  auto r = route("blue", "", "/", true);
  r.match.headers.push_back({"x-tenant", "blue"});
  cfg.routes.push_back(r);
  std::string yes = "GET / HTTP/1.1\r\nHost: h\r\nX-Tenant: blue\r\n\r\n";
  std::string no = "GET / HTTP/1.1\r\nHost: h\r\nX-Tenant: red\r\n\r\n";
  EXPECT_EQ(match_route(cfg, head(yes)), 0u);
  EXPECT_FALSE(match_route(cfg, head(no)).has_value());
}

TEST(RouteMatch, HostsAndOrigins) {
  // Routes without an origin list get no origin filter at all.
  config::Config cfg;
  cfg.routes.push_back(route("any", "", "/", true));
  auto with = route("some", "", "/x", false);
  auto origin = std::make_shared<filters::OriginFilter>(std::vector<std::string>{"https://ok.example"});
  origin->key = "origins";
  with.filters.push_back(origin);
  cfg.routes.push_back(with);
  EXPECT_TRUE(filters::Chain(cfg.routes[0].filters).empty());
  const filters::Chain chain(cfg.routes[1].filters);
  EXPECT_EQ(chain.filters().size(), 1u);
  EXPECT_EQ(chain.hooks(), unsigned{filters::kHandshake});
  EXPECT_FALSE(chain.needs_payload());

  EXPECT_TRUE(host_matches("Chat.Example.com", "chat.example.COM:443"));
  EXPECT_TRUE(host_matches("", "anything"));
  EXPECT_FALSE(host_matches("*.example.com", "example.com"));
  EXPECT_TRUE(host_matches("*.example.com", "a.b.example.com"));
  filters::OriginFilter f({"https://ok.example"});
  EXPECT_TRUE(f.allows("https://OK.example"));
  EXPECT_FALSE(f.allows("https://evil.example"));
  EXPECT_FALSE(f.allows(""));
  EXPECT_TRUE(filters::OriginFilter({"*"}).allows(""));
}

}  // namespace
}  // namespace weir::proxy
