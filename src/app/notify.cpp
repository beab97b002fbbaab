#include "app/notify.h"

#include <systemd/sd-daemon.h>

#include <ctime>
#include <string>

namespace weir::app {

namespace {

std::string connections_text(std::size_t n) {
  return std::to_string(n) + (n == 1 ? " connection" : " connections");
}

std::string status(std::size_t connections) { return "STATUS=" + connections_text(connections); }

void send(const std::string& state) { sd_notify(0, state.c_str()); }

}  // namespace

void notify_ready(std::size_t connections) { send("READY=1\n" + status(connections)); }

void notify_reloading() {
  // MONOTONIC_USEC lets systemd (Type=notify-reload, v253+) tell this
  // reload from an earlier one; older versions ignore it.
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  const unsigned long long usec =
      static_cast<unsigned long long>(ts.tv_sec) * 1000000ull + static_cast<unsigned long long>(ts.tv_nsec) / 1000ull;
  send("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(usec) + "\nSTATUS=reloading the configuration");
}

void notify_stopping(std::size_t connections) {
  send("STOPPING=1\nSTATUS=draining, " + connections_text(connections));
}

void notify_status(std::size_t connections) { send(status(connections)); }

}  // namespace weir::app
