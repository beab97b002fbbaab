// weir-bench relay: a bare TCP byte relay, the floor bench/compare measures proxies against.
#pragma once

#include <cstdint>
#include <string>

namespace weir::bench {

// Listens on address:port (0: any free port, printed as {"event":"listening","port":N}) and
// relays every accepted connection to to_host:to_port (IPv4) until SIGINT or SIGTERM.
int run_tcp_relay(const std::string& address, std::uint16_t port, const std::string& to_host,
                  std::uint16_t to_port);

}  // namespace weir::bench
