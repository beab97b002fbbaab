#include "ws/deflate.h"

#include <gtest/gtest.h>

#include <chrono>
#include <random>

namespace weir::ws {
namespace {

std::string hex(std::string_view h) {
  std::string out;
  for (std::size_t i = 0; i + 1 < h.size(); i += 2) out.push_back(static_cast<char>(std::stoi(std::string(h.substr(i, 2)), nullptr, 16)));
  return out;
}

std::optional<DeflateAccept> accept(std::vector<std::string_view> offers, DeflateSettings s = {}) {
  return accept_offer(offers, s);
}

// Negotiation, Weir as the server (the client leg).

TEST(DeflateNegotiation, PlainOffer) {
  auto a = accept({"permessage-deflate"});
  ASSERT_TRUE(a);
  EXPECT_EQ(a->response, "permessage-deflate");
  EXPECT_EQ(a->params.server_max_window_bits, 15);
  EXPECT_EQ(a->params.client_max_window_bits, 15);
  EXPECT_FALSE(a->params.server_no_context_takeover);
  EXPECT_FALSE(a->params.client_no_context_takeover);
}

TEST(DeflateNegotiation, BrowserOfferGetsAWindowValue) {
  // Chrome, Firefox and Python websockets offer client_max_window_bits without a value.
  auto a = accept({"permessage-deflate; client_max_window_bits"});
  ASSERT_TRUE(a);
  EXPECT_EQ(a->response, "permessage-deflate; client_max_window_bits=15");
  DeflateSettings s;
  s.peer_window_bits = 10;
  a = accept({"permessage-deflate; client_max_window_bits"}, s);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->response, "permessage-deflate; client_max_window_bits=10");
  EXPECT_EQ(a->params.client_max_window_bits, 10);
  EXPECT_EQ(directions(a->params, true).inflate_window_bits, 10);
}

TEST(DeflateNegotiation, ClientWindowNotNamedUnlessOffered) {
  DeflateSettings s;
  s.peer_window_bits = 10;
  auto a = accept({"permessage-deflate"}, s);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->response, "permessage-deflate");  // RFC 7692 7.1.2.2: must not name it
  EXPECT_EQ(a->params.client_max_window_bits, 15);
}

TEST(DeflateNegotiation, AllParameters) {
  auto a = accept({"permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
                   "server_max_window_bits=10; client_max_window_bits=12"});
  ASSERT_TRUE(a);
  EXPECT_EQ(a->response,
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
            "server_max_window_bits=10; client_max_window_bits=12");
  const DeflateDirections d = directions(a->params, /*weir_is_server=*/true);
  EXPECT_EQ(d.deflate_window_bits, 10);
  EXPECT_TRUE(d.deflate_reset);
  EXPECT_EQ(d.inflate_window_bits, 12);
  EXPECT_TRUE(d.inflate_reset);
}

TEST(DeflateNegotiation, QuotedValueAndCase) {
  auto a = accept({"PerMessage-Deflate; Server_Max_Window_Bits=\"11\""});
  ASSERT_TRUE(a);
  EXPECT_EQ(a->params.server_max_window_bits, 11);
}

TEST(DeflateNegotiation, WeirSettingsLimitTheServerWindow) {
  DeflateSettings s;
  s.window_bits = 12;
  auto a = accept({"permessage-deflate"}, s);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->response, "permessage-deflate; server_max_window_bits=12");
  a = accept({"permessage-deflate; server_max_window_bits=14"}, s);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->params.server_max_window_bits, 12);
  s.context_takeover = false;
  a = accept({"permessage-deflate"}, s);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->response,
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=12");
}

TEST(DeflateNegotiation, InvalidOffersAreDeclined) {
  for (std::string_view bad : {
           "permessage-deflate; server_max_window_bits",       // value required
           "permessage-deflate; server_max_window_bits=16",
           "permessage-deflate; server_max_window_bits=7",
           "permessage-deflate; server_max_window_bits=010",   // leading zero
           "permessage-deflate; client_max_window_bits=abc",
           "permessage-deflate; client_max_window_bits=0",
           "permessage-deflate; server_no_context_takeover=1", // no value allowed
           "permessage-deflate; client_no_context_takeover; client_no_context_takeover",  // repeated
           "permessage-deflate; foo",                          // unknown
           "permessage-deflate; server_max_window_bits=8",     // zlib cannot keep to it
       }) {
    EXPECT_FALSE(accept({bad})) << bad;
  }
  EXPECT_FALSE(accept({"x-webkit-deflate-frame"}));
  EXPECT_FALSE(accept({""}));
  DeflateSettings off;
  off.enabled = false;
  EXPECT_FALSE(accept({"permessage-deflate"}, off));
}

TEST(DeflateNegotiation, FirstAcceptableOfferWins) {
  auto a = accept({"permessage-deflate; foo=1, permessage-deflate; server_max_window_bits=8, "
                   "permessage-deflate; client_max_window_bits=9, permessage-deflate"});
  ASSERT_TRUE(a);
  EXPECT_EQ(a->response, "permessage-deflate; client_max_window_bits=9");
  // Offers over several header fields, other extensions in between.
  a = accept({"x-foo, permessage-deflate; server_max_window_bits=99", "permessage-deflate; server_no_context_takeover"});
  ASSERT_TRUE(a);
  EXPECT_TRUE(a->params.server_no_context_takeover);
}

TEST(DeflateNegotiation, ClientWindowEightInflatesWithNine) {
  auto a = accept({"permessage-deflate; client_max_window_bits=8"});
  ASSERT_TRUE(a);
  EXPECT_EQ(a->params.client_max_window_bits, 8);
  EXPECT_EQ(directions(a->params, true).inflate_window_bits, 9);
}

// Negotiation, Weir as the client (the backend leg).

TEST(DeflateNegotiation, ClientOffer) {
  DeflateSettings s;
  EXPECT_EQ(client_offer(s), "permessage-deflate; client_max_window_bits=15");
  s.peer_window_bits = 10;
  s.window_bits = 11;
  s.context_takeover = false;
  EXPECT_EQ(client_offer(s),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10; "
            "client_max_window_bits=11");
}

TEST(DeflateNegotiation, BackendResponses) {
  DeflateSettings s;
  std::optional<DeflateParams> p;
  std::string why;
  EXPECT_TRUE(check_response({}, s, p, why));
  EXPECT_FALSE(p);  // declined
  ASSERT_TRUE(check_response({"permessage-deflate"}, s, p, why));
  ASSERT_TRUE(p);
  EXPECT_EQ(p->client_max_window_bits, 15);
  ASSERT_TRUE(check_response({"permessage-deflate; server_no_context_takeover; client_max_window_bits=10"}, s, p, why));
  const DeflateDirections d = directions(*p, /*weir_is_server=*/false);
  EXPECT_TRUE(d.inflate_reset);
  EXPECT_FALSE(d.deflate_reset);
  EXPECT_EQ(d.deflate_window_bits, 10);
  EXPECT_EQ(d.inflate_window_bits, 15);
  for (std::string_view bad : {"permessage-deflate; client_max_window_bits",  // a response needs the value
                               "permessage-deflate; server_max_window_bits=16", "permessage-deflate; bogus",
                               "permessage-deflate; client_max_window_bits=8",
                               "permessage-deflate, permessage-deflate"}) {
    EXPECT_FALSE(check_response({bad}, s, p, why)) << bad;
    EXPECT_FALSE(why.empty());
  }
  s.peer_window_bits = 10;
  EXPECT_FALSE(check_response({"permessage-deflate"}, s, p, why));  // ignored our server_max_window_bits
  EXPECT_FALSE(check_response({"permessage-deflate; server_max_window_bits=11"}, s, p, why));
  EXPECT_TRUE(check_response({"permessage-deflate; server_max_window_bits=9"}, s, p, why));
  s.context_takeover = false;
  EXPECT_FALSE(check_response({"permessage-deflate; server_max_window_bits=9"}, s, p, why));
}

// The codecs.

TEST(Deflate, Rfc7692Examples) {
  std::string out;
  {
    // 7.2.3.1: "Hello" in one compressed block.
    Inflater in(15, false);
    ASSERT_EQ(in.inflate(hex("f248cdc9c90700"), out, 1000), Inflater::Status::ok);
    EXPECT_EQ(out, "Hello");
    // 7.2.3.2: the same again, sharing the LZ77 window.
    ASSERT_EQ(in.inflate(hex("f200110000"), out, 1000), Inflater::Status::ok);
    EXPECT_EQ(out, "Hello");
  }
  {
    Inflater in(15, false);
    // 7.2.3.3: a stored (uncompressed) block.
    ASSERT_EQ(in.inflate(hex("000500faff48656c6c6f00"), out, 1000), Inflater::Status::ok);
    EXPECT_EQ(out, "Hello");
    // 7.2.3.4: BFINAL set, then a byte of padding.
    ASSERT_EQ(in.inflate(hex("f348cdc9c9070000"), out, 1000), Inflater::Status::ok);
    EXPECT_EQ(out, "Hello");
    // 7.2.3.5: two blocks in one message.
    ASSERT_EQ(in.inflate(hex("f24805000000ffffcac9c90700"), out, 1000), Inflater::Status::ok);
    EXPECT_EQ(out, "Hello");
    // An empty message.
    ASSERT_EQ(in.inflate(hex("00"), out, 1000), Inflater::Status::ok);
    EXPECT_EQ(out, "");
  }
  // And Weir's deflater makes 7.2.3.1's bytes, then 7.2.3.2's.
  Deflater de(15, false);
  std::string z;
  ASSERT_TRUE(de.deflate("Hello", z));
  EXPECT_EQ(z, hex("f248cdc9c90700"));
  z.clear();
  ASSERT_TRUE(de.deflate("Hello", z));
  EXPECT_EQ(z, hex("f200110000"));
}

std::string sample(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  static const char* words[] = {"{\"type\":", "\"chat\"", ",\"text\":", "\"hello world\"", "}", "42", "true"};
  std::string s;
  while (s.size() < n) s += words[rng() % 7];
  s.resize(n);
  return s;
}

void round_trip(int deflate_bits, int inflate_bits, bool reset) {
  Deflater de(deflate_bits, reset);
  Inflater in(inflate_bits, reset);
  std::size_t prev = 0;
  for (unsigned i = 0; i < 20; ++i) {
    const std::string msg = sample(100 + i * 997, i % 3);  // repeats: takeover pays
    std::string z, back;
    ASSERT_TRUE(de.deflate(msg, z));
    ASSERT_EQ(in.inflate(z, back, 1 << 20), Inflater::Status::ok) << deflate_bits << " " << i;
    ASSERT_EQ(back, msg);
    prev = z.size();
  }
  (void)prev;
}

TEST(Deflate, RoundTrips) {
  for (bool reset : {false, true})
    for (int bits : {9, 10, 12, 15}) round_trip(bits, bits, reset);
  round_trip(9, 15, false);  // a larger inflate window reads a smaller one
}

TEST(Deflate, EmptyMessagesKeepTheStreamInStep) {
  // Found by fuzz_inflate: after a flush zlib has nothing to emit for an
  // empty message, and a bare tail would desynchronise the reader.
  Deflater de(15, false);
  Inflater in(15, false);
  for (std::string_view m : {"abc", "", "", "xyz", ""}) {
    std::string z, out;
    ASSERT_TRUE(de.deflate(m, z));
    EXPECT_FALSE(z.empty());
    ASSERT_EQ(in.inflate(z, out, 100), Inflater::Status::ok);
    EXPECT_EQ(out, m);
  }
}

TEST(Deflate, ContextTakeoverShrinksRepeats) {
  const std::string msg = sample(2000, 7);
  std::string a, b, c, d;
  Deflater keep(15, false), fresh(15, true);
  ASSERT_TRUE(keep.deflate(msg, a));
  ASSERT_TRUE(keep.deflate(msg, b));
  ASSERT_TRUE(fresh.deflate(msg, c));
  ASSERT_TRUE(fresh.deflate(msg, d));
  EXPECT_LT(b.size(), a.size() / 4);
  EXPECT_EQ(c, d);  // no context: the same message compresses the same each time
  // A reader that resets per message cannot read the second message of a
  // writer that kept its context.
  Inflater in(15, true);
  std::string out;
  ASSERT_EQ(in.inflate(a, out, 1 << 20), Inflater::Status::ok);
  EXPECT_NE(in.inflate(b, out, 1 << 20), Inflater::Status::ok);
}

TEST(Deflate, WindowBitsAreKept) {
  // A distance of 1000 bytes back needs more than a 9-bit window.
  std::mt19937 rng(5);
  std::string msg;
  for (int i = 0; i < 1000; ++i) msg.push_back(static_cast<char>(rng()));
  msg += msg;
  std::string z9, z15, out;
  Deflater d9(9, false), d15(15, false);
  ASSERT_TRUE(d9.deflate(msg, z9));
  ASSERT_TRUE(d15.deflate(msg, z15));
  EXPECT_LT(z15.size(), z9.size());
  // (zlib checks a distance against its window only across calls: a small
  // inflate window is a memory bound, not a validator.)
  Inflater i9(9, false);
  ASSERT_EQ(i9.inflate(z9, out, 1 << 20), Inflater::Status::ok);
  EXPECT_EQ(out, msg);
}

TEST(Deflate, ZipBombStopsAtTheBound) {
  // 1 GiB of zeros as about 1 MiB of compressed bytes: 1 MiB of zeros
  // from a fresh compressor (its matches reach back inside itself only),
  // repeated 1024 times with the sync-flush tails in between.
  Deflater de(15, false, 9, 9);
  std::string one;
  ASSERT_TRUE(de.deflate(std::string(1u << 20, '\0'), one));
  std::string z;
  for (int i = 0; i < 1024; ++i) {
    if (i != 0) z += hex("0000ffff");
    z += one;
  }
  EXPECT_LT(z.size(), 2u << 20);
  Inflater in(15, false);
  std::string out;
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(in.inflate(z, out, 1u << 20), Inflater::Status::too_big);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_TRUE(out.empty());
  EXPECT_LT(ms, 2000);  // 1 MiB of work, not 1 GiB (which takes seconds)
  EXPECT_FALSE(in.allocated());  // the broken stream is gone
  // Exactly at the bound is fine.
  Inflater exact(15, false);
  std::string z2;
  Deflater d2(15, false);
  ASSERT_TRUE(d2.deflate(std::string(4096, 'a'), z2));
  EXPECT_EQ(exact.inflate(z2, out, 4096), Inflater::Status::ok);
  EXPECT_EQ(out.size(), 4096u);
  Inflater over(15, false);
  EXPECT_EQ(over.inflate(z2, out, 4095), Inflater::Status::too_big);
}

TEST(Deflate, GarbageIsBadData) {
  Inflater in(15, false);
  std::string out;
  EXPECT_EQ(in.inflate(hex("ffffffffffff"), out, 1000), Inflater::Status::bad_data);
}

TEST(Deflate, LazyAllocationAndMemory) {
  const std::int64_t before = deflate_memory_in_use();
  {
    Inflater in(15, false);
    Deflater de(15, false);
    EXPECT_FALSE(in.allocated());
    EXPECT_FALSE(de.allocated());
    EXPECT_EQ(deflate_memory_in_use(), before);  // negotiated but idle: nothing
    std::string z, out;
    ASSERT_TRUE(de.deflate("hello", z));
    ASSERT_EQ(in.inflate(z, out, 100), Inflater::Status::ok);
    const std::int64_t both = deflate_memory_in_use() - before;
    // zlib's formula: deflate (1 << 17) + (1 << 17) + ~6 KiB, inflate (1 << 15) + ~7 KiB.
    EXPECT_GT(both, 280'000);
    EXPECT_LT(both, 320'000);
    std::printf("zlib bytes for one deflater + one inflater (15 bits, memLevel 8): %lld\n",
                static_cast<long long>(both));
  }
  EXPECT_EQ(deflate_memory_in_use(), before);
  // The figures in docs/configuration.md ("compression"): one leg's pair
  // (what a session pays per leg that negotiated the extension, once
  // messages flowed both ways on it).
  struct Case {
    int window, peer, mem;
  };
  for (const Case c : {Case{15, 15, 8}, Case{15, 15, 9}, Case{12, 12, 8}, Case{10, 10, 4}, Case{9, 9, 1}}) {
    Inflater in(c.peer, false);
    Deflater de(c.window, false, c.mem);
    std::string z, out;
    ASSERT_TRUE(de.deflate("hello", z));
    const std::int64_t d = deflate_memory_in_use() - before;
    ASSERT_EQ(in.inflate(z, out, 100), Inflater::Status::ok);
    const std::int64_t i = deflate_memory_in_use() - before - d;
    std::printf("window_bits %d peer_window_bits %d memory_level %d: deflate %lld B, inflate %lld B, per leg %lld B\n",
                c.window, c.peer, c.mem, static_cast<long long>(d), static_cast<long long>(i),
                static_cast<long long>(d + i));
  }
  EXPECT_EQ(deflate_memory_in_use(), before);
}

}  // namespace
}  // namespace weir::ws
