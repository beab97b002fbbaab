#include "core/timer_wheel.h"

#include <algorithm>

namespace weir::core {

TimerWheel::TimerWheel(std::int64_t now_ms) : tick_(tick_of(now_ms)) {
  for (auto& s : slots_) s.prev = s.next = &s;
}

void TimerWheel::unlink(TimerLink* l) {
  l->prev->next = l->next;
  l->next->prev = l->prev;
  l->prev = l->next = nullptr;
}

void TimerWheel::push(TimerLink& head, TimerLink* l) {
  l->prev = head.prev;
  l->next = &head;
  head.prev->next = l;
  head.prev = l;
}

void TimerWheel::schedule(TimerTarget* t, std::int64_t due_ms) {
  TimerLink* l = t;
  if (l->prev != nullptr) unlink(l);
  else ++size_;
  t->due_ms_ = due_ms;
  // A deadline already past goes into the next slot to be processed.
  push(slot(std::max(tick_of(due_ms), tick_)), l);
}

void TimerWheel::cancel(TimerTarget* t) {
  TimerLink* l = t;
  if (l->prev == nullptr) return;
  unlink(l);
  --size_;
}

void TimerWheel::advance(std::int64_t now_ms) {
  // Only whole ticks that have ended: every entry of such a tick is due.
  const std::int64_t last = tick_of(now_ms) - 1;
  // After a long stall every slot is visited once, not once per missed tick.
  std::int64_t from = std::max(tick_, last - static_cast<std::int64_t>(kSlots) + 1);
  for (std::int64_t tick = from; tick <= last; ++tick) {
    TimerLink& head = slot(tick);
    if (head.next == &head) continue;
    // Detach the slot: entries that fire may schedule again, into this very
    // slot; those wait for its next turn.
    TimerLink pending;
    pending.next = head.next;
    pending.prev = head.prev;
    pending.next->prev = &pending;
    pending.prev->next = &pending;
    head.prev = head.next = &head;
    while (pending.next != &pending) {
      TimerLink* l = pending.next;
      auto* t = static_cast<TimerTarget*>(l);
      unlink(l);
      if (t->due_ms_ <= now_ms) {
        --size_;
        try {
          t->on_due(now_ms);  // may cancel or schedule any entry, pending ones included
        } catch (...) {
          // The rest of the slot goes back (the stack list must not outlive
          // this frame); they fire at the next advance.
          while (pending.next != &pending) {
            TimerLink* rest = pending.next;
            unlink(rest);
            push(head, rest);
          }
          tick_ = std::max(tick_, tick);
          throw;
        }
      } else {
        push(head, l);  // a later turn of the wheel
      }
    }
  }
  tick_ = std::max(tick_, last + 1);
}

std::int64_t TimerWheel::next_wakeup_ms() const {
  if (size_ == 0) return -1;
  for (std::size_t i = 0; i < kSlots; ++i) {
    const std::int64_t tick = tick_ + static_cast<std::int64_t>(i);
    const TimerLink& head = slots_[static_cast<std::size_t>(tick) % kSlots];
    if (head.next != &head) return (tick + 1) * kTickMs;  // when that tick has ended
  }
  return (tick_ + 1) * kTickMs;  // unreachable while size_ > 0
}

}  // namespace weir::core
