#include "filters/session_filters.h"

#include <algorithm>

namespace weir::filters {

Chain::Chain(const std::vector<std::shared_ptr<const config::FilterSettings>>& settings) {
  for (const auto& s : settings) {
    // Every FilterSettings comes from a registered filter type's parser,
    // which builds a Filter (filters/registry.cpp).
    auto f = std::dynamic_pointer_cast<const Filter>(s);
    if (!f || f->hooks() == 0) continue;  // nothing to run (a filter configured off)
    hooks_ |= f->hooks();
    filters_.push_back(std::move(f));
  }
}

SessionFilters::SessionFilters(const Chain& chain, obs::Cell* cells) : hooks_(chain.hooks()) {
  entries_.reserve(chain.filters().size());
  for (const auto& f : chain.filters()) {
    entries_.push_back({f.get(), f->instantiate(), f->hooks()});
    entries_.back().instance->cells_ = cells;
  }
}

SessionFilters::~SessionFilters() { cancel(); }

void SessionFilters::cancel() {
  if (run_) run_->owner = nullptr;
  waiting_ = false;
  done_ = nullptr;
  ctx_ = nullptr;
}

HandshakeVerdict SessionFilters::run_handshake(HandshakeContext& ctx, Done done) {
  ctx_ = &ctx;
  done_ = std::move(done);
  return run_from(0);
}

HandshakeVerdict SessionFilters::run_from(std::size_t index) {
  for (std::size_t i = index; i < entries_.size(); ++i) {
    Entry& e = entries_[i];
    if ((e.hooks & kHandshake) == 0) continue;
    // One PendingRun serves every hook that kept no Resume: a synchronous
    // chain allocates once per session, not once per filter.
    if (!run_ || run_.use_count() > 1) run_ = std::make_shared<PendingRun>();
    *run_ = PendingRun{this, i};
    waiting_ = true;
    ctx_->resume = Resume(run_);
    in_hook_ = true;
    HandshakeVerdict v = e.instance->on_handshake(*ctx_);
    in_hook_ = false;
    ctx_->resume = Resume();
    if (v.kind == HandshakeVerdict::Kind::pending) {
      if (!early_) return v;  // run_ stays live for the resume
      v = std::move(*early_);  // it answered already, from inside the hook
    }
    early_.reset();  // (a hook that resumed and also returned a verdict: the return wins)
    v = settle(i, std::move(v));
    if (v.kind == HandshakeVerdict::Kind::refuse) return v;
  }
  return {};
}

// Filter i's answer is in: its Resume is dead from now on; a refusal names
// it, and a filter bug (no verdict, a 1xx-3xx status) becomes a 500.
HandshakeVerdict SessionFilters::settle(std::size_t i, HandshakeVerdict v) {
  run_->owner = nullptr;
  waiting_ = false;
  if (v.kind == HandshakeVerdict::Kind::pending) v = HandshakeVerdict::refuse(500, "filter resumed without a verdict");
  if (v.kind == HandshakeVerdict::Kind::refuse) {
    decided_by_ = entries_[i].filter->name();
    if (v.status < 400 || v.status > 599) v.status = 500;
  }
  return v;
}

void SessionFilters::resume(std::size_t index, HandshakeVerdict v) {
  v = settle(index, std::move(v));
  if (v.kind != HandshakeVerdict::Kind::refuse) {
    v = run_from(index + 1);
    if (v.kind == HandshakeVerdict::Kind::pending) return;  // another filter waits now
  }
  Done done = std::move(done_);
  done_ = nullptr;
  ctx_ = nullptr;
  if (done) done(std::move(v));
}

void Resume::operator()(HandshakeVerdict v) const {
  if (!alive()) return;
  SessionFilters* owner = run_->owner;
  if (owner->in_hook_) {
    run_->owner = nullptr;  // once
    owner->early_ = std::make_unique<HandshakeVerdict>(std::move(v));
    return;
  }
  owner->resume(run_->index, std::move(v));
}

bool Resume::alive() const { return run_ && run_->owner != nullptr; }

FrameVerdict SessionFilters::on_frame_header(Direction d, const ws::FrameHeader& h, std::int64_t now_ms) {
  FrameVerdict out;
  for (Entry& e : entries_) {
    if ((e.hooks & kFrames) == 0) continue;
    const FrameVerdict v = e.instance->on_frame_header(d, h, now_ms);
    switch (v.kind) {
      case FrameVerdict::Kind::forward:
        break;
      case FrameVerdict::Kind::pause:
        if (out.kind == FrameVerdict::Kind::forward || out.kind == FrameVerdict::Kind::pause) {
          out.kind = FrameVerdict::Kind::pause;
          out.until_ms = std::max(out.until_ms, v.until_ms);
        }
        break;
      case FrameVerdict::Kind::drop:
      case FrameVerdict::Kind::close:
        decided_by_ = e.filter->name();
        return v;
    }
  }
  return out;
}

MessageVerdict SessionFilters::on_message(Direction d, Message& m) {
  MessageVerdict out;
  for (Entry& e : entries_) {
    if ((e.hooks & kMessages) == 0) continue;
    MessageVerdict v = e.instance->on_message(d, m);
    if (v.kind == MessageVerdict::Kind::consume) {
      if (v.deadline_ms > 0) deadline_ms_ = v.deadline_ms;
      return v;
    }
    if (v.kind == MessageVerdict::Kind::drop || v.kind == MessageVerdict::Kind::close ||
        v.kind == MessageVerdict::Kind::reject) {
      decided_by_ = e.filter->name();
      return v;
    }
    if (v.kind == MessageVerdict::Kind::replace) out.kind = MessageVerdict::Kind::replace;
  }
  return out;
}

}  // namespace weir::filters
