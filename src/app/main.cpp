// weir: command line. Everything else is in the library.

#include <CLI/CLI.hpp>

#include <cstdio>
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

int run(std::shared_ptr<const weir::config::Config> cfg) {
  weir::log::Level level;
  if (weir::log::parse_level(cfg->log_level, level)) weir::log::set_level(level);
  return weir::app::run_server(std::move(cfg));
}

int run_file(const std::string& path) {
  try {
    return run(std::make_shared<const weir::config::Config>(weir::config::load_file(path)));
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
  std::string run_path;
  run_cmd->add_option("-c,--config", run_path, "configuration file (YAML)")->required();

  auto* check_cmd = app.add_subcommand("check-config", "validate a configuration file and exit");
  std::string check_path;
  check_cmd->add_option("-c,--config", check_path, "configuration file (YAML)")->required();

  auto* demo_cmd = app.add_subcommand("demo", "run a demo: 127.0.0.1:8080 in front of the echo upstream");
  std::uint16_t demo_port = 8080;
  demo_cmd->add_option("-p,--port", demo_port, "listen port");

  CLI11_PARSE(app, argc, argv);

  if (*run_cmd) return run_file(run_path);
  if (*check_cmd) return check_config(check_path);
  if (*demo_cmd) return demo(demo_port);
  if (!config_path.empty()) return run_file(config_path);
  std::cout << app.help();
  return 2;
}
