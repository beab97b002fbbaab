// core::Edges: an edge that comes while nobody waits is kept for the next
// wait; an armed wait is ended only by the edge it names (TLS may need the
// other one); begin_io() uses edges up.

#include <gtest/gtest.h>
#include <sys/epoll.h>

#include "core/edges.h"

namespace weir::core {
namespace {

TEST(Edges, AnEdgeBeforeTheWaitIsUsedByIt) {
  Edges e;
  EXPECT_TRUE(e.note(EPOLLIN));
  EXPECT_TRUE(e.arm_read());   // came already: try again now, nothing armed
  EXPECT_FALSE(e.read_armed);
  EXPECT_FALSE(e.rx);          // used up
  EXPECT_FALSE(e.arm_read());  // no edge since: armed
  EXPECT_TRUE(e.read_armed);
  EXPECT_FALSE(e.arm_read());  // already armed: nothing changes
  EXPECT_FALSE(e.due().read);
  e.note(EPOLLIN);
  EXPECT_TRUE(e.due().read);
  EXPECT_FALSE(e.due().write);
}

TEST(Edges, WaitsEndOnTheEdgeTheyName) {
  Edges e;
  e.read_wants_write = true;   // a TLS read that must write first
  EXPECT_FALSE(e.arm_read());
  EXPECT_FALSE(e.note(EPOLLOUT));  // writable only
  EXPECT_TRUE(e.due().read);
  e.reset();
  e.write_wants_read = true;   // a TLS write that must read first
  EXPECT_FALSE(e.arm_write());
  e.note(EPOLLOUT);
  EXPECT_FALSE(e.due().write);
  e.note(EPOLLIN);
  EXPECT_TRUE(e.due().write);
}

TEST(Edges, TakeUsesUpOnlyTheEdgeAsked) {
  Edges e;
  EXPECT_FALSE(e.take(false));
  e.note(EPOLLIN | EPOLLOUT);
  EXPECT_TRUE(e.take(true));
  EXPECT_FALSE(e.take(true));   // used up
  EXPECT_TRUE(e.rx);            // the other one stays
  EXPECT_TRUE(e.take(false));
}

TEST(Edges, HangupsAndErrorsWakeBothWaysAndBeginIoUsesEdgesUp) {
  Edges e;
  EXPECT_TRUE(e.note(EPOLLHUP));
  EXPECT_TRUE(e.rx && e.tx);
  e.begin_io();
  EXPECT_FALSE(e.rx || e.tx);
  EXPECT_TRUE(e.note(EPOLLERR));
  EXPECT_TRUE(e.note(EPOLLRDHUP));
  EXPECT_FALSE(e.note(0));
}

}  // namespace
}  // namespace weir::core
