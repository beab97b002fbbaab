#include "observability/metrics.h"

#include <gtest/gtest.h>

#include <set>
#include <thread>

namespace weir::obs {
namespace {

constexpr std::uint64_t kBounds[] = {10, 100};
const HistogramSpec kSpec{kBounds, 1000};  // unit: ms, exported in seconds

TEST(Metrics, SameNameAndLabelsIsTheSameSeriesAndSlotsAreSummed) {
  Registry r;
  const auto a = r.counter("t_requests_total", "Requests", {{"route", "a"}});
  const auto a2 = r.counter("t_requests_total", "ignored", {{"route", "a"}});
  const auto b = r.counter("t_requests_total", "Requests", {{"route", "b"}});
  EXPECT_EQ(a.at, a2.at);
  EXPECT_NE(a.at, b.at);
  std::thread t([&] { r.slot(1)[a.at].add(5); });
  r.slot(0)[a.at].add(2);
  t.join();
  r.slot(0)[b.at].add();
  EXPECT_EQ(r.value(a), 7u);
  EXPECT_EQ(r.value(b), 1u);
  EXPECT_EQ(r.render(),
            "# HELP t_requests_total Requests\n# TYPE t_requests_total counter\n"
            "t_requests_total{route=\"a\"} 7\nt_requests_total{route=\"b\"} 1\n");
}

TEST(Metrics, GaugesGoDownAcrossSlots) {
  Registry r;
  const auto g = r.gauge("t_active", "Active");
  r.slot(0)[g.at].add(3);
  r.slot(1)[g.at].sub(5);  // a session that moved its count down on another worker
  EXPECT_EQ(r.value(g), -2);
  EXPECT_NE(r.render().find("t_active -2\n"), std::string::npos);
}

TEST(Metrics, HistogramIsCumulativeWithSumAndCountInTheExportedUnit) {
  Registry r;
  const auto h = r.histogram("t_latency_seconds", "Latency", kSpec, {{"route", "x"}});
  observe(r.slot(0), h, 5);
  observe(r.slot(0), h, 10);   // on the bound: le="0.01"
  observe(r.slot(2), h, 50);
  observe(r.slot(2), h, 5000);  // +Inf only
  const std::string text = r.render();
  EXPECT_NE(text.find("# TYPE t_latency_seconds histogram\n"), std::string::npos);
  EXPECT_NE(text.find("t_latency_seconds_bucket{route=\"x\",le=\"0.01\"} 2\n"), std::string::npos) << text;
  EXPECT_NE(text.find("t_latency_seconds_bucket{route=\"x\",le=\"0.1\"} 3\n"), std::string::npos) << text;
  EXPECT_NE(text.find("t_latency_seconds_bucket{route=\"x\",le=\"+Inf\"} 4\n"), std::string::npos) << text;
  EXPECT_NE(text.find("t_latency_seconds_sum{route=\"x\"} 5.065\n"), std::string::npos) << text;
  EXPECT_NE(text.find("t_latency_seconds_count{route=\"x\"} 4\n"), std::string::npos) << text;
}

TEST(Metrics, LabelValuesAreEscaped) {
  Registry r;
  const auto c = r.counter("t_total", "T", {{"path", "a\"b\\c\nd"}});
  r.slot(0)[c.at].add();
  EXPECT_NE(r.render().find("t_total{path=\"a\\\"b\\\\c\\nd\"} 1\n"), std::string::npos);
}

TEST(Metrics, CollectorsAreGroupedByFamilyAndCanBeRemoved) {
  Registry r;
  const auto id = r.add_collector([](std::vector<Registry::Sample>& out) {
    out.push_back({"t_pool", "Pool", "gauge", {{"state", "in_use"}}, 2});
    out.push_back({"t_up", "Up", "gauge", {}, 1});
    out.push_back({"t_pool", "Pool", "gauge", {{"state", "cached"}}, 0.5});
  });
  EXPECT_EQ(r.render(),
            "# HELP t_pool Pool\n# TYPE t_pool gauge\nt_pool{state=\"in_use\"} 2\nt_pool{state=\"cached\"} 0.5\n"
            "# HELP t_up Up\n# TYPE t_up gauge\nt_up 1\n");
  r.remove_collector(id);
  EXPECT_EQ(r.render(), "");
}

TEST(Metrics, AFamilyListsItsSeriesWithSums) {
  Registry r;
  const auto a = r.counter("t_msgs_total", "M", {{"dir", "in"}});
  r.slot(3)[a.at].add(4);
  const auto fam = r.family("t_msgs_total");
  ASSERT_EQ(fam.size(), 1u);
  EXPECT_EQ(fam[0].first, (Labels{{"dir", "in"}}));
  EXPECT_EQ(fam[0].second, 4.0);
  EXPECT_TRUE(r.family("t_none").empty());
}

}  // namespace
}  // namespace weir::obs

#include "proxy/route_metrics.h"

namespace weir::proxy {
namespace {

TEST(RouteMetrics, PeerChosenCloseCodesCannotMintSeriesWithoutBound) {
  EXPECT_EQ(close_code_label(0), "none");
  EXPECT_EQ(close_code_label(1000), "1000");
  EXPECT_EQ(close_code_label(1011), "1011");
  EXPECT_EQ(close_code_label(2000), "other");
  std::set<std::string> labels;
  for (std::uint16_t c = 4000; c < 4200; ++c) labels.insert(close_code_label(c));
  // At most 64 application codes keep their own label (some may have been
  // admitted by other tests of this process), the rest share "4xxx".
  EXPECT_LE(labels.size(), 65u);
  EXPECT_TRUE(labels.count("4xxx"));
  EXPECT_EQ(close_code_label(4000), close_code_label(4000));  // stable
}

}  // namespace
}  // namespace weir::proxy
