#include "app/process_metrics.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>

namespace weir::app {

namespace {

// Seconds since the epoch at boot (btime of /proc/stat).
double boot_time() {
  std::ifstream in("/proc/stat");
  std::string key;
  double v = 0;
  while (in >> key) {
    if (key == "btime") {
      in >> v;
      return v;
    }
    in.ignore(1 << 20, '\n');
  }
  return 0;
}

}  // namespace

void add_process_metrics(std::vector<obs::Registry::Sample>& out) {
  const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
  const double page = static_cast<double>(::sysconf(_SC_PAGESIZE));
  std::ifstream in("/proc/self/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // Fields after the command name (which may hold spaces and parentheses).
  const auto close = stat.rfind(')');
  if (close != std::string::npos) {
    std::istringstream f(stat.substr(close + 2));
    std::string field[40];
    for (auto& x : field) f >> x;
    // field[0] is stat's 3rd field (state): utime is the 14th, stime 15th,
    // starttime 22nd, vsize 23rd, rss 24th.
    const double utime = std::stod(field[11]), stime = std::stod(field[12]);
    const double start = std::stod(field[19]) / ticks;
    out.push_back({"process_cpu_seconds_total", "User and system CPU time in seconds", "counter", {},
                   (utime + stime) / ticks});
    out.push_back({"process_start_time_seconds", "Start time of the process since the epoch in seconds", "gauge",
                   {}, boot_time() + start});
    out.push_back({"process_virtual_memory_bytes", "Virtual memory size in bytes", "gauge", {}, std::stod(field[20])});
    out.push_back({"process_resident_memory_bytes", "Resident memory size in bytes", "gauge", {},
                   std::stod(field[21]) * page});
  }
  double fds = 0;
  if (DIR* d = ::opendir("/proc/self/fd")) {
    while (const dirent* e = ::readdir(d))
      if (e->d_name[0] != '.') ++fds;
    ::closedir(d);
    fds -= 1;  // the directory's own descriptor
  }
  out.push_back({"process_open_fds", "Open file descriptors", "gauge", {}, fds});
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    out.push_back({"process_max_fds", "Maximum number of open file descriptors", "gauge", {},
                   static_cast<double>(rl.rlim_cur)});
  }
}

}  // namespace weir::app
