// The json_schema filter's message path (filters/json_schema/): Boost.JSON
// parsing with a depth bound, then valijson against a schema with $ref
// (within the file and to a sibling), enums, bounds and nested arrays.
//
// Oracles: every refusal says why, within the 123 bytes a Close reason may
// carry; a verdict is one of forward / close with 1007, 1008 (never 1003:
// binary is allowed here); the same input gives the same verdict twice.
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "filters/json_schema/json_schema.h"

namespace {

const weir::filters::JsonSchemaFilter& filter() {
  static const auto f = [] {
    namespace fs = std::filesystem;
    const fs::path dir = fs::temp_directory_path() / ("weir-fuzz-schema-" + std::to_string(::getpid()));
    fs::create_directories(dir);
    std::ofstream(dir / "user.json") << R"({"type":"object","required":["id"],"properties":{"id":{"type":"integer","minimum":0}}})";
    std::ofstream(dir / "chat.json") << R"({"type":"object","required":["type"],
      "properties":{"type":{"enum":["chat","typing"]},"text":{"type":"string","maxLength":40},
                    "to":{"$ref":"user.json"},"kids":{"type":"array","maxItems":8,"items":{"$ref":"#"}},
                    "n":{"type":"number","exclusiveMaximum":100}},
      "additionalProperties":false})";
    std::string error;
    weir::filters::JsonSchemaFilter::Settings s;
    s.schema[0] = weir::filters::load_json_schema((dir / "chat.json").string(), &error);
    if (!s.schema[0]) std::abort();
    fs::remove_all(dir);
    return std::make_shared<weir::filters::JsonSchemaFilter>(std::move(s));
  }();
  return *f;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string payload(reinterpret_cast<const char*>(data), size);
  const std::string copy = payload;
  weir::filters::Message m{weir::ws::Opcode::text, payload};
  weir::obs::CounterId c;
  const auto v = filter().verdict(weir::filters::Direction::to_upstream, m, &c);
  using K = weir::filters::MessageVerdict::Kind;
  if (v.kind == K::close) {
    if (v.code != 1007 && v.code != 1008) std::abort();
    if (v.reason.empty() || v.reason.size() > 123) std::abort();
  } else if (v.kind != K::forward) {
    std::abort();
  }
  if (payload != copy) std::abort();  // never rewritten
  const auto again = filter().verdict(weir::filters::Direction::to_upstream, m, &c);
  if (again.kind != v.kind || again.code != v.code) std::abort();
  return 0;
}
