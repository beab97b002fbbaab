// The `compression` section (permessage-deflate on inspecting routes): top
// level defaults, a route's partial override, and file:line:col errors.
#include <gtest/gtest.h>

#include <string>

#include "config/config.h"
#include "error_of.h"

namespace weir::config {
namespace {

using testing::error_of;

constexpr const char* kHead = "listeners:\n  - port: 8080\n";

TEST(ConfigCompression, DefaultsTopLevelAndRouteOverride) {
  Config c = load_string(std::string(kHead) + "routes:\n  - upstreams: echo\n", "t");
  EXPECT_EQ(c.routes[0].compression, ws::DeflateSettings{});
  c = load_string(std::string(kHead) +
                      "compression:\n"
                      "  window_bits: 10\n"
                      "  memory_level: 4\n"
                      "routes:\n"
                      "  - upstreams: echo\n"
                      "    compression: {context_takeover: false, peer_window_bits: 11, level: 1}\n"
                      "  - upstreams: echo\n"
                      "    match: {path: /b}\n"
                      "    compression: {enabled: false}\n",
                  "t");
  const ws::DeflateSettings& a = c.routes[0].compression;
  EXPECT_TRUE(a.enabled);
  EXPECT_EQ(a.window_bits, 10);
  EXPECT_EQ(a.memory_level, 4);
  EXPECT_EQ(a.peer_window_bits, 11);
  EXPECT_EQ(a.level, 1);
  EXPECT_FALSE(a.context_takeover);
  EXPECT_FALSE(c.routes[1].compression.enabled);
  EXPECT_EQ(c.routes[1].compression.window_bits, 10);
}

TEST(ConfigCompression, BadValuesNameTheirPlace) {
  const std::string top = std::string(kHead) + "routes:\n  - upstreams: echo\n";
  EXPECT_EQ(error_of(top + "compression:\n  window_bits: 8\n"),
            "t.yaml:6:16: 'compression.window_bits' must be an integer 9-15 (zlib cannot compress with an 8-bit window), got '8'");
  EXPECT_EQ(error_of(top + "compression:\n  peer_window_bits: 16\n"),
            "t.yaml:6:21: 'compression.peer_window_bits' must be an integer 9-15, got '16'");
  EXPECT_EQ(error_of(top + "compression:\n  memory_level: 0\n"),
            "t.yaml:6:17: 'compression.memory_level' must be an integer 1-9, got '0'");
  EXPECT_EQ(error_of(top + "compression:\n  level: high\n"), "t.yaml:6:10: 'compression.level' must be an integer 1-9, got 'high'");
  EXPECT_EQ(error_of(top + "compression:\n  context_takeover: maybe\n"),
            "t.yaml:6:21: 'compression.context_takeover' must be true or false, got 'maybe'");
  EXPECT_NE(error_of(top + "compression:\n  server_max_window_bits: 10\n").find("t.yaml:6:3:"), std::string::npos)
      << error_of(top + "compression:\n  server_max_window_bits: 10\n");
  const std::string in_route =
      error_of(std::string(kHead) + "routes:\n  - upstreams: echo\n    compression: {window_bits: 99}\n");
  EXPECT_EQ(in_route.rfind("t.yaml:5:32: ", 0), 0u) << in_route;
  EXPECT_NE(in_route.find("window_bits' must be an integer 9-15"), std::string::npos) << in_route;
}

}  // namespace
}  // namespace weir::config
