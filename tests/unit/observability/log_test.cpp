#include "observability/log.h"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "config/config.h"

namespace weir::log {
namespace {

namespace fs = std::filesystem;

// A flat JSON object as Line writes it: string, number, true/false/null
// values. Returns false on anything else, including a split or mixed line.
bool is_flat_json_object(std::string_view s) {
  std::size_t i = 0;
  auto string = [&] {
    if (i >= s.size() || s[i] != '"') return false;
    for (++i; i < s.size(); ++i) {
      const unsigned char c = static_cast<unsigned char>(s[i]);
      if (c == '"') return ++i, true;
      if (c < 0x20) return false;
      if (c == '\\') {
        if (++i >= s.size()) return false;
        if (s[i] == 'u') {
          if (i + 4 >= s.size()) return false;
          for (int k = 1; k <= 4; ++k)
            if (!std::isxdigit(static_cast<unsigned char>(s[i + k]))) return false;
          i += 4;
        } else if (std::string_view("\"\\/bfnrt").find(s[i]) == std::string_view::npos) {
          return false;
        }
      }
    }
    return false;
  };
  auto value = [&] {
    if (i < s.size() && s[i] == '"') return string();
    for (std::string_view lit : {"true", "false", "null"})
      if (s.substr(i, lit.size()) == lit) return i += lit.size(), true;
    static const std::regex number(R"(^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?)");
    std::match_results<std::string_view::const_iterator> m;
    if (!std::regex_search(s.begin() + static_cast<std::ptrdiff_t>(i), s.end(), m, number)) return false;
    i += static_cast<std::size_t>(m.length(0));
    return true;
  };
  if (s.empty() || s[i++] != '{') return false;
  for (bool first = true;; first = false) {
    if (i < s.size() && s[i] == '}') return !first ? false : i + 1 == s.size();
    if (!string() || i >= s.size() || s[i++] != ':' || !value()) return false;
    if (i < s.size() && s[i] == '}') return i + 1 == s.size();
    if (i >= s.size() || s[i++] != ',') return false;
  }
}

std::vector<std::string> read_lines(const fs::path& p) {
  std::ifstream f(p);
  std::vector<std::string> out;
  for (std::string line; std::getline(f, line);) out.push_back(line);
  return out;
}

std::string file_text(const fs::path& p) {
  std::ifstream f(p);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// RFC 3339, UTC, microseconds, formatted independently of log.cpp.
std::string utc_now() {
  const auto now = std::chrono::system_clock::now();
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count();
  const std::time_t secs = us / 1'000'000;
  std::tm tm;
  gmtime_r(&secs, &tm);
  char out[64];
  std::snprintf(out, sizeof out, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(us % 1'000'000));
  return out;
}

std::string ts_of(const std::string& line) {
  static const std::regex ts(R"re(^\{"ts":"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z)")re");
  std::smatch m;
  return std::regex_search(line, m, ts) ? m[1].str() : "";
}

// Every test leaves the log as a process starts: stdout, no writer, defaults.
class LogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/weir-log-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    set_level(Level::debug);
  }
  void TearDown() override {
    set_writer_paused_for_test(false);
    flush_and_stop();
    set_queue_limit_bytes(kDefaultQueueLimitBytes);
    open_output("stdout");
    set_level(Level::info);
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  void use_file(const fs::path& p) {
    std::string error;
    ASSERT_TRUE(open_output(p.string(), &error)) << error;
  }
  fs::path dir_;
};

// ------------------------------------------------------------------ format

TEST_F(LogTest, LinesAreFlatJsonWithMicrosecondUtcTimestampFirst) {
  const fs::path file = dir_ / "weir.log";
  use_file(file);
  const std::string before = utc_now();
  Line(Level::info, "sync").str("s", "a\"b\\c\nd\x01").num("n", -3).unum("u", 18446744073709551615ull)
      .boolean("b", true).dbl("d", 0.25).dbl("big", 1e300).dbl("nan", std::nan("")).dbl("inf", -HUGE_VAL);
  start();
  Line(Level::warn, "queued").dbl("third", 1.0 / 3);
  flush_and_stop();
  const std::string after = utc_now();

  const auto lines = read_lines(file);
  ASSERT_EQ(lines.size(), 2u);
  static const std::regex head(
      R"re(^\{"ts":"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z","level":"(info|warn)","event":"(sync|queued)"[,}])re");
  for (const auto& line : lines) {
    EXPECT_TRUE(std::regex_search(line, head)) << line;
    EXPECT_TRUE(is_flat_json_object(line)) << line;
    // Fixed-width RFC 3339 UTC sorts as time does: the stamp is "now", in UTC.
    EXPECT_LE(before, ts_of(line)) << line;
    EXPECT_GE(after, ts_of(line)) << line;
  }
  EXPECT_NE(lines[0].find(R"(,"s":"a\"b\\c\nd\u0001","n":-3,"u":18446744073709551615,"b":true,)"
                          R"("d":0.25,"big":1e+300,"nan":null,"inf":null})"),
            std::string::npos)
      << lines[0];
  EXPECT_NE(lines[1].find(R"("level":"warn","event":"queued","third":0.3333333333333333})"), std::string::npos)
      << lines[1];
}

TEST_F(LogTest, TheValidatorRejectsBrokenLines) {
  // The checks below are only as good as this.
  EXPECT_TRUE(is_flat_json_object(R"({"a":"x","b":-1.5e+3,"c":null})"));
  EXPECT_FALSE(is_flat_json_object(R"({"a":"x","b":)"));                    // split
  EXPECT_FALSE(is_flat_json_object(R"({"a":"x"{"ts":"y"})"));               // mixed
  EXPECT_FALSE(is_flat_json_object(R"({"a":"x"}{"a":"y"})"));               // two on one line
  EXPECT_FALSE(is_flat_json_object(R"({"a":inf})"));
  EXPECT_FALSE(is_flat_json_object("{\"a\":\"x\ny\"}"));
}

TEST_F(LogTest, DisabledLevelsWriteNothing) {
  const fs::path file = dir_ / "weir.log";
  use_file(file);
  set_level(Level::warn);
  Line(Level::info, "hidden").str("k", "v").dbl("d", 1);
  Line(Level::error, "shown");
  EXPECT_EQ(read_lines(file).size(), 1u);
}

// ------------------------------------------------------------------ output

TEST_F(LogTest, OpenOutputAppendsWithMode0640) {
  const fs::path file = dir_ / "weir.log";
  { std::ofstream(file) << "kept\n"; }
  fs::permissions(file, fs::perms::owner_read | fs::perms::owner_write);
  use_file(file);
  Line(Level::info, "appended");
  const auto lines = read_lines(file);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0], "kept");

  const fs::path created = dir_ / "new.log";
  const mode_t old_mask = ::umask(0);
  const bool opened = open_output(created.string());
  ::umask(old_mask);
  ASSERT_TRUE(opened);
  struct stat st;
  ASSERT_EQ(::stat(created.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0640u);
}

TEST_F(LogTest, OpenOutputFailureSaysWhyAndKeepsTheOldOutput) {
  const fs::path file = dir_ / "weir.log";
  use_file(file);
  std::string error;
  const std::string missing = (dir_ / "no-such-dir" / "weir.log").string();
  EXPECT_FALSE(open_output(missing, &error));
  EXPECT_EQ(error, "cannot open " + missing + ": No such file or directory");
  EXPECT_FALSE(open_output(dir_.string(), &error));  // a directory
  EXPECT_NE(error.find("Is a directory"), std::string::npos) << error;
  Line(Level::info, "still_here");
  const auto lines = read_lines(file);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_NE(lines[0].find("still_here"), std::string::npos);
}

// ------------------------------------------------------------------ reopen

TEST_F(LogTest, ReopenAfterRenameSendsNewLinesToANewFile) {
  const fs::path file = dir_ / "weir.log";
  const fs::path rotated = dir_ / "weir.log.1";
  use_file(file);
  start();
  for (int i = 0; i < 100; ++i) Line(Level::info, "old").num("i", i);
  fs::rename(file, rotated);  // the writer may or may not have written them yet
  reopen();
  reopen();  // a second signal before the writer got to the first
  for (int i = 0; i < 50; ++i) Line(Level::info, "new").num("i", i);
  flush_and_stop();

  const auto old_lines = read_lines(rotated);
  const auto new_lines = read_lines(file);
  ASSERT_EQ(old_lines.size(), 100u);
  ASSERT_EQ(new_lines.size(), 50u);
  for (const auto& l : old_lines) EXPECT_NE(l.find("\"event\":\"old\""), std::string::npos) << l;
  for (const auto& l : new_lines) EXPECT_NE(l.find("\"event\":\"new\""), std::string::npos) << l;
}

TEST_F(LogTest, ReopenWithoutTheWriterHappensAtOnce) {
  const fs::path file = dir_ / "weir.log";
  use_file(file);
  Line(Level::info, "old");
  fs::rename(file, dir_ / "weir.log.1");
  reopen();
  Line(Level::info, "new");
  EXPECT_EQ(read_lines(dir_ / "weir.log.1").size(), 1u);
  ASSERT_EQ(read_lines(file).size(), 1u);
  EXPECT_NE(read_lines(file)[0].find("\"new\""), std::string::npos);
}

TEST_F(LogTest, ReopenFailureKeepsTheOldFileAndLogsWhy) {
  fs::create_directory(dir_ / "logs");
  const fs::path file = dir_ / "logs" / "weir.log";
  use_file(file);
  start();
  Line(Level::info, "before");
  fs::rename(dir_ / "logs", dir_ / "gone");  // the path can no longer be created
  reopen();
  Line(Level::info, "after");
  flush_and_stop();

  EXPECT_FALSE(fs::exists(file));
  const auto lines = read_lines(dir_ / "gone" / "weir.log");
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_NE(lines[0].find("\"before\""), std::string::npos);
  EXPECT_NE(lines[1].find(R"("level":"error","event":"log_reopen_failed","path":")" + file.string() +
                          R"(","error":"No such file or directory"})"),
            std::string::npos)
      << lines[1];
  EXPECT_TRUE(is_flat_json_object(lines[1])) << lines[1];
  EXPECT_NE(lines[2].find("\"after\""), std::string::npos);
}

TEST_F(LogTest, ReopenOnStdoutDoesNothing) {
  reopen();  // must not close or replace descriptor 1
  EXPECT_NE(::fcntl(STDOUT_FILENO, F_GETFD), -1);
}

// ------------------------------------------------------------------ queue

TEST_F(LogTest, AFullQueueDropsLinesAndCountsEachOne) {
  const fs::path file = dir_ / "weir.log";
  use_file(file);
  Line(Level::info, "probe").num("i", 0);  // synchronous: measures one line
  const std::size_t line_bytes = file_text(file).size();
  ASSERT_GT(line_bytes, 0u);
  fs::remove(file);
  use_file(file);

  // Room for 10 lines and a half: the 11th does not fit.
  set_queue_limit_bytes(10 * line_bytes + line_bytes / 2);
  set_writer_paused_for_test(true);
  start();
  const std::uint64_t dropped_before = dropped();
  for (int i = 0; i < 25; ++i) Line(Level::info, "probe").num("i", i % 10);  // same length each
  EXPECT_EQ(dropped() - dropped_before, 15u);
  EXPECT_EQ(read_lines(file).size(), 0u);  // paused: nothing written yet

  set_writer_paused_for_test(false);
  flush_and_stop();
  auto lines = read_lines(file);
  ASSERT_EQ(lines.size(), 10u);
  for (int i = 0; i < 10; ++i) EXPECT_NE(lines[i].find(",\"i\":" + std::to_string(i) + "}"), std::string::npos);

  // Written lines give their room back.
  start();
  set_writer_paused_for_test(true);
  for (int i = 0; i < 10; ++i) Line(Level::info, "probe").num("i", i);
  EXPECT_EQ(dropped() - dropped_before, 15u);
  set_writer_paused_for_test(false);
  flush_and_stop();
  EXPECT_EQ(read_lines(file).size(), 20u);
}

TEST_F(LogTest, ProducersNeverWaitForAStuckOutput) {
  // A FIFO nobody reads from, with the smallest pipe buffer: the writer
  // blocks in write(2) after a few lines, and the queue fills up behind it.
  const fs::path fifo = dir_ / "fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const int rd = ::open(fifo.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  ASSERT_GE(rd, 0);
  ASSERT_EQ(::fcntl(rd, F_SETFL, 0), 0);
  ::fcntl(rd, F_SETPIPE_SZ, 4096);
  use_file(fifo);
  set_queue_limit_bytes(16 * 1024);
  start();

  constexpr int kThreads = 4, kLines = 2000;
  const std::uint64_t dropped_before = dropped();
  std::atomic<int> done{0};
  std::vector<std::thread> producers;
  for (int t = 0; t < kThreads; ++t)
    producers.emplace_back([t, &done] {
      for (int i = 0; i < kLines; ++i) Line(Level::info, "flood").num("t", t).num("i", i).str("pad", "x");
      done.fetch_add(1);
    });
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (done.load() < kThreads && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  // Checked before anyone reads the FIFO: a producer that waited on the
  // output would still be waiting.
  EXPECT_EQ(done.load(), kThreads) << "a producer blocked on a full output";
  const std::uint64_t lost = dropped() - dropped_before;
  EXPECT_GT(lost, 0u);

  std::string received;
  std::thread reader([&] {
    char buf[65536];
    for (ssize_t n; (n = ::read(rd, buf, sizeof buf)) > 0;) received.append(buf, static_cast<std::size_t>(n));
  });
  for (auto& p : producers) p.join();
  flush_and_stop();
  open_output("stdout");  // closes the log's end of the FIFO: the reader sees EOF
  reader.join();
  ::close(rd);

  std::size_t lines = 0;
  std::istringstream in(received);
  for (std::string line; std::getline(in, line); ++lines)
    ASSERT_TRUE(is_flat_json_object(line)) << "split or mixed line: " << line;
  EXPECT_EQ(received.empty() ? '\n' : received.back(), '\n');
  EXPECT_EQ(lines + lost, static_cast<std::uint64_t>(kThreads * kLines));
  EXPECT_EQ(dropped() - dropped_before, lost);  // nothing lost after the producers stopped
}

// ------------------------------------------------------------------ start, stop

TEST_F(LogTest, FlushAndStopWritesEveryQueuedLine) {
  const fs::path file = dir_ / "weir.log";
  use_file(file);
  start();
  start();  // idempotent
  // Paused, so every line is still queued when flush_and_stop() is called
  // (1 MB, well under the queue's limit): it must drain, not just stop.
  set_writer_paused_for_test(true);
  constexpr int kThreads = 4, kLines = 2500;
  const std::uint64_t dropped_before = dropped();
  std::vector<std::thread> producers;
  for (int t = 0; t < kThreads; ++t)
    producers.emplace_back([t] {
      for (int i = 0; i < kLines; ++i) Line(Level::info, "line").num("t", t).num("i", i);
    });
  for (auto& p : producers) p.join();
  EXPECT_EQ(read_lines(file).size(), 0u);
  flush_and_stop();

  EXPECT_EQ(dropped(), dropped_before);
  const auto lines = read_lines(file);
  ASSERT_EQ(lines.size(), static_cast<std::size_t>(kThreads * kLines));
  std::vector<int> next(kThreads, 0);  // each thread's lines in its order
  static const std::regex fields(R"("t":(\d+),"i":(\d+)\}$)");
  for (const auto& line : lines) {
    ASSERT_TRUE(is_flat_json_object(line)) << line;
    std::smatch m;
    ASSERT_TRUE(std::regex_search(line, m, fields)) << line;
    const int t = std::stoi(m[1].str());
    ASSERT_LT(t, kThreads);
    EXPECT_EQ(std::stoi(m[2].str()), next[t]++) << line;
  }
}

TEST_F(LogTest, StopWithoutStartAndAfterStopIsHarmless) {
  const fs::path file = dir_ / "weir.log";
  use_file(file);
  flush_and_stop();  // never started
  start();
  Line(Level::info, "queued");
  flush_and_stop();
  flush_and_stop();  // twice
  Line(Level::info, "after_stop");  // written at once again: no flush needed
  const auto lines = read_lines(file);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_NE(lines[1].find("after_stop"), std::string::npos);
}

// ------------------------------------------------------------------ config

TEST(LogConfig, OutputDefaultsToStdoutAndResolvesRelativePaths) {
  constexpr const char* kMinimal = "listeners:\n  - port: 8080\nroutes:\n  - upstreams: echo\n";
  EXPECT_EQ(config::load_string(kMinimal, "t.yaml").log_output, "stdout");
  EXPECT_EQ(config::load_string(std::string(kMinimal) + "log: {output: stdout}\n", "t.yaml").log_output, "stdout");
  EXPECT_EQ(config::load_string(std::string(kMinimal) + "log: {output: /var/log/weir.log}\n", "t.yaml").log_output,
            "/var/log/weir.log");

  char tmpl[] = "/tmp/weir-log-config-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const fs::path dir = tmpl;
  { std::ofstream(dir / "weir.yaml") << kMinimal << "log:\n  level: warn\n  output: logs/weir.log\n"; }
  const config::Config c = config::load_file((dir / "weir.yaml").string());
  EXPECT_EQ(c.log_output, (dir / "logs" / "weir.log").string());
  EXPECT_EQ(c.log_level, "warn");
  fs::remove_all(dir);
}

TEST(LogConfig, BadOutputIsRefusedWithItsPosition) {
  constexpr const char* kMinimal = "listeners:\n  - port: 8080\nroutes:\n  - upstreams: echo\n";
  auto error_of = [&](const std::string& tail) -> std::string {
    try {
      config::load_string(std::string(kMinimal) + tail, "t.yaml");
    } catch (const config::ConfigError& e) {
      return e.what();
    }
    return "no error";
  };
  EXPECT_EQ(error_of("log:\n  output: ''\n"), "t.yaml:6:11: 'log.output' must not be empty");
  EXPECT_EQ(error_of("log:\n  output: [a]\n"),
            "t.yaml:6:11: 'log.output' must be stdout or a file path, got a list");
  EXPECT_NE(error_of("log: {outptu: x}\n").find("unknown key 'outptu' in log (did you mean 'output'?)"),
            std::string::npos);
}

}  // namespace
}  // namespace weir::log
