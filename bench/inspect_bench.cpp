// Message inspection, per message, on the json-256 scenario's message
// (bench/bench_client.h JsonMessage, 256 bytes): parsing it with Boost.JSON
// (per-value malloc, and the arena json_schema and constraints use) and with
// simdjson (DOM, parser reused: its fastest mode for a whole document), and
// the json_schema, constraints and sanitize filters' whole verdicts with the
// bench peers' settings. Which parser json_schema uses is decided here
// (docs/benchmarks.md, "Message inspection").

#include <benchmark/benchmark.h>

#include <boost/json.hpp>
#ifdef WEIR_HAVE_SIMDJSON
#include <simdjson.h>
#endif

#include <string>

#include "json_message.h"
#include "config/config.h"
#include "filters/api.h"

namespace {

const std::string& message() {
  static const std::string m = weir::bench::JsonMessage(256).text;
  return m;
}

void BM_BoostJsonParse(benchmark::State& state) {
  const std::string& m = message();
  for (auto _ : state) {
    boost::system::error_code ec;
    auto v = boost::json::parse(m, ec);
    benchmark::DoNotOptimize(v);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * m.size()));
}
BENCHMARK(BM_BoostJsonParse);

void BM_BoostJsonParseArena(benchmark::State& state) {
  const std::string& m = message();
  for (auto _ : state) {
    unsigned char arena[4096];
    boost::json::monotonic_resource mr(arena, sizeof arena);
    boost::system::error_code ec;
    auto v = boost::json::parse(m, ec, &mr);
    benchmark::DoNotOptimize(v);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * m.size()));
}
BENCHMARK(BM_BoostJsonParseArena);

#ifdef WEIR_HAVE_SIMDJSON
void BM_SimdjsonDom(benchmark::State& state) {
  const std::string& m = message();
  simdjson::dom::parser parser;
  const simdjson::padded_string padded(m);  // the copy a message would need (padding)
  for (auto _ : state) {
    simdjson::padded_string copy(m);
    auto doc = parser.parse(copy);
    benchmark::DoNotOptimize(doc.error());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * m.size()));
}
BENCHMARK(BM_SimdjsonDom);
#endif

// A route's first filter, from YAML (the bench peers' settings).
const weir::filters::Filter& filter_of(const std::string& yaml) {
  static std::vector<weir::config::Config> keep;
  keep.push_back(weir::config::load_string(
      "listeners: [{address: 127.0.0.1, port: 0}]\nroutes:\n  - upstreams: [echo]\n    " + yaml + "\n", "bench.yaml"));
  return dynamic_cast<const weir::filters::Filter&>(*keep.back().routes[0].filters.at(0));
}

void verdicts(benchmark::State& state, const weir::filters::Filter& f) {
  auto inst = f.instantiate();
  std::string payload;
  for (auto _ : state) {
    payload = message();
    weir::filters::Message m{weir::ws::Opcode::text, payload};
    auto v = inst->on_message(weir::filters::Direction::to_upstream, m);
    if (v.kind != weir::filters::MessageVerdict::Kind::forward) state.SkipWithError("refused");
  }
}

void BM_JsonSchemaVerdict(benchmark::State& state) {
  verdicts(state, filter_of("json_schema: {client_to_upstream: " WEIR_BENCH_PEERS "/chat.schema.json}"));
}
BENCHMARK(BM_JsonSchemaVerdict);

void BM_ConstraintsVerdict(benchmark::State& state) {
  verdicts(state, filter_of("constraints: {max_depth: 8, max_string_length: 4KiB, max_array_length: 100, "
                            "max_object_keys: 20, patterns: [{pointer: /type, match: 'chat|typing|presence'}, "
                            "{pointer: /room, match: '[a-z0-9-]{1,32}'}]}"));
}
BENCHMARK(BM_ConstraintsVerdict);

void BM_SanitizeVerdict(benchmark::State& state) {
  verdicts(state, filter_of("sanitize: {direction: client, html: escape, control_chars: drop, pointers: [/text]}"));
}
BENCHMARK(BM_SanitizeVerdict);

}  // namespace

BENCHMARK_MAIN();
