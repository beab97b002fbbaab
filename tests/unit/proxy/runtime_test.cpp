#include "proxy/runtime.h"

#include <gtest/gtest.h>

namespace weir::proxy {
namespace {

std::shared_ptr<const Runtime> build(const std::string& listeners, const std::string& routes) {
  auto cfg = std::make_shared<const config::Config>(
      config::load_string("listeners:\n" + listeners + "routes:\n" + routes, "test.yaml"));
  return Runtime::build(cfg, 1);
}

const std::string kRoutes = "  - {name: a, upstreams: [echo]}\n";

// Several listeners may say port 0: they are told apart by their order among
// those with the same address:port, not confused with the first.
TEST(Runtime, ListenersWithTheSameAddressAndPortAreToldApartByOrder) {
  auto rt = build("  - {address: 127.0.0.1, port: 0}\n"
                  "  - {address: 127.0.0.1, port: 9001}\n"
                  "  - {address: 127.0.0.1, port: 0}\n",
                  kRoutes);
  EXPECT_EQ(rt->listener_index("127.0.0.1", 0, 0), 0u);
  EXPECT_EQ(rt->listener_index("127.0.0.1", 0, 1), 2u);
  EXPECT_EQ(rt->listener_index("127.0.0.1", 0, 2), Runtime::npos);
  EXPECT_EQ(rt->listener_index("127.0.0.1", 9001), 1u);
  EXPECT_EQ(rt->listener_index("127.0.0.2", 9001), Runtime::npos);
  EXPECT_EQ(rt->listener_nth(0), 0u);
  EXPECT_EQ(rt->listener_nth(1), 0u);
  EXPECT_EQ(rt->listener_nth(2), 1u);
}

TEST(Runtime, CompareNamesAddedRemovedAndChangedRoutesAndListeners) {
  auto before = build("  - {address: 127.0.0.1, port: 9001}\n  - {address: 127.0.0.1, port: 9002}\n",
                      "  - {name: a, upstreams: [echo]}\n  - {name: b, match: {path: /b}, upstreams: [echo]}\n");
  auto after = build("  - {address: 127.0.0.1, port: 9002}\n  - {address: '::1', port: 9003}\n",
                     "  - {name: a, upstreams: [echo], max_message: 1KiB}\n  - {name: c, match: {path: /c}, upstreams: [echo]}\n");
  const ReloadSummary d = compare(*before, *after);
  EXPECT_EQ(d.added, std::vector<std::string>{"c"});
  EXPECT_EQ(d.removed, std::vector<std::string>{"b"});
  EXPECT_EQ(d.changed, std::vector<std::string>{"a"});
  EXPECT_EQ(d.listeners_added, std::vector<std::string>{"[::1]:9003"});
  EXPECT_EQ(d.listeners_removed, std::vector<std::string>{"127.0.0.1:9001"});
  EXPECT_TRUE(d.listeners_changed.empty());
  const ReloadSummary same = compare(*after, *after);
  EXPECT_TRUE(same.added.empty() && same.removed.empty() && same.changed.empty());
  EXPECT_TRUE(same.listeners_added.empty() && same.listeners_removed.empty());
}

}  // namespace
}  // namespace weir::proxy
