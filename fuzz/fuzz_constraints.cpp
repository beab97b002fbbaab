// The constraints filter's message path (filters/constraints/): Boost.JSON
// parsing with a depth bound, the walk over strings, arrays and objects with
// the JSON pointer of what failed, and RE2 patterns at pointers (one of them
// (a+)+, which backtracks for ever in a backtracking engine).
//
// Oracles: every refusal says why, within the 123 bytes a Close reason may
// carry; a verdict is forward or a close with 1007 or 1008 (never 1003: both
// message types are allowed here); the payload is never rewritten; the same
// input gives the same verdict twice.
#include <re2/re2.h>

#include <cstdint>
#include <cstdlib>
#include <string>

#include "filters/constraints/constraints.h"
#include "verdict_oracle.h"

namespace {

const weir::filters::ConstraintsFilter& filter() {
  static const auto f = [] {
    weir::filters::ConstraintsFilter::Settings s;
    s.max_depth = 8;
    s.max_string = 64;
    s.max_array = 16;
    s.max_keys = 8;
    for (auto [ptr, re] : {std::pair{"/type", "chat|typing"}, {"/s", "(a+)+"}, {"/to/0", "[a-z]{1,8}"}}) {
      weir::filters::ConstraintsFilter::Pattern p;
      p.pointer = ptr;
      p.text = re;
      p.re = std::make_shared<re2::RE2>(re);
      if (!p.re->ok()) std::abort();
      s.patterns.push_back(std::move(p));
    }
    return std::make_shared<weir::filters::ConstraintsFilter>(std::move(s));
  }();
  return *f;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  check_text_verdict(filter(), data, size);
  return 0;
}
