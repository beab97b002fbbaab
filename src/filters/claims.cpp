#include "filters/claims.h"

#include <boost/json.hpp>
#include <boost/json/basic_parser_impl.hpp>

#include <algorithm>
#include <cmath>

namespace weir::filters {

namespace json = boost::json;
using boost::system::error_code;

namespace {

// A basic_parser handler that only checks member names: each open object's
// names, compared when it closes (payloads are small; a sort is enough).
struct DuplicateNames {
  static constexpr std::size_t max_object_size = std::size_t(-1);
  static constexpr std::size_t max_array_size = std::size_t(-1);
  static constexpr std::size_t max_key_size = std::size_t(-1);
  static constexpr std::size_t max_string_size = std::size_t(-1);

  std::vector<std::vector<std::string>> open;  // per open object, its names so far
  std::string key;
  std::string duplicate;

  bool on_document_begin(error_code&) { return true; }
  bool on_document_end(error_code&) { return true; }
  bool on_array_begin(error_code&) { return true; }
  bool on_array_end(std::size_t, error_code&) { return true; }
  bool on_object_begin(error_code&) {
    open.emplace_back();
    return true;
  }
  bool on_object_end(std::size_t, error_code& ec) {
    auto& names = open.back();
    std::sort(names.begin(), names.end());
    const auto dup = std::adjacent_find(names.begin(), names.end());
    if (dup != names.end()) {
      duplicate = *dup;
      ec = json::error::syntax;  // stops the parser; `duplicate` says why
      return false;
    }
    open.pop_back();
    return true;
  }
  bool on_string_part(json::string_view, std::size_t, error_code&) { return true; }
  bool on_string(json::string_view, std::size_t, error_code&) { return true; }
  bool on_key_part(json::string_view s, std::size_t, error_code&) {
    key.append(s.data(), s.size());
    return true;
  }
  bool on_key(json::string_view s, std::size_t, error_code&) {
    key.append(s.data(), s.size());
    open.back().push_back(std::move(key));
    key.clear();
    return true;
  }
  bool on_number_part(json::string_view, error_code&) { return true; }
  bool on_int64(std::int64_t, json::string_view, error_code&) { return true; }
  bool on_uint64(std::uint64_t, json::string_view, error_code&) { return true; }
  bool on_double(double, json::string_view, error_code&) { return true; }
  bool on_bool(bool, error_code&) { return true; }
  bool on_null(error_code&) { return true; }
  bool on_comment_part(json::string_view, error_code&) { return true; }
  bool on_comment(json::string_view, error_code&) { return true; }
};

constexpr std::size_t kMaxDepth = 32;

}  // namespace

struct Claims::Impl {
  json::object claims;

  const json::value* find(std::string_view path) const {
    const json::object* o = &claims;
    while (true) {
      const auto dot = path.find('.');
      if (dot == std::string_view::npos) return o->if_contains(path);
      // A member whose name has a dot is found whole before being split.
      if (const json::value* whole = o->if_contains(path)) return whole;
      const json::value* v = o->if_contains(path.substr(0, dot));
      if (v == nullptr || !v->is_object()) return nullptr;
      o = &v->as_object();
      path.remove_prefix(dot + 1);
    }
  }
};

Claims::Claims(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Claims::~Claims() = default;

std::shared_ptr<const Claims> Claims::parse(std::string_view text, std::string* error) {
  json::parse_options opt;
  opt.max_depth = kMaxDepth;
  {
    json::basic_parser<DuplicateNames> check(opt);
    error_code ec;
    check.write_some(false, text.data(), text.size(), ec);
    if (!check.handler().duplicate.empty()) {
      *error = "duplicate claim '" + check.handler().duplicate.substr(0, 64) + "'";
      return nullptr;
    }
    if (ec) {
      *error = "claims are not JSON";
      return nullptr;
    }
  }
  error_code ec;
  json::value v = json::parse(text, ec, {}, opt);
  if (ec || !v.is_object()) {
    *error = "claims are not a JSON object";
    return nullptr;
  }
  auto impl = std::make_unique<Impl>();
  impl->claims = std::move(v.as_object());
  return std::shared_ptr<const Claims>(new Claims(std::move(impl)));
}

bool Claims::has(std::string_view path) const { return impl_->find(path) != nullptr; }

std::optional<std::string> Claims::text(std::string_view path) const {
  const json::value* v = impl_->find(path);
  if (v == nullptr) return std::nullopt;
  if (v->is_string()) return std::string(v->as_string());
  if (v->is_int64()) return std::to_string(v->as_int64());
  if (v->is_uint64()) return std::to_string(v->as_uint64());
  return std::nullopt;
}

std::optional<std::int64_t> Claims::number(std::string_view path, bool* bad) const {
  const json::value* v = impl_->find(path);
  if (v == nullptr) return std::nullopt;
  if (v->is_int64()) return v->as_int64();
  if (v->is_uint64()) return static_cast<std::int64_t>(std::min<std::uint64_t>(v->as_uint64(), INT64_MAX));
  if (v->is_double()) {
    const double d = v->as_double();
    // Boost.JSON reads 0e999999999 as 0 x inf: NaN, which no integer is.
    if (std::isnan(d)) {
      *bad = true;
      return std::nullopt;
    }
    if (d >= 9.2e18) return INT64_MAX;
    if (d <= -9.2e18) return INT64_MIN;
    return static_cast<std::int64_t>(d);
  }
  *bad = true;
  return std::nullopt;
}

std::optional<bool> Claims::boolean(std::string_view path) const {
  const json::value* v = impl_->find(path);
  if (v == nullptr || !v->is_bool()) return std::nullopt;
  return v->as_bool();
}

std::vector<std::string> Claims::strings(std::string_view path) const {
  std::vector<std::string> out;
  const json::value* v = impl_->find(path);
  if (v == nullptr) return out;
  if (v->is_array()) {
    for (const auto& item : v->as_array())
      if (item.is_string()) out.emplace_back(item.as_string());
  } else if (v->is_string()) {
    std::string_view s = v->as_string();
    while (!s.empty()) {
      const auto sp = s.find(' ');
      if (sp != 0) out.emplace_back(s.substr(0, sp));
      if (sp == std::string_view::npos) break;
      s.remove_prefix(sp + 1);
    }
  }
  return out;
}

}  // namespace weir::filters
