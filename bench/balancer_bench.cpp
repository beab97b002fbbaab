// Load-balancing micro-benchmarks: what choosing an upstream member costs per
// connection, for each policy (src/upstream/group.h), over groups of 3 and 30
// members. One iteration is what Session::connect_upstream does for a new
// session: a Selection over the group, and its first next() (the candidate
// scan: health, ejection, drain and max_connections of every member; then the
// policy). Plus the sticky cookie's HMAC check (done once per connect that
// carries the cookie) and the Maglev table build (once per config load).
//
//   taskset -c 1 build/bench/weir_balancer_bench --benchmark_min_time=0.2

#include <benchmark/benchmark.h>

#include <memory>
#include <string>
#include <vector>

#include "config/upstream_group.h"
#include "core/clock.h"
#include "upstream/group.h"
#include "upstream/maglev.h"
#include "upstream/sticky.h"

namespace {

using namespace weir;
using Policy = config::UpstreamGroup::Policy;

// A group of n members 10.0.<i/250>.<i%250>:8080, weights 1 (or 1..4).
std::shared_ptr<const config::UpstreamGroup> group_conf(const std::string& name, Policy policy, int n,
                                                        bool weighted = false) {
  auto g = std::make_shared<config::UpstreamGroup>();
  g->name = name;
  g->policy = policy;
  for (int i = 0; i < n; ++i) {
    config::GroupMember m;
    m.up.host = "10.0." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 1);
    m.up.port = 8080;
    m.up.text = m.up.host + ":8080";
    m.weight = weighted ? static_cast<std::uint32_t>(1 + i % 4) : 1;
    g->members.push_back(m);
  }
  if (policy == Policy::hash) g->hash.from = config::HashKey::From::ip;
  return g;
}

// Live sessions spread unevenly over the members (least_conn and random_two
// read them), as from several workers.
void load_members(const upstream::Group& g) {
  for (std::size_t i = 0; i < g.size(); ++i) g.state(i).add_live(static_cast<unsigned>(i % 4), 100 + (i * 37) % 50);
}

void unload_members(const upstream::Group& g) {
  for (std::size_t i = 0; i < g.size(); ++i) g.state(i).add_live(static_cast<unsigned>(i % 4), -(100 + (i * 37) % 50));
}

std::vector<std::string> client_ips(std::size_t n) {
  std::vector<std::string> v;
  for (std::size_t i = 0; i < n; ++i)
    v.push_back("198." + std::to_string(18 + i / 65536 % 2) + "." + std::to_string(i / 256 % 256) + "." +
                std::to_string(i % 256));
  return v;
}

// One connection's pick: a Selection, its first member, and the live count
// the session adds there (Session::upstream_chosen), so least_conn and
// random_two see the sessions they placed.
void pick(benchmark::State& st, Policy policy, const char* name, bool weighted = false) {
  const int n = static_cast<int>(st.range(0));
  upstream::Group g(group_conf(std::string(name) + "-" + std::to_string(n) + (weighted ? "w" : ""), policy, n,
                               weighted));
  load_members(g);
  upstream::Picker picker(0);
  const auto keys = client_ips(4096);
  const std::int64_t now = core::coarse_now_ms();
  std::size_t k = 0;
  std::vector<std::size_t> hits(g.size());
  for (auto _ : st) {
    upstream::PickInput in;
    if (policy == Policy::hash) in.hash_key = keys[k++ & 4095];
    upstream::Selection sel(g, picker, in);
    const std::size_t m = sel.next(now);
    benchmark::DoNotOptimize(m);
    g.state(m).add_live(0, 1);
    ++hits[m];
  }
  for (std::size_t i = 0; i < g.size(); ++i) g.state(i).add_live(0, -static_cast<std::int64_t>(hits[i]));
  unload_members(g);
  // The spread, as a sanity check of what was timed: the busiest member's
  // picks over the idlest's (weighted: 4 for weights 1..4).
  std::size_t lo = hits[0], hi = hits[0];
  for (auto h : hits) lo = std::min(lo, h), hi = std::max(hi, h);
  st.counters["max/min"] = lo ? static_cast<double>(hi) / static_cast<double>(lo) : 0;
}

void BM_Pick_RoundRobin(benchmark::State& st) { pick(st, Policy::round_robin, "rr"); }
void BM_Pick_RoundRobinWeighted(benchmark::State& st) { pick(st, Policy::round_robin, "rrw", true); }
void BM_Pick_LeastConn(benchmark::State& st) { pick(st, Policy::least_conn, "lc"); }
void BM_Pick_RandomTwo(benchmark::State& st) { pick(st, Policy::random_two, "p2c"); }
void BM_Pick_Hash(benchmark::State& st) { pick(st, Policy::hash, "hash"); }
BENCHMARK(BM_Pick_RoundRobin)->Arg(3)->Arg(30);
BENCHMARK(BM_Pick_RoundRobinWeighted)->Arg(3)->Arg(30);
BENCHMARK(BM_Pick_LeastConn)->Arg(3)->Arg(30);
BENCHMARK(BM_Pick_RandomTwo)->Arg(3)->Arg(30);
BENCHMARK(BM_Pick_Hash)->Arg(3)->Arg(30);

// A returning client with a valid sticky cookie: the cookie's HMAC check,
// then a Selection that honours it (round robin behind it).
void BM_Pick_StickyCookie(benchmark::State& st) {
  const int n = static_cast<int>(st.range(0));
  auto conf = std::const_pointer_cast<config::UpstreamGroup>(group_conf("sticky-" + std::to_string(n), Policy::round_robin, n));
  conf->sticky_cookie = true;
  conf->cookie.key = "bench-sticky-key-0123456789abcdef";
  upstream::Group g(conf);
  upstream::Picker picker(0);
  std::vector<std::string> cookies;
  for (std::size_t i = 0; i < g.size(); ++i) cookies.push_back(upstream::sign_sticky(conf->cookie.key, g.label(), g.state(i).id));
  const std::int64_t now = core::coarse_now_ms();
  std::size_t k = 0;
  for (auto _ : st) {
    upstream::PickInput in;
    in.sticky = upstream::verify_sticky(conf->cookie.key, g.label(), cookies[k++ % cookies.size()]);
    upstream::Selection sel(g, picker, in);
    benchmark::DoNotOptimize(sel.next(now));
    if (!sel.sticky_hit()) st.SkipWithError("sticky cookie not honoured");
  }
}
BENCHMARK(BM_Pick_StickyCookie)->Arg(3)->Arg(30);

// The HMAC-SHA256 check alone (part of the above), and signing (once per
// 101 that sets the cookie).
void BM_StickyVerify(benchmark::State& st) {
  const std::string key = "bench-sticky-key-0123456789abcdef";
  const std::string cookie = upstream::sign_sticky(key, "g", upstream::member_id("g", "10.0.0.1:8080"));
  for (auto _ : st) benchmark::DoNotOptimize(upstream::verify_sticky(key, "g", cookie));
}
BENCHMARK(BM_StickyVerify);

void BM_StickySign(benchmark::State& st) {
  const std::string key = "bench-sticky-key-0123456789abcdef";
  const std::uint64_t id = upstream::member_id("g", "10.0.0.1:8080");
  for (auto _ : st) benchmark::DoNotOptimize(upstream::sign_sticky(key, "g", id));
}
BENCHMARK(BM_StickySign);

// Building the Maglev table (65537 entries for up to 655 members): once per
// group per config generation, off the data path.
void BM_MaglevBuild(benchmark::State& st) {
  const int n = static_cast<int>(st.range(0));
  std::vector<std::string> names;
  for (int i = 0; i < n; ++i) names.push_back("10.0.0." + std::to_string(i + 1) + ":8080");
  std::vector<upstream::Maglev::Entry> entries;
  for (const auto& s : names) entries.push_back({s, 1});
  for (auto _ : st) {
    upstream::Maglev m(entries);
    benchmark::DoNotOptimize(m.lookup(12345));
  }
}
BENCHMARK(BM_MaglevBuild)->Arg(3)->Arg(30)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
