// The json_schema filter's message path (filters/json_schema/): Boost.JSON
// parsing with a depth bound, then valijson against a schema with $ref
// (within the file and to a sibling), enums, bounds and nested arrays.
//
// Oracles: every refusal says why, within the 123 bytes a Close reason may
// carry; a verdict is one of forward / close with 1007, 1008 (never 1003:
// binary is allowed here); the same input gives the same verdict twice. The
// input is also judged as a binary MessagePack message (binary: msgpack,
// max_binary_bytes: 4096): forward or 1007, 1008, 1009.
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "filters/json_schema/json_schema.h"
#include "verdict_oracle.h"

namespace {

// binary_msgpack: the same schema, and binary messages taken as MessagePack.
const weir::filters::JsonSchemaFilter& filter(bool binary_msgpack = false) {
  using Settings = weir::filters::JsonSchemaFilter::Settings;
  static const auto base = [] {
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
    Settings s;
    s.schema[0] = weir::filters::load_json_schema((dir / "chat.json").string(), &error);
    if (!s.schema[0]) std::abort();
    fs::remove_all(dir);
    return s;
  }();
  static const auto text = std::make_shared<weir::filters::JsonSchemaFilter>(base);
  static const auto msgpack = [] {
    Settings s = base;
    s.binary = Settings::Binary::msgpack;
    s.max_binary_bytes = 4096;
    return std::make_shared<weir::filters::JsonSchemaFilter>(std::move(s));
  }();
  return binary_msgpack ? *msgpack : *text;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  check_text_verdict(filter(), data, size);
  // The same bytes as a binary message, MessagePack: 1007 not MessagePack,
  // 1008 not representable / too deep / invalid, 1009 over 4096 bytes.
  check_verdict(filter(true), weir::ws::Opcode::binary, data, size, {1007, 1008, 1009});
  return 0;
}
