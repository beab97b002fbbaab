#include "observability/log.h"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <system_error>
#include <thread>

namespace weir::log {

namespace {
std::atomic<int> g_level{static_cast<int>(Level::info)};
constexpr std::string_view kNames[] = {"debug", "info", "warn", "error"};

// The writer hands write(2) at most this much at once, so its buffer stays
// small however long the queue grew.
constexpr std::size_t kWriteChunkBytes = 64 * 1024;

// life_mu is taken first; q_mu and out_mu are never held together, so a
// producer's push never waits behind a write(2).
struct State {
  // Serialises start() and flush_and_stop(), which own `writer`.
  std::mutex life_mu;
  std::thread writer;

  // Held by producers only to push: no I/O and no waiting under it.
  std::mutex q_mu;
  std::condition_variable wake;     // the writer waits here for work or stop
  std::deque<std::string> queue;    // formatted lines; "" = reopen request
  std::size_t pending_bytes = 0;    // queued + taken by the writer, not yet written
  std::size_t limit_bytes = kDefaultQueueLimitBytes;
  bool running = false;             // Lines go to the queue, not to write(2)
  bool stop = false;                // flush_and_stop(): drain, then exit
  bool paused = false;              // tests only

  // The output. Held around every write(2) and every change of fd, so one
  // writer at a time: lines are never interleaved, and a descriptor is never
  // closed under a write.
  std::mutex out_mu;
  int fd = STDOUT_FILENO;
  std::string path;                 // "" = stdout: nothing to reopen

  std::atomic<std::uint64_t> dropped{0};
};

// Never destroyed: Lines may come from static destructors and threads that
// outlive main, and a joinable std::thread destroyed at exit would terminate.
State& state() {
  static State* s = new State;
  return *s;
}

int open_file(const std::string& path) {
  return ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
}

// Writes all of [p, p+n) unless the output fails; returns the bytes not
// written. `may_wait`: a non-blocking descriptor that is full is polled (the
// writer thread) rather than given up on (a caller that must not block).
std::size_t write_all(int fd, const char* p, std::size_t n, bool may_wait) {
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w > 0) {
      p += w;
      n -= static_cast<std::size_t>(w);
      continue;
    }
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && may_wait) {
      pollfd pfd{fd, POLLOUT, 0};
      if (::poll(&pfd, 1, -1) >= 0 || errno == EINTR) continue;
    }
    break;
  }
  return n;
}

// Writes whole lines; every line not completely written counts as dropped.
void write_lines(State& s, std::string_view lines, bool may_wait) {
  const std::size_t left = write_all(s.fd, lines.data(), lines.size(), may_wait);
  if (left == 0) return;
  const auto rest = lines.substr(lines.size() - left);
  s.dropped.fetch_add(static_cast<std::uint64_t>(std::count(rest.begin(), rest.end(), '\n')),
                      std::memory_order_relaxed);
}

// `"ts":...,"level":...,"event":"<event>"` after the opening brace.
void begin_line(fmt::memory_buffer& out, Level level, std::string_view event) {
  using namespace std::chrono;
  // Calendar arithmetic rather than gmtime_r, which takes glibc's time zone
  // lock on every call.
  const auto now = floor<microseconds>(system_clock::now());
  const auto day = floor<days>(now);
  const year_month_day ymd{day};
  const hh_mm_ss hms{now - day};
  fmt::format_to(std::back_inserter(out),
                 "{{\"ts\":\"{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z\",\"level\":\"{}\",\"event\":\"",
                 static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()),
                 static_cast<unsigned>(ymd.day()), hms.hours().count(), hms.minutes().count(),
                 hms.seconds().count(), hms.subseconds().count(), kNames[static_cast<int>(level)]);
  append_json_escaped(out, event);
  out.push_back('"');
}

// Opens s.path again for a rotated file; out_mu held. On failure the old
// descriptor stays and the "log_reopen_failed" line is appended to `out`,
// which the caller writes there.
void reopen_locked(State& s, std::string& out) {
  if (s.path.empty()) return;
  const int fd = open_file(s.path);
  if (fd < 0) {
    const int err = errno;
    fmt::memory_buffer line;
    begin_line(line, Level::error, "log_reopen_failed");
    line.append(std::string_view(",\"path\":\""));
    append_json_escaped(line, s.path);
    line.append(std::string_view("\",\"error\":\""));
    append_json_escaped(line, std::strerror(err));
    line.append(std::string_view("\"}\n"));
    out.append(line.data(), line.size());
    return;
  }
  if (s.fd != STDOUT_FILENO) ::close(s.fd);
  s.fd = fd;
}

void writer_main() {
  State& s = state();
  std::deque<std::string> batch;
  std::string out;
  for (;;) {
    {
      std::unique_lock lk(s.q_mu);
      s.wake.wait(lk, [&] { return s.stop || (!s.paused && !s.queue.empty()); });
      if (s.queue.empty()) {
        // Under q_mu: a Line that finds running false now is written
        // synchronously, one that got in before is in this queue. None is lost.
        s.running = false;
        return;
      }
      batch.swap(s.queue);
    }
    std::size_t bytes = 0;
    {
      std::lock_guard out_lk(s.out_mu);
      for (const std::string& line : batch) {
        if (line.empty()) {  // reopen: what came before goes to the old file
          write_lines(s, out, true);
          out.clear();
          reopen_locked(s, out);
          continue;
        }
        out += line;
        bytes += line.size();
        if (out.size() >= kWriteChunkBytes) {
          write_lines(s, out, true);
          out.clear();
        }
      }
      write_lines(s, out, true);
      out.clear();
    }
    batch.clear();
    std::lock_guard lk(s.q_mu);
    s.pending_bytes -= bytes;
  }
}

// A finished line (with its newline) to the queue, or straight to the output
// when no writer runs.
void emit(std::string_view line) {
  State& s = state();
  std::string copy(line);  // allocated before taking the lock
  std::unique_lock lk(s.q_mu);
  if (s.running) {
    if (s.pending_bytes + copy.size() > s.limit_bytes) {
      lk.unlock();
      s.dropped.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    const bool was_empty = s.queue.empty();
    s.pending_bytes += copy.size();
    s.queue.push_back(std::move(copy));
    lk.unlock();
    if (was_empty) s.wake.notify_one();  // otherwise the writer is awake or paused
    return;
  }
  lk.unlock();
  std::lock_guard out_lk(s.out_mu);
  write_lines(s, line, false);  // no writer yet: drop the line rather than block
}
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
  if (on_) begin_line(buf_, level, event);
}

Line::~Line() {
  if (!on_) return;
  buf_.append(std::string_view("}\n"));
  emit(std::string_view(buf_.data(), buf_.size()));
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

Line& Line::dbl(std::string_view k, double v) {
  if (!on_) return *this;
  key(k);
  if (std::isfinite(v)) fmt::format_to(std::back_inserter(buf_), "{}", v);
  else buf_.append(std::string_view("null"));
  return *this;
}

bool open_output(std::string_view path, std::string* error) {
  State& s = state();
  std::string p(path);
  int fd = STDOUT_FILENO;
  if (p == "stdout") p.clear();
  if (!p.empty()) {
    fd = p.find('\0') == std::string::npos ? open_file(p) : (errno = EINVAL, -1);
    if (fd < 0) {
      if (error) *error = "cannot open " + p + ": " + std::strerror(errno);
      return false;
    }
  }
  int old;
  {
    std::lock_guard out_lk(s.out_mu);
    old = s.fd;
    s.fd = fd;
    s.path = std::move(p);
  }
  if (old != STDOUT_FILENO && old != fd) ::close(old);
  return true;
}

void reopen() {
  State& s = state();
  {
    std::unique_lock lk(s.q_mu);
    if (s.running) {
      // The request takes its place in the queue (no bytes, never dropped),
      // so the lines before it stay in the rotated file.
      const bool was_empty = s.queue.empty();
      if (was_empty || !s.queue.back().empty()) s.queue.emplace_back();
      lk.unlock();
      if (was_empty) s.wake.notify_one();
      return;
    }
  }
  std::lock_guard out_lk(s.out_mu);
  std::string failure;
  reopen_locked(s, failure);
  write_lines(s, failure, false);
}

void start() {
  State& s = state();
  std::lock_guard life(s.life_mu);
  if (s.writer.joinable()) return;
  {
    std::lock_guard lk(s.q_mu);
    s.running = true;
    s.stop = false;
  }
  try {
    s.writer = std::thread(writer_main);
  } catch (const std::system_error&) {
    // No thread: stay synchronous. Lines queued meanwhile are written here.
    std::deque<std::string> queued;
    {
      std::lock_guard lk(s.q_mu);
      s.running = false;
      queued.swap(s.queue);
      s.pending_bytes = 0;
    }
    std::lock_guard out_lk(s.out_mu);
    for (const std::string& line : queued) {
      if (line.empty()) {
        std::string failure;
        reopen_locked(s, failure);
        write_lines(s, failure, false);
      } else {
        write_lines(s, line, false);
      }
    }
  }
}

void flush_and_stop() {
  State& s = state();
  std::lock_guard life(s.life_mu);
  if (!s.writer.joinable()) return;
  {
    std::lock_guard lk(s.q_mu);
    s.stop = true;
  }
  s.wake.notify_one();
  s.writer.join();
  std::lock_guard lk(s.q_mu);
  s.stop = false;
}

std::uint64_t dropped() { return state().dropped.load(std::memory_order_relaxed); }

void set_queue_limit_bytes(std::size_t bytes) {
  State& s = state();
  std::lock_guard lk(s.q_mu);
  s.limit_bytes = bytes;
}

void set_writer_paused_for_test(bool paused) {
  State& s = state();
  {
    std::lock_guard lk(s.q_mu);
    s.paused = paused;
  }
  s.wake.notify_one();
}

}  // namespace weir::log
