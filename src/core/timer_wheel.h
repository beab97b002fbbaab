#pragma once
// Coarse per-worker timers for sessions: a hashed timing wheel of intrusive
// entries. Scheduling, moving and cancelling an entry are O(1) and allocate
// nothing, and a session carries no timer object of its own (an Asio timer is
// 120 bytes per connection plus a pending operation, and re-programs the
// kernel timer whenever it becomes the earliest). Deadlines are in
// milliseconds of core::coarse_now_ms() and fire once their tick has ended
// (up to kTickMs late).
// The wheel is pure bookkeeping: the worker's loop (ReadyPoller) drives it
// (advance), woken by one timerfd. Worker thread only.

#include <cstddef>
#include <cstdint>

namespace weir::core {

class TimerWheel;

struct TimerLink {
  TimerLink* prev = nullptr;
  TimerLink* next = nullptr;
};

class TimerTarget : private TimerLink {
 public:
  // Called once when the deadline has passed; the entry is no longer
  // scheduled (it may schedule itself again).
  virtual void on_due(std::int64_t now_ms) = 0;
  bool scheduled() const { return prev != nullptr; }
  std::int64_t due_ms() const { return due_ms_; }

 protected:
  TimerTarget() = default;
  ~TimerTarget() = default;
  TimerTarget(const TimerTarget&) = delete;
  TimerTarget& operator=(const TimerTarget&) = delete;

 private:
  friend class TimerWheel;
  std::int64_t due_ms_ = 0;
};

class TimerWheel {
 public:
  static constexpr std::int64_t kTickMs = 8;
  static constexpr std::size_t kSlots = 1024;  // one turn: 8.2 s

  explicit TimerWheel(std::int64_t now_ms);
  TimerWheel(const TimerWheel&) = delete;
  TimerWheel& operator=(const TimerWheel&) = delete;

  // (Re)schedules t for due_ms; replaces an earlier schedule.
  void schedule(TimerTarget* t, std::int64_t due_ms);
  void cancel(TimerTarget* t);
  std::size_t size() const { return size_; }

  // Fires every entry due at or before now_ms.
  void advance(std::int64_t now_ms);
  // When advance() should next run: the end of the next tick that has an
  // entry in its slot (which may belong to a later turn), or -1 when empty.
  std::int64_t next_wakeup_ms() const;

 private:
  static std::int64_t tick_of(std::int64_t ms) { return ms / kTickMs; }
  TimerLink& slot(std::int64_t tick) { return slots_[static_cast<std::size_t>(tick) % kSlots]; }
  static void unlink(TimerLink* l);
  static void push(TimerLink& head, TimerLink* l);

  TimerLink slots_[kSlots];  // circular lists with sentinel heads
  std::int64_t tick_;        // next tick to process
  std::size_t size_ = 0;
};

}  // namespace weir::core
