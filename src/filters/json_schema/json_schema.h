#pragma once
// json_schema: text messages must be JSON that validates against a JSON
// Schema (draft 7; `$ref` within the file and to sibling files), per
// direction; binary ones may be MessagePack validated against the same
// schema (msgpack_json.h maps them to JSON). Validation by valijson (Debian
// libvalijson-dev) over Boost.JSON documents; schemas are loaded and compiled
// once per config generation and shared read-only by every worker. Runs on
// the inspecting pump.
//
// YAML (on a route):
//   json_schema:
//     client_to_upstream: schemas/chat-in.json   # a file, relative to the config's directory
//     upstream_to_client: schemas/chat-out.json  # optional; at least one direction
//     on_failure: close     # close (default): 1007 not JSON, 1008 invalid | drop: counted, not relayed
//                           # | reject: not relayed, a JSON error message goes back (filters/verdicts.h)
//     binary: allow         # allow (default) | refuse: a binary message fails (1003 with close)
//                           # | msgpack: MessagePack, validated (1007 not MessagePack, 1008 invalid)
//     max_binary_bytes: 64KiB  # optional, any binary mode: a larger binary message fails (1009)
//     max_depth: 64         # deeper documents fail before validation (the parser stops there)
//
// Schemas using `pattern` or `patternProperties` are refused: valijson runs
// them with std::regex, which backtracks, and Weir never lets a client's
// bytes drive a backtracking regex.

#include <memory>
#include <string>

#include "config/filter_reader.h"
#include "filters/api.h"
#include "filters/verdicts.h"

namespace weir::filters {

class JsonSchemaFilter final : public Filter {
 public:
  struct Compiled;  // a loaded schema (valijson), json_schema.cpp
  struct Settings {
    std::shared_ptr<const Compiled> schema[2];  // by Direction; null = that way is not checked
    std::string files[2];                       // for same_as and messages
    OnFailure on_failure;
    enum class Binary : std::uint8_t { allow, refuse, msgpack } binary = Binary::allow;
    std::uint64_t max_binary_bytes = 0;         // 0: no limit of this filter's
    unsigned max_depth = 64;                    // JSON text and MessagePack alike
  };
  explicit JsonSchemaFilter(Settings s);
  ~JsonSchemaFilter() override;
  static std::shared_ptr<config::FilterSettings> parse(const config::FilterReader& value);

  unsigned hooks() const override { return kMessages; }
  std::unique_ptr<Instance> instantiate() const override;
  bool same_as(const config::FilterSettings& other) const override;
  void declare_metrics(obs::Registry& reg, const std::string& route) const override;

  // The verdict on one whole message (unmasked payload).
  enum class Failure : std::uint8_t { none, not_json, invalid, binary, not_msgpack, binary_too_big };
  static constexpr int kFailures = 5;  // Failure values but none: the reasons counted
  // *at (when given): the JSON pointer that failed, or empty.
  Failure check(Direction d, const Message& m, std::string* why, std::string* at = nullptr) const;
  MessageVerdict verdict(Direction d, const Message& m, obs::CounterId* counted) const;

 private:
  Settings s_;
  mutable obs::CounterId failures_[2][kFailures];  // [direction][Failure - 1]
};

// Loads a schema file (and the sibling files it $refs) for validation;
// null and *error ("file:line:col: what") when it cannot.
std::shared_ptr<const JsonSchemaFilter::Compiled> load_json_schema(const std::string& path, std::string* error);

}  // namespace weir::filters
