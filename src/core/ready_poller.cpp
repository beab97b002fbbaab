#include "core/ready_poller.h"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>

#include <dirent.h>
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <system_error>

#include "core/clock.h"

namespace weir::core {

namespace {

// epoll data of the two descriptors that are not sockets (targets are
// pointers, never this small).
constexpr std::uint64_t kAsioTag = 0;
constexpr std::uint64_t kNotifyTag = 2;
constexpr std::uint64_t kTimerTag = 4;
// While a foreign completion is expected: poll Asio at least this often.
constexpr int kForeignPollMs = 5;

// Asio keeps its epoll descriptor to itself. Find it as the eventpoll
// descriptor whose /proc fdinfo lists a probe pipe registered through Asio.
int find_asio_epoll_fd(boost::asio::io_context& io) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC | O_NONBLOCK) != 0) return -1;
  int found = -1;
  {
    boost::asio::posix::stream_descriptor probe(io);
    boost::system::error_code ec;
    probe.assign(p[0], ec);  // registers p[0] in Asio's epoll set
    if (ec) ::close(p[0]);
    DIR* dir = ec ? nullptr : ::opendir("/proc/self/fd");
    while (dir != nullptr && found < 0) {
      const dirent* e = ::readdir(dir);
      if (e == nullptr) break;
      const int fd = std::atoi(e->d_name);
      char link[64];
      const std::string path = std::string("/proc/self/fd/") + e->d_name;
      const ssize_t n = ::readlink(path.c_str(), link, sizeof link - 1);
      if (n <= 0) continue;
      link[n] = '\0';
      if (std::strcmp(link, "anon_inode:[eventpoll]") != 0) continue;
      std::FILE* f = std::fopen((std::string("/proc/self/fdinfo/") + e->d_name).c_str(), "r");
      if (f == nullptr) continue;
      char line[256];
      while (std::fgets(line, sizeof line, f) != nullptr) {
        int tfd = -1;
        if (std::sscanf(line, "tfd: %d", &tfd) == 1 && tfd == p[0]) {
          found = fd;
          break;
        }
      }
      std::fclose(f);
    }
    if (dir != nullptr) ::closedir(dir);
  }  // closes p[0]
  ::close(p[1]);
  return found;
}

}  // namespace

ReadyPoller::ReadyPoller(boost::asio::io_context& io, TimerWheel& wheel) : io_(io), wheel_(wheel) {
  epfd_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (epfd_ < 0) throw std::system_error(errno, std::generic_category(), "epoll_create1");
  asio_fd_ = find_asio_epoll_fd(io_);
  event_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  timer_fd_ = ::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
  epoll_event ev{};
  ev.events = EPOLLIN;  // level-triggered: ready until io_.poll() has drained it
  ev.data.u64 = kAsioTag;
  epoll_event nev{};
  nev.events = EPOLLIN;
  nev.data.u64 = kNotifyTag;
  epoll_event tev{};
  tev.events = EPOLLIN;
  tev.data.u64 = kTimerTag;
  if (event_fd_ < 0 || timer_fd_ < 0 || ::epoll_ctl(epfd_, EPOLL_CTL_ADD, event_fd_, &nev) != 0 ||
      ::epoll_ctl(epfd_, EPOLL_CTL_ADD, timer_fd_, &tev) != 0) {
    const int e = errno;
    if (event_fd_ >= 0) ::close(event_fd_);
    if (timer_fd_ >= 0) ::close(timer_fd_);
    ::close(epfd_);
    throw std::system_error(e, std::generic_category(), "cannot set up the worker loop");
  }
  if (asio_fd_ < 0 || ::epoll_ctl(epfd_, EPOLL_CTL_ADD, asio_fd_, &ev) != 0) {
    // No /proc (or an Asio that hides its descriptor elsewhere): still
    // correct, by polling Asio every few ms as for a DNS answer.
    asio_fd_ = -1;
    foreign_ = 1;
  }
}

ReadyPoller::~ReadyPoller() {
  ::close(timer_fd_);
  ::close(event_fd_);
  ::close(epfd_);
}

void ReadyPoller::notify() {
  const std::uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(event_fd_, &one, sizeof one);
}

bool ReadyPoller::add(int fd, ReadyTarget* target, unsigned tag, bool level) {
  epoll_event ev{};
  ev.events = level ? EPOLLIN : EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
  ev.data.u64 = reinterpret_cast<std::uintptr_t>(target) | (tag & 1u);
  return ::epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) == 0;
}

void ReadyPoller::remove(int fd) {
  epoll_event ev{};
  ::epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, &ev);
}

void ReadyPoller::arm_timer() {
  // Absolute CLOCK_MONOTONIC: the coarse clock is the same clock read at the
  // last tick, so when this fires wake_ms_ has passed on both.
  itimerspec its{};
  its.it_value.tv_sec = static_cast<time_t>(wake_ms_ / 1000);
  its.it_value.tv_nsec = static_cast<long>(wake_ms_ % 1000) * 1'000'000;
  if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0) its.it_value.tv_nsec = 1;  // 0 would disarm
  if (::timerfd_settime(timer_fd_, TFD_TIMER_ABSTIME, &its, nullptr) == 0) armed_ms_ = wake_ms_;
}

void ReadyPoller::run_timers() {
  const std::int64_t now = std::max(coarse_now_ms(), wake_ms_);
  wake_ms_ = -1;
  wheel_.advance(now);
  const std::int64_t next = wheel_.next_wakeup_ms();
  if (next >= 0) wake_by(next);
}

void ReadyPoller::run(const std::function<void(const char*)>& on_error) {
  auto guard = boost::asio::make_work_guard(io_);  // poll() must not stop io_ when idle
  stopped_ = false;
  epoll_event evs[256];
  while (!stopped_) {
    // Deadlines wake the loop through the timer descriptor, armed only when
    // the earliest one moves earlier, so a wait is epoll_wait(-1): a timeout
    // would start and cancel a kernel hrtimer around every sleep.
    if (wake_ms_ >= 0 && (armed_ms_ < 0 || wake_ms_ < armed_ms_)) arm_timer();
    int timeout = (!deferred_.empty() || asio_ready_) ? 0 : -1;
    if (foreign_ > 0 && timeout < 0) timeout = kForeignPollMs;
    const int n = ::epoll_wait(epfd_, evs, 256, timeout);
    if (foreign_ > 0) asio_ready_ = true;
    bool fired = false;  // the timer descriptor expired: its deadline has passed
    for (int i = 0; i < n; ++i) {
      const std::uint64_t u = evs[i].data.u64;
      if (u == kAsioTag || u == kNotifyTag || u == kTimerTag) {
        std::uint64_t count;
        if (u == kTimerTag) {
          [[maybe_unused]] auto r = ::read(timer_fd_, &count, sizeof count);
          fired = armed_ms_ >= 0 && wake_ms_ >= 0 && wake_ms_ <= armed_ms_;
          armed_ms_ = -1;
          continue;
        }
        if (u == kNotifyTag) {
          [[maybe_unused]] auto r = ::read(event_fd_, &count, sizeof count);
        }
        asio_ready_ = true;
        continue;
      }
      auto* target = reinterpret_cast<ReadyTarget*>(static_cast<std::uintptr_t>(u & ~std::uint64_t{1}));
      // Each event on its own: edges are not reported twice, so one that
      // throws must not cost the rest of the batch theirs.
      try {
        target->on_ready(static_cast<unsigned>(u & 1u), evs[i].events);
      } catch (const std::exception& e) {
        on_error(e.what());
      }
    }
    // A deadline passed: the expired timer proves it even if the coarse
    // clock has not caught up yet.
    if (wake_ms_ >= 0 && (fired || coarse_now_ms() >= wake_ms_)) {
      try {
        run_timers();
      } catch (const std::exception& e) {
        on_error(e.what());
        // What the throwing entry left in the wheel still needs a wake-up.
        if (const std::int64_t next = wheel_.next_wakeup_ms(); next >= 0) wake_by(next);
      }
    }
    if (asio_ready_) {
      asio_ready_ = false;
      try {
        io_.poll();
      } catch (const std::exception& e) {
        on_error(e.what());
      }
    }
    // Deferred work of this round; what it defers runs next round.
    running_.swap(deferred_);
    for (std::size_t i = 0; i < running_.size(); ++i) {
      try {
        running_[i]();
      } catch (const std::exception& e) {
        on_error(e.what());
      }
    }
    running_.clear();
  }
}

}  // namespace weir::core
