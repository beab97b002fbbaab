#pragma once
// What a filter's parser sees of its YAML value: typed accessors that report
// every problem as file:line:col with the key's dotted name, as the loader's
// own keys do. No yaml-cpp here (this header is included by every filter).

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"

namespace weir::config {

class FilterReader {
 public:
  struct Impl;
  explicit FilterReader(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}

  const std::string& label() const;  // "'message_rate.action'", for messages
  SourcePos pos() const;
  bool is_map() const;
  bool is_list() const;
  bool is_scalar() const;

  // A mapping whose keys are all in `allowed`; throws at the first unknown or
  // duplicate one. An empty value is an empty mapping.
  void expect_keys(std::initializer_list<std::string_view> allowed) const;
  std::optional<FilterReader> find(std::string_view key) const;
  FilterReader require(std::string_view key) const;
  // A list, or (scalar_ok) one scalar standing for a list of one.
  std::vector<FilterReader> items(bool scalar_ok) const;

  // Scalars (after ${...} substitution).
  std::string string(std::string_view expected = "a string") const;
  bool boolean() const;
  Millis duration(bool zero_allowed) const;
  std::uint64_t size(std::uint64_t min, std::uint64_t max, std::string_view range) const;
  std::uint64_t integer(std::uint64_t min, std::uint64_t max) const;
  double number(double min, double max) const;  // decimal, e.g. 0.5 or 100
  std::string choice(std::initializer_list<std::string_view> allowed) const;
  // A file path: a relative one is taken from the config file's directory
  // (the current one for a config given as a string). Not checked here.
  std::string path() const;

  [[noreturn]] void fail(const std::string& message) const;

 private:
  std::shared_ptr<const Impl> impl_;
};

}  // namespace weir::config
