#pragma once
// JSON-lines event log on stdout: one object per line, written with a single
// write(2) so lines from several workers never interleave. Events are per
// connection or per refusal, never per frame.

#include <cstdint>
#include <string_view>

#include <fmt/format.h>

namespace weir::log {

enum class Level { debug = 0, info = 1, warn = 2, error = 3 };

void set_level(Level level);
bool parse_level(std::string_view s, Level& out);
bool enabled(Level level);

// Builds one line: Line(Level::info, "session_close").str("route", r).num("bytes", n);
// the destructor writes it.
class Line {
 public:
  Line(Level level, std::string_view event);
  ~Line();
  Line(const Line&) = delete;
  Line& operator=(const Line&) = delete;

  Line& str(std::string_view key, std::string_view value);
  Line& num(std::string_view key, std::int64_t value);
  Line& unum(std::string_view key, std::uint64_t value);
  Line& boolean(std::string_view key, bool value);

 private:
  void key(std::string_view k);
  bool on_;
  fmt::memory_buffer buf_;
};

// Appends s to out as JSON string content (without quotes).
void append_json_escaped(fmt::memory_buffer& out, std::string_view s);

}  // namespace weir::log
