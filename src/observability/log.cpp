#include "observability/log.h"

#include <unistd.h>

#include <atomic>
#include <chrono>

namespace weir::log {

namespace {
std::atomic<int> g_level{static_cast<int>(Level::info)};
constexpr std::string_view kNames[] = {"debug", "info", "warn", "error"};
}  // namespace

void set_level(Level level) { g_level.store(static_cast<int>(level), std::memory_order_relaxed); }

bool parse_level(std::string_view s, Level& out) {
  for (int i = 0; i < 4; ++i)
    if (s == kNames[i]) {
      out = static_cast<Level>(i);
      return true;
    }
  return false;
}

bool enabled(Level level) { return static_cast<int>(level) >= g_level.load(std::memory_order_relaxed); }

void append_json_escaped(fmt::memory_buffer& out, std::string_view s) {
  for (unsigned char c : s) {
    switch (c) {
      case '"': out.append(std::string_view("\\\"")); break;
      case '\\': out.append(std::string_view("\\\\")); break;
      case '\n': out.append(std::string_view("\\n")); break;
      case '\r': out.append(std::string_view("\\r")); break;
      case '\t': out.append(std::string_view("\\t")); break;
      default:
        if (c < 0x20) fmt::format_to(std::back_inserter(out), "\\u{:04x}", c);
        else out.push_back(static_cast<char>(c));
    }
  }
}

Line::Line(Level level, std::string_view event) : on_(enabled(level)) {
  if (!on_) return;
  const auto now = std::chrono::system_clock::now();
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  const std::time_t secs = ms / 1000;
  std::tm tm;
  gmtime_r(&secs, &tm);
  fmt::format_to(std::back_inserter(buf_),
                 "{{\"ts\":\"{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z\",\"level\":\"{}\",\"event\":\"",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 static_cast<int>(ms % 1000), kNames[static_cast<int>(level)]);
  append_json_escaped(buf_, event);
  buf_.push_back('"');
}

Line::~Line() {
  if (!on_) return;
  buf_.append(std::string_view("}\n"));
  const char* p = buf_.data();
  std::size_t n = buf_.size();
  while (n > 0) {
    const ssize_t w = ::write(STDOUT_FILENO, p, n);
    if (w <= 0) break;  // nowhere to log to: drop the line rather than block a worker
    p += w;
    n -= static_cast<std::size_t>(w);
  }
}

void Line::key(std::string_view k) {
  buf_.append(std::string_view(",\""));
  buf_.append(k);
  buf_.append(std::string_view("\":"));
}

Line& Line::str(std::string_view k, std::string_view v) {
  if (!on_) return *this;
  key(k);
  buf_.push_back('"');
  append_json_escaped(buf_, v);
  buf_.push_back('"');
  return *this;
}

Line& Line::num(std::string_view k, std::int64_t v) {
  if (on_) { key(k); fmt::format_to(std::back_inserter(buf_), "{}", v); }
  return *this;
}

Line& Line::unum(std::string_view k, std::uint64_t v) {
  if (on_) { key(k); fmt::format_to(std::back_inserter(buf_), "{}", v); }
  return *this;
}

Line& Line::boolean(std::string_view k, bool v) {
  if (on_) { key(k); buf_.append(v ? std::string_view("true") : std::string_view("false")); }
  return *this;
}

}  // namespace weir::log
