#pragma once
// JSON-lines event log: one object per line, on stdout or in a file. Events
// are per connection or per refusal, never per frame.
//
// Between start() and flush_and_stop() a Line is only formatted and pushed
// onto a bounded in-memory queue; one writer thread does every write(2), so
// a worker never waits on a slow disk or a stuck stdout pipe. When the queue
// is full the line is dropped and counted (dropped()). Outside that window
// (early startup, unit tests, after shutdown) a Line is written at once with
// a single write(2). Either way a line is never split or interleaved with
// another.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <fmt/format.h>

namespace weir::log {

enum class Level { debug = 0, info = 1, warn = 2, error = 3 };

void set_level(Level level);
bool parse_level(std::string_view s, Level& out);
bool enabled(Level level);

// Builds one line: Line(Level::info, "conn.close").str("route", r).num("bytes", n);
// the destructor emits it. Fields come in call order after "ts" (RFC 3339 UTC
// with microseconds, taken at construction), "level" and "event". Keys are
// written as given: callers pass literals that need no escaping.
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
  // Shortest text that reads back as the same double; NaN and infinities,
  // which JSON cannot carry, become null.
  Line& dbl(std::string_view key, double value);

 private:
  void key(std::string_view k);
  bool on_;
  fmt::memory_buffer buf_;
};

// Appends s to out as JSON string content (without quotes).
void append_json_escaped(fmt::memory_buffer& out, std::string_view s);

// Where lines go from now on: "" or "stdout" = standard output (the default);
// anything else is a file opened for appending (O_APPEND|O_CREAT|O_CLOEXEC,
// mode 0640 before umask). On failure returns false, keeps the current output
// and, if `error` is set, stores "cannot open <path>: <strerror>" there.
// Meant for startup, before start(); lines already queued may go to either.
bool open_output(std::string_view path, std::string* error = nullptr);

// logrotate's "move, then signal": the file at the configured path is opened
// again and the old descriptor closed. Lines logged before the call go to the
// old file, lines logged after it to the new one. While the writer runs this
// only queues the request (it never waits on I/O, but it is not
// async-signal-safe: call it from a signal_set handler, not a raw signal
// handler); otherwise it reopens at once. A failure keeps the old descriptor
// and logs "log_reopen_failed" (error) there. No effect on stdout.
void reopen();

// Starts the writer thread; a second call while it runs does nothing.
void start();

// Writes every line queued so far, stops and joins the writer thread. Safe
// without start() and when called twice. Lines logged afterwards are written
// at once again, so call it last thing before the process exits.
void flush_and_stop();

// Lines lost since the process started: the queue was full, or write(2)
// failed on the output. A monotonic counter, for metrics.
std::uint64_t dropped();

// Bytes of formatted lines the queue may hold, including those the writer has
// taken but not yet written; a line that does not fit is dropped.
inline constexpr std::size_t kDefaultQueueLimitBytes = std::size_t{8} << 20;
void set_queue_limit_bytes(std::size_t bytes);

// Tests only: a paused writer takes nothing from the queue (flush_and_stop()
// still drains it), so a test can fill the queue deterministically.
void set_writer_paused_for_test(bool paused);

}  // namespace weir::log
