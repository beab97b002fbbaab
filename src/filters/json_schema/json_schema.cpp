#include "filters/json_schema/json_schema.h"

#define VALIJSON_USE_EXCEPTIONS 1
#include <boost/json.hpp>
#include <valijson/adapters/boost_json_adapter.hpp>
#include <valijson/schema.hpp>
#include <valijson/schema_parser.hpp>
#include <valijson/validation_results.hpp>
#include <valijson/validator.hpp>

#include <fstream>
#include <set>
#include <vector>
#include <sstream>

#include "filters/json_pointer.h"
#include "filters/json_schema/msgpack_json.h"
#include "filters/verdicts.h"

namespace weir::filters {

namespace json = boost::json;

struct JsonSchemaFilter::Compiled {
  valijson::Schema schema;
};

namespace {

// By Failure - 1.
constexpr const char* kReasons[JsonSchemaFilter::kFailures] = {"not_json", "invalid", "binary", "not_msgpack",
                                                               "binary_too_big"};

// "line:col" of a byte offset in text (1-based).
std::string position(std::string_view text, std::size_t offset) {
  std::size_t line = 1, col = 1;
  for (std::size_t i = 0; i < offset && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++line;
      col = 1;
    } else {
      ++col;
    }
  }
  return std::to_string(line) + ":" + std::to_string(col);
}

std::unique_ptr<json::value> read_json(const std::string& path, std::string* error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *error = path + ": cannot be read";
    return nullptr;
  }
  std::stringstream buf;
  buf << in.rdbuf();
  const std::string text = buf.str();
  json::stream_parser p;
  boost::system::error_code ec;
  const std::size_t used = p.write_some(text.data(), text.size(), ec);
  if (!ec) p.finish(ec);
  if (ec) {
    *error = path + ":" + position(text, ec ? used : text.size()) + ": not JSON (" + ec.message() + ")";
    return nullptr;
  }
  return std::make_unique<json::value>(p.release());
}

// Keywords valijson would run with std::regex (backtracking): refused.
bool find_pattern(const json::value& v, std::string* where, const std::string& at) {
  if (v.is_object()) {
    for (const auto& kv : v.as_object()) {
      const std::string key(kv.key());
      if ((key == "pattern" && kv.value().is_string()) || key == "patternProperties") {
        *where = at + "/" + key;
        return true;
      }
      if (find_pattern(kv.value(), where, at + "/" + key)) return true;
    }
  } else if (v.is_array()) {
    std::size_t i = 0;
    for (const auto& item : v.as_array())
      if (find_pattern(item, where, at + "/" + std::to_string(i++))) return true;
  }
  return false;
}

void collect_refs(const json::value& v, std::vector<std::string>& out) {
  if (v.is_object()) {
    for (const auto& kv : v.as_object()) {
      if (kv.key() == "$ref" && kv.value().is_string()) out.emplace_back(kv.value().as_string());
      else collect_refs(kv.value(), out);
    }
  } else if (v.is_array()) {
    for (const auto& item : v.as_array()) collect_refs(item, out);
  }
}

std::string dir_of(const std::string& path) {
  const auto slash = path.rfind('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

// The first string or key holding a NUL character, as a JSON pointer into
// *at: valijson's Boost.JSON adapter reads strings up to their first NUL,
// so such a string would be judged by its head only ("chat\u0000evil"
// passing an enum of "chat"). Refused instead.
bool find_nul(const json::value& v, std::string& at) {
  auto has_nul = [](std::string_view s) { return s.find('\0') != std::string_view::npos; };
  switch (v.kind()) {
    case json::kind::string:
      return has_nul(v.get_string());
    case json::kind::array: {
      const std::size_t len = at.size();
      std::size_t i = 0;
      for (const auto& item : v.get_array()) {
        at += "/" + std::to_string(i++);
        if (find_nul(item, at)) return true;
        at.resize(len);
      }
      return false;
    }
    case json::kind::object: {
      const std::size_t len = at.size();
      for (const auto& kv : v.get_object()) {
        append_pointer_token(at, kv.key());
        if (has_nul(kv.key()) || find_nul(kv.value(), at)) return true;
        at.resize(len);
      }
      return false;
    }
    default:
      return false;
  }
}

}  // namespace

std::shared_ptr<const JsonSchemaFilter::Compiled> load_json_schema(const std::string& path, std::string* error) {
  const auto doc = read_json(path, error);
  if (!doc) return nullptr;
  std::string where;
  if (find_pattern(*doc, &where, "")) {
    *error = path + ": '" + where +
             "': pattern keywords are refused (valijson runs them with std::regex, which backtracks on hostile input)";
    return nullptr;
  }
  // Every file the schema reaches through $ref is read and checked here
  // first (valijson recurses without end on a reference it cannot fetch).
  {
    std::vector<std::pair<std::string, const json::value*>> todo{{path, doc.get()}};
    std::vector<std::unique_ptr<json::value>> loaded;
    std::set<std::string> seen{path};
    while (!todo.empty()) {
      const auto [file, value] = todo.back();
      todo.pop_back();
      std::vector<std::string> refs;
      collect_refs(*value, refs);
      for (const std::string& ref : refs) {
        const std::string target = ref.substr(0, ref.find('#'));
        if (target.empty()) continue;  // within the same document
        if (target.find("://") != std::string::npos || target.rfind("urn:", 0) == 0) {
          *error = file + ": $ref '" + ref + "': only files next to the schema are fetched";
          return nullptr;
        }
        const std::string p = target.front() == '/' ? target : dir_of(file) + "/" + target;
        if (!seen.insert(p).second) continue;
        std::string e;
        auto v = read_json(p, &e);
        if (!v) {
          *error = file + ": $ref '" + ref + "': " + e;
          return nullptr;
        }
        std::string w;
        if (find_pattern(*v, &w, "")) {
          *error = p + ": '" + w + "': pattern keywords are refused";
          return nullptr;
        }
        todo.emplace_back(p, v.get());
        loaded.push_back(std::move(v));
      }
    }
  }
  auto compiled = std::make_shared<JsonSchemaFilter::Compiled>();
  const std::string dir = dir_of(path);
  std::string fetch_error;
  // $ref to a sibling file: relative paths from the schema's directory, no URLs.
  auto fetch = [&dir, &fetch_error](const std::string& uri) -> const json::value* {
    if (uri.find("://") != std::string::npos) {
      fetch_error = "$ref '" + uri + "': only files next to the schema are fetched";
      return nullptr;
    }
    const std::string p = !uri.empty() && uri.front() == '/' ? uri : dir + "/" + uri;
    std::string e;
    auto v = read_json(p, &e);
    if (!v) {
      fetch_error = "$ref '" + uri + "': " + e;
      return nullptr;
    }
    std::string w;
    if (find_pattern(*v, &w, "")) {
      fetch_error = p + ": '" + w + "': pattern keywords are refused";
      return nullptr;
    }
    return v.release();
  };
  auto free_doc = [](const json::value* v) { delete v; };
  try {
    valijson::SchemaParser parser(valijson::SchemaParser::kDraft7);
    valijson::adapters::BoostJsonAdapter adapter(*doc);
    parser.populateSchema(adapter, compiled->schema, fetch, free_doc);
  } catch (const std::exception& e) {
    *error = path + ": not a valid JSON Schema: " + (fetch_error.empty() ? std::string(e.what()) : fetch_error);
    return nullptr;
  }
  return compiled;
}

JsonSchemaFilter::JsonSchemaFilter(Settings s) : s_(std::move(s)) {}
JsonSchemaFilter::~JsonSchemaFilter() = default;

JsonSchemaFilter::Failure JsonSchemaFilter::check(Direction d, const Message& m, std::string* why,
                                                  std::string* at_out) const {
  const auto& compiled = s_.schema[static_cast<int>(d)];
  if (!compiled) return Failure::none;
  // The document lives for this call only: an arena (a small message needs
  // no allocation at all) instead of one malloc per value.
  unsigned char arena[4096];
  json::monotonic_resource mr(arena, sizeof arena);
  json::value parsed(&mr);
  MsgpackJson decoded;  // binary: msgpack (its own storage: no copy into the arena)
  const json::value* docp = &parsed;
  if (m.opcode != ws::Opcode::text) {
    if (s_.max_binary_bytes != 0 && m.payload.size() > s_.max_binary_bytes) {
      *why = "binary message over " + std::to_string(s_.max_binary_bytes) + " bytes";
      return Failure::binary_too_big;
    }
    if (s_.binary == Settings::Binary::allow) return Failure::none;
    if (s_.binary == Settings::Binary::refuse) {
      *why = "binary messages are refused";
      return Failure::binary;
    }
    decoded = msgpack_to_json(m.payload, s_.max_depth);
    if (decoded.error != MsgpackJson::Error::none) {
      *why = std::move(decoded.why);
      if (at_out != nullptr) *at_out = decoded.pointer;
      return decoded.error == MsgpackJson::Error::not_msgpack ? Failure::not_msgpack : Failure::invalid;
    }
    docp = &decoded.value;
  } else {
    json::parse_options opt;
    opt.max_depth = s_.max_depth;
    boost::system::error_code ec;
    parsed = json::parse(m.payload, ec, &mr, opt);
    if (ec == json::error::too_deep) {
      *why = "nested deeper than " + std::to_string(s_.max_depth);
      return Failure::invalid;
    }
    if (ec) {
      *why = "not JSON: " + ec.message();
      return Failure::not_json;
    }
  }
  const json::value& doc = *docp;
  if (std::string nul_at; find_nul(doc, nul_at)) {
    *why = "a NUL character in the string at " + (nul_at.empty() ? std::string("/") : nul_at);
    if (at_out != nullptr) *at_out = nul_at;
    return Failure::invalid;
  }
  valijson::Validator validator;
  valijson::adapters::BoostJsonAdapter target(doc);
  // Without a results object valijson stops at the first failed constraint
  // and builds no messages; a failure is validated again to say where.
  if (validator.validate(compiled->schema, target, nullptr)) return Failure::none;
  valijson::ValidationResults results;
  validator.validate(compiled->schema, target, &results);
  valijson::ValidationResults::Error e;
  std::string at;
  if (results.popError(e)) {
    // context: ["<root>", "[name]", "[0]", ...] -> "/name/0"
    for (std::size_t i = 1; i < e.context.size(); ++i) {
      std::string part = e.context[i];
      if (part.size() >= 2 && part.front() == '[' && part.back() == ']') part = part.substr(1, part.size() - 2);
      if (part.size() >= 2 && part.front() == '"' && part.back() == '"') part = part.substr(1, part.size() - 2);
      at += "/" + part;
    }
    *why = "schema: " + (at.empty() ? std::string("/") : at) + ": " + e.description;
    if (at_out != nullptr) *at_out = at;
  } else {
    *why = "schema: invalid";
  }
  return Failure::invalid;
}

MessageVerdict JsonSchemaFilter::verdict(Direction d, const Message& m, obs::CounterId* counted) const {
  std::string why, at;
  const Failure f = check(d, m, &why, &at);
  if (f == Failure::none) return MessageVerdict::forward();
  *counted = failures_[static_cast<int>(d)][static_cast<int>(f) - 1];
  return refuse_message(s_.on_failure, name(),
                        f == Failure::not_json || f == Failure::not_msgpack ? Refused::not_json
                        : f == Failure::binary                              ? Refused::message_type
                        : f == Failure::binary_too_big                      ? Refused::too_big
                                                                            : Refused::rule,
                        std::move(why), std::move(at));
}

std::shared_ptr<config::FilterSettings> JsonSchemaFilter::parse(const config::FilterReader& v) {
  v.expect_keys({"client_to_upstream", "upstream_to_client", "on_failure", "reject_reply", "log_payload", "binary",
                 "max_binary_bytes", "max_depth"});
  Settings s;
  for (Direction d : {Direction::to_upstream, Direction::to_client}) {
    const auto f = v.find(direction_name(d));
    if (!f) continue;
    const std::string path = f->path();
    std::string error;
    auto compiled = load_json_schema(path, &error);
    if (!compiled) f->fail(f->label() + ": " + error);
    s.schema[static_cast<int>(d)] = std::move(compiled);
    s.files[static_cast<int>(d)] = path;
  }
  if (!s.schema[0] && !s.schema[1]) v.fail(v.label() + " needs client_to_upstream or upstream_to_client (a schema file)");
  s.on_failure = read_on_failure(v);
  if (auto f = v.find("binary")) {
    const std::string b = f->choice({"allow", "refuse", "msgpack"});
    s.binary = b == "refuse" ? Settings::Binary::refuse : b == "msgpack" ? Settings::Binary::msgpack : Settings::Binary::allow;
  }
  if (auto f = v.find("max_binary_bytes")) s.max_binary_bytes = f->size(1, 1ull << 30, "from 1 byte to 1GiB");
  if (auto f = v.find("max_depth")) s.max_depth = static_cast<unsigned>(f->integer(1, 1000));
  return std::make_shared<JsonSchemaFilter>(std::move(s));
}

std::unique_ptr<Instance> JsonSchemaFilter::instantiate() const {
  return std::make_unique<VerdictInstance<JsonSchemaFilter>>(*this);
}

// Schema files may have changed on disk: a reload always counts it as changed.
bool JsonSchemaFilter::same_as(const config::FilterSettings&) const { return false; }

void JsonSchemaFilter::declare_metrics(obs::Registry& reg, const std::string& route) const {
  for (Direction d : {Direction::to_upstream, Direction::to_client}) {
    if (!s_.schema[static_cast<int>(d)]) continue;
    for (int r = 0; r < kFailures; ++r) {
      failures_[static_cast<int>(d)][r] =
          reg.counter("weir_json_schema_failures_total", "Messages the json_schema filter refused, by reason",
                      {{"route", route}, {"direction", std::string(direction_name(d))}, {"reason", kReasons[r]}});
    }
  }
}

}  // namespace weir::filters
