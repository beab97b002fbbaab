// weir: command line. Everything else is in the library.

#include <CLI/CLI.hpp>

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>

#include "app/server.h"
#include "config/config.h"
#include "net/tls.h"
#include "observability/log.h"

namespace {

int check_config(const std::string& path) {
  try {
    auto cfg = weir::config::load_file(path);
    weir::net::build_tls(cfg);  // reads and checks every certificate and key
    std::printf("%s: ok (%zu listener(s), %zu route(s))\n", path.c_str(), cfg.listeners.size(),
                cfg.routes.size());
    return 0;
  } catch (const weir::config::ConfigError& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}

// The running process's id in a file, for `weir reload` (and init scripts),
// removed again when it exits normally.
class PidFile {
 public:
  explicit PidFile(std::string path) : path_(std::move(path)) {
    if (path_.empty()) return;
    std::ofstream f(path_, std::ios::trunc);
    f << ::getpid() << "\n";
    if (!f) {
      std::fprintf(stderr, "weir: cannot write pid file %s: %s\n", path_.c_str(), std::strerror(errno));
      path_.clear();
    }
  }
  ~PidFile() {
    if (!path_.empty()) ::unlink(path_.c_str());
  }
  PidFile(const PidFile&) = delete;
  PidFile& operator=(const PidFile&) = delete;

 private:
  std::string path_;
};

// weir reload: check the config first when given (as `nginx -t` before a
// reload), then SIGHUP the process named by the pid file.
int reload(const std::string& pid_path, const std::string& config_path) {
  if (!config_path.empty() && check_config(config_path) != 0) {
    std::fprintf(stderr, "weir reload: not signalled: the configuration is invalid (the running one stays)\n");
    return 1;
  }
  std::ifstream f(pid_path);
  long pid = 0;
  if (!(f >> pid) || pid <= 1) {
    std::fprintf(stderr, "weir reload: no process id in %s (is weir running with --pid-file %s?)\n", pid_path.c_str(),
                 pid_path.c_str());
    return 1;
  }
  if (::kill(static_cast<pid_t>(pid), SIGHUP) != 0) {
    std::fprintf(stderr, "weir reload: cannot signal process %ld from %s: %s\n", pid, pid_path.c_str(),
                 std::strerror(errno));
    return 1;
  }
  std::printf("weir reload: sent SIGHUP to process %ld; its log says config_reload or config_reload_failed\n", pid);
  return 0;
}

// From log::start() until the process exits, lines sit in the log's queue:
// every way out of run() must drain it, or the last lines (the reason for an
// exit, say) are lost.
class LogWriter {
 public:
  LogWriter() { weir::log::start(); }
  ~LogWriter() { weir::log::flush_and_stop(); }
  LogWriter(const LogWriter&) = delete;
  LogWriter& operator=(const LogWriter&) = delete;
};

int run(std::shared_ptr<const weir::config::Config> cfg) {
  weir::log::Level level;
  if (weir::log::parse_level(cfg->log_level, level)) weir::log::set_level(level);
  std::string error;
  if (!weir::log::open_output(cfg->log_output, &error)) {
    std::fprintf(stderr, "%s: log.output: %s\n", cfg->source.c_str(), error.c_str());
    return 1;
  }
  LogWriter writer;
  return weir::app::run_server(std::move(cfg));
}

int run_file(const std::string& path, const std::string& pid_path) {
  try {
    auto cfg = std::make_shared<const weir::config::Config>(weir::config::load_file(path));
    PidFile pid(pid_path);
    return run(std::move(cfg));
  } catch (const weir::config::ConfigError& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}

int demo(std::uint16_t port) {
  auto cfg = std::make_shared<const weir::config::Config>(weir::config::demo_config(port));
  if (port == 0) {
    std::fprintf(stderr, "weir demo: listening on a free port: see the \"listening\" line below.\n");
    return run(std::move(cfg));
  }
  std::fprintf(stderr,
               "weir demo: a WebSocket proxy on ws://127.0.0.1:%u in front of the built-in echo upstream.\n"
               "Try it from another terminal:\n"
               "  /usr/bin/python3 -m websockets ws://127.0.0.1:%u/echo\n"
               "then type a line: it comes back through Weir. Logs (JSON lines) follow on stdout.\n"
               "Stop with Ctrl-C.\n",
               port, port);
  return run(std::move(cfg));
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Weir: a frame-aware WebSocket gateway"};
  app.set_version_flag("-V,--version", std::string("weir ") + WEIR_VERSION);
  std::string config_path;
  app.add_option("-c,--config", config_path, "configuration file (YAML); same as `weir run -c`");

  auto* run_cmd = app.add_subcommand("run", "run with a configuration file");
  std::string run_path, pid_path;
  run_cmd->add_option("-c,--config", run_path, "configuration file (YAML)")->required();
  run_cmd->add_option("--pid-file", pid_path, "write the process id here (for `weir reload`)");

  auto* reload_cmd = app.add_subcommand("reload", "make a running weir reload its configuration (SIGHUP)");
  std::string reload_pid = "/run/weir.pid", reload_config;
  reload_cmd->add_option("--pid-file", reload_pid, "the running weir's pid file")->capture_default_str();
  reload_cmd->add_option("-c,--config", reload_config, "check this configuration first; do not signal if invalid");

  auto* check_cmd = app.add_subcommand("check-config", "validate a configuration file and exit");
  std::string check_path;
  check_cmd->add_option("-c,--config", check_path, "configuration file (YAML)")->required();

  auto* demo_cmd = app.add_subcommand("demo", "run a demo: 127.0.0.1:8080 in front of the echo upstream");
  std::uint16_t demo_port = 8080;
  demo_cmd->add_option("-p,--port", demo_port, "listen port");

  CLI11_PARSE(app, argc, argv);

  if (*run_cmd) return run_file(run_path, pid_path);
  if (*reload_cmd) return reload(reload_pid, reload_config);
  if (*check_cmd) return check_config(check_path);
  if (*demo_cmd) return demo(demo_port);
  if (!config_path.empty()) return run_file(config_path, "");
  std::cout << app.help();
  return 2;
}
