// FilterReader: the loader's typed accessors, lent to a filter's parser.

#include "config/filter_reader.h"

#include <cstdlib>

#include "config/loader.h"

namespace weir::config {

struct FilterReader::Impl {
  const detail::Loader* loader;
  detail::Field field;
};

namespace {
std::string format_number(double v) {
  std::string s = std::to_string(v);
  while (!s.empty() && s.back() == '0') s.pop_back();
  if (!s.empty() && s.back() == '.') s.pop_back();
  return s;
}

FilterReader make(const detail::Loader* loader, detail::Field f) {
  return FilterReader(std::make_shared<const FilterReader::Impl>(FilterReader::Impl{loader, std::move(f)}));
}
}  // namespace

const std::string& FilterReader::label() const { return impl_->field.label; }
SourcePos FilterReader::pos() const { return detail::Loader::pos(impl_->field.mark); }
bool FilterReader::is_map() const { return impl_->field.node.IsMap() || impl_->field.node.IsNull(); }
bool FilterReader::is_list() const { return impl_->field.node.IsSequence(); }
bool FilterReader::is_scalar() const { return impl_->field.node.IsScalar(); }

void FilterReader::expect_keys(std::initializer_list<std::string_view> allowed) const {
  impl_->loader->fields(impl_->field, ("in " + impl_->field.label).c_str(), allowed);
}

std::optional<FilterReader> FilterReader::find(std::string_view key) const {
  const detail::Fields fs = impl_->loader->fields(impl_->field, "in " + impl_->field.label, {});
  if (const detail::Field* f = fs.find(key)) return make(impl_->loader, *f);
  return std::nullopt;
}

FilterReader FilterReader::require(std::string_view key) const {
  const detail::Fields fs = impl_->loader->fields(impl_->field, "in " + impl_->field.label, {});
  return make(impl_->loader, impl_->loader->require(fs, key, "in " + impl_->field.label));
}

std::vector<FilterReader> FilterReader::items(bool scalar_ok) const {
  std::vector<FilterReader> out;
  for (auto& f : impl_->loader->list(impl_->field, scalar_ok)) out.push_back(make(impl_->loader, f));
  return out;
}

std::string FilterReader::string(std::string_view expected) const {
  return impl_->loader->scalar(impl_->field, expected);
}
std::string FilterReader::path() const {
  std::string p = string("a file path");
  if (p.empty()) fail(label() + " must be a file path, got an empty string");
  const std::string& dir = impl_->loader->base_dir();
  if (p.front() != '/' && !dir.empty()) p = dir + "/" + p;
  return p;
}
bool FilterReader::boolean() const { return impl_->loader->boolean(impl_->field); }
Millis FilterReader::duration(bool zero_allowed) const {
  return impl_->loader->duration(impl_->field, zero_allowed);
}
std::uint64_t FilterReader::size(std::uint64_t min, std::uint64_t max, std::string_view range) const {
  return impl_->loader->size(impl_->field, min, max, range);
}

std::uint64_t FilterReader::integer(std::uint64_t min, std::uint64_t max) const {
  const std::string text = string("an integer");
  const auto v = detail::parse_uint(text);
  if (!v || *v < min || *v > max) {
    fail(label() + " must be an integer from " + std::to_string(min) + " to " + std::to_string(max) +
         ", got " + detail::quote(text));
  }
  return *v;
}

double FilterReader::number(double min, double max) const {
  const std::string text = string("a number");
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  const bool plain = !text.empty() && end == text.c_str() + text.size() &&
                     text.find_first_not_of("0123456789.") == std::string::npos;
  if (!plain || !(v >= min && v <= max)) {
    fail(label() + " must be a number from " + format_number(min) + " to " +
         format_number(max) + ", got " + detail::quote(text));
  }
  return v;
}

std::string FilterReader::choice(std::initializer_list<std::string_view> allowed) const {
  const std::string text = string("one of the listed words");
  for (auto a : allowed)
    if (text == a) return text;
  std::string list;
  for (auto a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
  fail(label() + " must be one of " + list + ", got " + detail::quote(text) + detail::suggestion(text, allowed));
}

FilterReader detail::Loader::filter_reader(const Field& f) const { return make(this, f); }

void FilterReader::fail(const std::string& message) const { impl_->loader->fail(impl_->field.mark, message); }

}  // namespace weir::config
