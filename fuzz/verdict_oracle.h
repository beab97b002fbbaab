#pragma once
// The oracles of the fuzz targets for filters that judge whole text messages
// (json_schema, constraints): a verdict is forward, or a Close with 1007 or
// 1008 whose reason says why within the 123 bytes a Close carries; the
// payload is never rewritten; the same input gives the same verdict twice.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "filters/api.h"

template <class Filter>
void check_text_verdict(const Filter& filter, const std::uint8_t* data, std::size_t size) {
  std::string payload(reinterpret_cast<const char*>(data), size);
  const std::string copy = payload;
  weir::filters::Message m{weir::ws::Opcode::text, payload};
  weir::obs::CounterId c;
  const auto v = filter.verdict(weir::filters::Direction::to_upstream, m, &c);
  using K = weir::filters::MessageVerdict::Kind;
  if (v.kind == K::close) {
    if (v.code != 1007 && v.code != 1008) std::abort();
    if (v.reason.empty() || v.reason.size() > 123) std::abort();
  } else if (v.kind != K::forward) {
    std::abort();
  }
  if (payload != copy) std::abort();
  const auto again = filter.verdict(weir::filters::Direction::to_upstream, m, &c);
  if (again.kind != v.kind || again.code != v.code || again.reason != v.reason) std::abort();
}
