// The inspecting pump's sink, I/O-free: messages reassembled across
// fragments and across every split point of the input, ruled on by a chain's
// on_message filters (forward, replace, drop, close), re-framed whole, with
// control frames in order and fresh masks towards the upstream; plus the
// sanitize filter's rewriting.

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "../ws/test_frames.h"
#include "filters/sanitize/sanitize.h"
#include "filters/session_filters.h"
#include "proxy/inspect.h"
#include "ws/scanner.h"

namespace weir::proxy {
namespace {

using ws::Opcode;
using ws::test::encode_frame;

// A message filter scripted by the message: "drop..." is dropped, "close..."
// closes with 1008, "up:..." is upper-cased (replace), anything else goes on.
class ScriptFilter final : public filters::Filter {
 public:
  ScriptFilter() { key = "script"; }
  unsigned hooks() const override { return filters::kMessages; }
  std::unique_ptr<filters::Instance> instantiate() const override { return std::make_unique<Inst>(); }
  bool same_as(const config::FilterSettings&) const override { return true; }

 private:
  struct Inst final : filters::Instance {
    filters::MessageVerdict on_message(filters::Direction, filters::Message& m) override {
      if (m.payload.starts_with("drop")) return filters::MessageVerdict::drop();
      if (m.payload.starts_with("close")) return filters::MessageVerdict::close(1008, "scripted close");
      if (m.payload.starts_with("up:")) {
        for (char& c : m.payload) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        return filters::MessageVerdict::replace();
      }
      return filters::MessageVerdict::forward();
    }
  };
};

struct Out {
  std::vector<std::pair<Opcode, std::string>> frames;  // unmasked payloads, all FIN
  bool all_masked = true, none_masked = true;
};

Out parse_frames(const std::string& bytes) {
  Out o;
  std::size_t pos = 0;
  while (pos < bytes.size()) {
    ws::FrameHeader h;
    const auto* p = reinterpret_cast<const std::uint8_t*>(bytes.data()) + pos;
    EXPECT_EQ(ws::parse_header(p, bytes.size() - pos, h), ws::HeaderStatus::ok);
    EXPECT_TRUE(h.fin);
    std::string payload = bytes.substr(pos + h.header_len, h.payload_len);
    if (h.masked) ws::apply_mask(reinterpret_cast<std::uint8_t*>(payload.data()), payload.size(), h.mask, 0);
    (h.masked ? o.none_masked : o.all_masked) = false;
    o.frames.emplace_back(h.opcode, std::move(payload));
    pos += h.header_len + h.payload_len;
  }
  return o;
}

struct Inspected {
  std::string out;
  RunOutcome outcome;
  std::string stop_reason;  // outcome.stop_reason points into the (gone) InspectState
  ws::ScanResult last;
  std::size_t consumed = 0;
};

// Feeds `input` to a scanner + inspect sink in pieces of `step` bytes (the
// unconsumed tail presented again, as the pump carries it).
Inspected inspect(const std::string& input, std::size_t step, bool from_client,
            const filters::Chain& chain) {
  filters::SessionFilters sf(chain);
  InspectState st;
  ws::FrameScanner scanner;
  ws::ScanPolicy policy;
  policy.expect_masked = from_client;
  Inspected run;
  std::string pending;
  for (std::size_t at = 0; at < input.size() && !run.last.error && !run.last.stopped;) {
    const std::size_t n = std::min(step, input.size() - at);
    pending.append(input, at, n);
    at += n;
    InspectSink sink{st, run.outcome, sf, {}, from_client};
    sink.gate.dir = from_client ? filters::Direction::to_upstream : filters::Direction::to_client;
    run.last = scanner.scan(reinterpret_cast<std::uint8_t*>(pending.data()), pending.size(), policy, sink);
    run.consumed += run.last.consumed;
    pending.erase(0, run.last.consumed);
    // As the pump does once a run is written: the output goes, memory is trimmed.
    run.out += st.out;
    st.out.clear();
    st.note_sent(0);
    st.trim(InspectState::kTrimDelayMs);  // as if a second went by after each run
    if (st.stopped) break;
  }
  run.stop_reason = run.outcome.stop_reason;
  run.outcome.stop_reason = "";
  return run;
}

filters::Chain script_chain() {
  std::vector<std::shared_ptr<const config::FilterSettings>> v{std::make_shared<ScriptFilter>()};
  return filters::Chain(v);
}

TEST(Inspect, ReassemblesRulesAndReframesAtEverySplitPoint) {
  const auto chain = script_chain();
  ASSERT_TRUE(chain.needs_payload());
  std::string in;
  in += encode_frame(Opcode::text, "hello", true);
  in += encode_frame(Opcode::text, "up:", true, false);       // fragmented, a ping inside
  in += encode_frame(Opcode::ping, "p1", true);
  in += encode_frame(Opcode::continuation, "abc", true, false);
  in += encode_frame(Opcode::continuation, "", true, false);
  in += encode_frame(Opcode::continuation, "def", true, true);
  in += encode_frame(Opcode::binary, "drop me", true);
  in += encode_frame(Opcode::binary, std::string(70000, 'x'), true);
  in += encode_frame(Opcode::text, "", true);
  in += encode_frame(Opcode::close, std::string("\x03\xe8" "bye", 5), true);
  for (std::size_t step : {std::size_t{1}, std::size_t{2}, std::size_t{7}, std::size_t{100}, in.size()}) {
    SCOPED_TRACE(step);
    const Inspected r = inspect(in, step, /*from_client=*/true, chain);
    EXPECT_EQ(r.consumed, in.size());
    EXPECT_TRUE(r.last.closed);
    EXPECT_EQ(r.outcome.messages, 4u);
    EXPECT_EQ(r.outcome.dropped, 1u);
    EXPECT_EQ(r.outcome.close_code, 1000);
    const Out o = parse_frames(r.out);
    EXPECT_TRUE(o.all_masked);
    const std::vector<std::pair<Opcode, std::string>> want{
        {Opcode::text, "hello"},  {Opcode::ping, "p1"},          {Opcode::text, "UP:ABCDEF"},
        {Opcode::binary, std::string(70000, 'x')}, {Opcode::text, ""}, {Opcode::close, std::string("\x03\xe8" "bye", 5)}};
    EXPECT_EQ(o.frames, want);
  }
}

TEST(Inspect, TowardsTheClientNothingIsMasked) {
  const auto chain = script_chain();
  const std::string in = encode_frame(Opcode::text, "up:x", false) + encode_frame(Opcode::pong, "", false);
  const Inspected r = inspect(in, 3, /*from_client=*/false, chain);
  const Out o = parse_frames(r.out);
  EXPECT_TRUE(o.none_masked);
  EXPECT_EQ(o.frames, (std::vector<std::pair<Opcode, std::string>>{{Opcode::text, "UP:X"}, {Opcode::pong, ""}}));
}

TEST(Inspect, FreshMaskKeysTowardsTheUpstream) {
  const auto chain = script_chain();
  const std::string in = encode_frame(Opcode::text, "same", true);
  const Inspected a = inspect(in, in.size(), true, chain);
  // The key in the output is not the client's (the header is rewritten).
  EXPECT_NE(a.out.substr(2, 4), in.substr(2, 4));
}

TEST(Inspect, ACloseVerdictStopsEverythingAfterTheMessage) {
  const auto chain = script_chain();
  std::string in = encode_frame(Opcode::text, "first", true);
  in += encode_frame(Opcode::text, "close", true, false);
  in += encode_frame(Opcode::continuation, " now", true, true);
  in += encode_frame(Opcode::text, "never", true);
  in += encode_frame(Opcode::ping, "never", true);
  for (std::size_t step : {std::size_t{1}, std::size_t{5}, in.size()}) {
    SCOPED_TRACE(step);
    const Inspected r = inspect(in, step, true, chain);
    EXPECT_EQ(r.outcome.stop_code, 1008);
    EXPECT_EQ(r.stop_reason, "scripted close");
    const Out o = parse_frames(r.out);
    EXPECT_EQ(o.frames, (std::vector<std::pair<Opcode, std::string>>{{Opcode::text, "first"}}));
  }
  // In one run the scan itself stops at the next frame, consuming nothing of it.
  const Inspected whole = inspect(in, in.size(), true, chain);
  EXPECT_TRUE(whole.last.stopped);
  EXPECT_EQ(whole.consumed, in.size() - encode_frame(Opcode::text, "never", true).size() -
                                encode_frame(Opcode::ping, "never", true).size());
}

TEST(Inspect, InvalidFramesStillFailTheScan) {
  const auto chain = script_chain();
  // Unmasked from a client: 1002, the valid message before it still goes out.
  const std::string in = encode_frame(Opcode::text, "ok", true) + encode_frame(Opcode::text, "bad", false);
  const Inspected r = inspect(in, in.size(), true, chain);
  EXPECT_EQ(r.last.error, ws::close_code::protocol_error);
  EXPECT_EQ(parse_frames(r.out).frames, (std::vector<std::pair<Opcode, std::string>>{{Opcode::text, "ok"}}));
}

TEST(Inspect, LargeBuffersAreKeptWhileInUseAndGivenBackASecondAfter) {
  InspectState st;
  st.note_sent(0);
  EXPECT_EQ(st.trim_at_ms, 0);  // small buffers: nothing to give back
  st.message.reserve(1 << 20);
  EXPECT_TRUE(st.note_sent(100));   // newly set: the caller arms its timer
  EXPECT_FALSE(st.note_sent(600));  // pushed back, already armed
  EXPECT_EQ(st.trim_at_ms, 600 + InspectState::kTrimDelayMs);
  EXPECT_TRUE(st.trim(1000));       // not yet
  EXPECT_GE(st.message.capacity(), std::size_t{1} << 20);
  st.message = "half a message";
  EXPECT_TRUE(st.trim(1600));       // due, but in use: later
  EXPECT_GE(st.message.capacity(), std::size_t{1} << 20);
  st.message.clear();
  EXPECT_FALSE(st.trim(2600));      // given back
  EXPECT_LT(st.message.capacity(), std::size_t{1} << 16);
  EXPECT_EQ(st.trim_at_ms, 0);
}

// ------------------------------------------------------------------ sanitize

std::string sanitized(std::string_view text, filters::SanitizeRules rules) {
  std::string out;
  return filters::sanitize_text(text, rules, out) ? out : std::string(text);
}

TEST(Sanitize, EscapesHtml) {
  const filters::SanitizeRules html{filters::SanitizeRules::Html::escape, false};
  EXPECT_EQ(sanitized("<script>alert('x')</script>", html),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;");
  EXPECT_EQ(sanitized("a & b \"q\"", html), "a &amp; b &quot;q&quot;");
  EXPECT_EQ(sanitized("&amp;", html), "&amp;amp;");  // escaped again: it is text, not markup
  EXPECT_EQ(sanitized("<IMG SRC=javascript:alert(1)>", html), "&lt;IMG SRC=javascript:alert(1)&gt;");
  EXPECT_EQ(sanitized("caf\xc3\xa9 \xe2\x82\xac <", html), "caf\xc3\xa9 \xe2\x82\xac &lt;");
  std::string out = "untouched";
  EXPECT_FALSE(filters::sanitize_text("plain text, nothing to do", html, out));
  EXPECT_EQ(out, "untouched");
  EXPECT_FALSE(filters::sanitize_text("", html, out));
}

TEST(Sanitize, DropsControlCharacters) {
  const filters::SanitizeRules ctl{filters::SanitizeRules::Html::keep, true};
  EXPECT_EQ(sanitized(std::string("a\0b\x01\x1f\x7f" "c", 7), ctl), "abc");
  EXPECT_EQ(sanitized("tab\tnl\ncr\r", ctl), "tab\tnl\ncr\r");           // kept
  EXPECT_EQ(sanitized("c1:\xc2\x85\xc2\x9f|\xc2\xa0", ctl), "c1:|\xc2\xa0");  // NEL, APC gone; NBSP kept
  EXPECT_EQ(sanitized("<\x01>", ctl), "<>");
  const filters::SanitizeRules both{filters::SanitizeRules::Html::escape, true};
  EXPECT_EQ(sanitized("<\x01>", both), "&lt;&gt;");
}

TEST(Sanitize, OnlyTextAndOnlyItsDirections) {
  const filters::SanitizeFilter f({filters::SanitizeRules::Html::escape, false}, /*from_client=*/true, /*from_upstream=*/false);
  auto inst = f.instantiate();
  std::string text = "<b>";
  filters::Message m{Opcode::text, text};
  EXPECT_EQ(inst->on_message(filters::Direction::to_upstream, m).kind, filters::MessageVerdict::Kind::replace);
  EXPECT_EQ(text, "&lt;b&gt;");
  std::string down = "<b>";
  filters::Message md{Opcode::text, down};
  EXPECT_EQ(inst->on_message(filters::Direction::to_client, md).kind, filters::MessageVerdict::Kind::forward);
  EXPECT_EQ(down, "<b>");
  std::string bin = "<b>";
  filters::Message mb{Opcode::binary, bin};
  EXPECT_EQ(inst->on_message(filters::Direction::to_upstream, mb).kind, filters::MessageVerdict::Kind::forward);
  EXPECT_EQ(bin, "<b>");
}

}  // namespace
}  // namespace weir::proxy
