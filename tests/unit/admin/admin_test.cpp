#include <gtest/gtest.h>

#include "admin/admin_api.h"
#include "admin/dashboard_assets.h"
#include "admin/http_server.h"
#include "config/config.h"

namespace weir::admin {
namespace {

TEST(Admin, QueryParametersAreFoundAndDecoded) {
  EXPECT_EQ(query_param("offset=10&limit=5", "limit"), "5");
  EXPECT_EQ(query_param("offset=10&limit=5", "offset"), "10");
  EXPECT_EQ(query_param("a=x%20y+z&b", "a"), "x y z");
  EXPECT_EQ(query_param("a=%zz", "a"), "%zz");
  EXPECT_EQ(query_param("limitx=1", "limit"), "");
  EXPECT_EQ(query_param("", "limit"), "");
}

TEST(Admin, DashboardFilesAreCompiledIn) {
  for (const char* p : {"/", "/index.html", "/dashboard.js", "/dashboard.css"}) {
    const Asset* a = find_asset(p);
    ASSERT_NE(a, nullptr) << p;
    EXPECT_FALSE(a->body.empty()) << p;
  }
  EXPECT_NE(find_asset("/")->body.find("<html"), std::string_view::npos);
  EXPECT_EQ(find_asset("/../etc/passwd"), nullptr);
}

TEST(Admin, ConfigJsonRedactsTheToken) {
  const auto cfg = config::load_string(
      "listeners: [{address: 127.0.0.1, port: 0}]\n"
      "admin: {port: 0, token: very-secret-token-123}\n"
      "routes: [{name: r, upstreams: [echo]}]\n",
      "t.yaml");
  const std::string json = config_json(cfg);
  EXPECT_EQ(json.find("very-secret-token-123"), std::string::npos) << json;
  EXPECT_NE(json.find("\"token\":\"<redacted>\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"name\":\"r\""), std::string::npos) << json;
}

TEST(Admin, ConfigRefusesAnOpenAdminWithoutToken) {
  try {
    config::load_string(
        "listeners: [{address: 127.0.0.1, port: 0}]\n"
        "admin: {address: 0.0.0.0}\n"
        "routes: [{upstreams: [echo]}]\n",
        "t.yaml");
    FAIL() << "accepted";
  } catch (const config::ConfigError& e) {
    EXPECT_EQ(e.line, 2);
    EXPECT_NE(e.message.find("not a loopback address"), std::string::npos) << e.what();
  }
  const auto off = config::load_string(
      "listeners: [{address: 127.0.0.1, port: 0}]\nadmin: off\nroutes: [{upstreams: [echo]}]\n", "t.yaml");
  EXPECT_FALSE(off.admin.enabled);
}

}  // namespace
}  // namespace weir::admin
