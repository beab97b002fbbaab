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
#include "verdict_oracle.h"

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
  check_text_verdict(filter(), data, size);
  return 0;
}
