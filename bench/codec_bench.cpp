// Codec micro-benchmarks: header scan, masking, UTF-8 validation, in bytes/s.

#include <benchmark/benchmark.h>

#include <vector>

#include "ws/frame.h"
#include "ws/scanner.h"
#include "ws/utf8.h"

namespace {

using namespace weir::ws;

std::vector<std::uint8_t> frames(std::size_t payload, std::size_t count) {
  std::vector<std::uint8_t> out;
  for (std::size_t i = 0; i < count; ++i) {
    FrameHeader h;
    h.opcode = Opcode::binary;
    h.masked = true;
    h.payload_len = payload;
    std::uint8_t hdr[14];
    const std::size_t n = write_header(hdr, h);
    out.insert(out.end(), hdr, hdr + n);
    out.insert(out.end(), payload, 'x');
  }
  return out;
}

void BM_ScanFrames(benchmark::State& st) {
  auto buf = frames(static_cast<std::size_t>(st.range(0)), 64 * 1024 / (st.range(0) + 6) + 1);
  for (auto _ : st) {
    FrameScanner s;
    NullSink sink;
    auto r = s.scan(buf.data(), buf.size(), ScanPolicy{}, sink);
    benchmark::DoNotOptimize(r);
  }
  st.SetBytesProcessed(static_cast<std::int64_t>(st.iterations() * buf.size()));
}
BENCHMARK(BM_ScanFrames)->Arg(16)->Arg(64)->Arg(1024)->Arg(16384);

void BM_Mask(benchmark::State& st) {
  std::vector<std::uint8_t> buf(static_cast<std::size_t>(st.range(0)), 7);
  const std::uint8_t key[4] = {1, 2, 3, 4};
  for (auto _ : st) {
    apply_mask(buf.data(), buf.size(), key, 1);
    benchmark::ClobberMemory();
  }
  st.SetBytesProcessed(static_cast<std::int64_t>(st.iterations() * buf.size()));
}
BENCHMARK(BM_Mask)->Arg(64)->Arg(16384)->Arg(1 << 20);

void BM_Utf8(benchmark::State& st) {
  std::string s;
  while (s.size() < static_cast<std::size_t>(st.range(0))) s += st.range(1) ? "κόσμε-€-" : "hello world ";
  for (auto _ : st) benchmark::DoNotOptimize(is_valid_utf8(s));
  st.SetBytesProcessed(static_cast<std::int64_t>(st.iterations() * s.size()));
}
BENCHMARK(BM_Utf8)->Args({16384, 0})->Args({16384, 1});

}  // namespace

BENCHMARK_MAIN();
