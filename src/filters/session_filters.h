#pragma once
// A session's filter instances, made from its route's Chain, and the
// resumable handshake run over them.

#include <functional>
#include <memory>
#include <string_view>
#include <utility>
#include <vector>

#include "filters/api.h"

namespace weir::filters {

struct PendingRun {
  SessionFilters* owner;  // null once the session died (or the run ended)
  std::size_t index;      // the filter that answered pending
};

class SessionFilters {
 public:
  SessionFilters() = default;
  // cells: the session's worker's metric cells (null: filters count nothing).
  explicit SessionFilters(const Chain& chain, obs::Cell* cells = nullptr);
  ~SessionFilters();
  SessionFilters(const SessionFilters&) = delete;
  SessionFilters& operator=(const SessionFilters&) = delete;

  using Done = std::function<void(HandshakeVerdict)>;
  // Runs every handshake hook in order until one refuses. Returns the
  // verdict (proceed or refuse), or pending: `done` then runs once with the
  // final verdict, later, from the resuming filter's call, unless cancel()
  // (or the destructor) ran first. ctx must live until then.
  HandshakeVerdict run_handshake(HandshakeContext& ctx, Done done);
  // The session is going: a pending run never completes and drops `done`.
  void cancel();
  bool waiting() const { return waiting_; }

  // Every frame hook in order: close or drop from the first filter that says
  // so; pause until the latest time any filter asks.
  FrameVerdict on_frame_header(Direction d, const ws::FrameHeader& h, std::int64_t now_ms);
  MessageVerdict on_message(Direction d, Message& m);

  bool frames() const { return (hooks_ & kFrames) != 0; }
  bool messages() const { return (hooks_ & kMessages) != 0; }
  bool for_life() const { return (hooks_ & (kFrames | kMessages | kSession)) != 0; }
  // The filter behind the last refusal, close or drop ("" when none).
  std::string_view decided_by() const { return decided_by_; }
  // The latest deadline a consumed message set (an in-band token refresh),
  // then 0 until the next: the session reads it when its deadline falls due.
  std::int64_t take_deadline() { return std::exchange(deadline_ms_, 0); }

 private:
  friend class Resume;
  HandshakeVerdict run_from(std::size_t index);
  HandshakeVerdict settle(std::size_t index, HandshakeVerdict v);
  void resume(std::size_t index, HandshakeVerdict v);

  struct Entry {
    const Filter* filter;
    std::unique_ptr<Instance> instance;
    unsigned hooks;  // filter->hooks(), read once: the frame loop runs per frame
  };
  std::vector<Entry> entries_;
  unsigned hooks_ = 0;
  std::int64_t deadline_ms_ = 0;
  HandshakeContext* ctx_ = nullptr;
  Done done_;
  std::shared_ptr<PendingRun> run_;   // the hook that runs or waits (owner null: none)
  bool waiting_ = false;              // a hook answered pending and has not resumed
  std::string_view decided_by_;
  bool in_hook_ = false;              // a handshake hook is running
  std::unique_ptr<HandshakeVerdict> early_;  // resumed from inside that hook
};

}  // namespace weir::filters
