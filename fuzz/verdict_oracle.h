#pragma once
// The oracles of the fuzz targets for filters that judge whole messages
// (json_schema, constraints): a verdict is forward, or a Close with 1007 or
// 1008 (text; a binary message may also get 1009) whose reason says why
// within the 123 bytes a Close carries; the payload is never rewritten; the
// same input gives the same verdict twice.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <initializer_list>
#include <string>

#include "filters/api.h"

// The same for a message of any opcode, whose Close codes are in `codes`.
template <class Filter>
void check_verdict(const Filter& filter, weir::ws::Opcode opcode, const std::uint8_t* data, std::size_t size,
                   std::initializer_list<std::uint16_t> codes) {
  std::string payload(reinterpret_cast<const char*>(data), size);
  const std::string copy = payload;
  weir::filters::Message m{opcode, payload};
  weir::obs::CounterId c;
  const auto v = filter.verdict(weir::filters::Direction::to_upstream, m, &c);
  using K = weir::filters::MessageVerdict::Kind;
  if (v.kind == K::close) {
    if (std::find(codes.begin(), codes.end(), v.code) == codes.end()) std::abort();
    if (v.reason.empty() || v.reason.size() > 123) std::abort();
  } else if (v.kind != K::forward) {
    std::abort();
  }
  if (payload != copy) std::abort();
  const auto again = filter.verdict(weir::filters::Direction::to_upstream, m, &c);
  if (again.kind != v.kind || again.code != v.code || again.reason != v.reason) std::abort();
}

template <class Filter>
void check_text_verdict(const Filter& filter, const std::uint8_t* data, std::size_t size) {
  check_verdict(filter, weir::ws::Opcode::text, data, size, {1007, 1008});
}
