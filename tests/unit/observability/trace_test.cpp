#include "observability/trace.h"

#include <gtest/gtest.h>

namespace weir::obs {
namespace {

TEST(Trace, ParsesAValidTraceparent) {
  const auto p = parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->trace.hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(p->flags, 1);
}

TEST(Trace, RefusesInvalidOnes) {
  for (const char* bad : {
           "",
           "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",     // no flags
           "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  // upper case
           "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  // zero trace id
           "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  // zero parent id
           "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  // version ff
           "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",  // v00 has 4 fields
           "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
           "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
       }) {
    EXPECT_FALSE(parse_traceparent(bad)) << bad;
  }
}

TEST(Trace, ALaterVersionIsReadByItsFirstFields) {
  const auto p = parse_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-whatever");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->flags, 0);
}

TEST(Trace, ForwardedTraceparentKeepsTheTraceWithANewSpan) {
  TraceParent p{new_trace_id(), 1};
  EXPECT_FALSE(p.trace.empty());
  const std::string a = make_traceparent(p), b = make_traceparent(p);
  const auto pa = parse_traceparent(a);
  ASSERT_TRUE(pa) << a;
  EXPECT_EQ(pa->trace.hex(), p.trace.hex());
  EXPECT_EQ(pa->flags, 1);
  EXPECT_NE(a.substr(36, 16), b.substr(36, 16));  // each hop gets its own span id
  EXPECT_NE(new_trace_id().hex(), new_trace_id().hex());
}

}  // namespace
}  // namespace weir::obs
