#pragma once
// What a session holds only between accept and the 101 (freed when the relay
// starts). Private to src/proxy.

#include <boost/asio/ip/tcp.hpp>

#include <string>
#include <vector>

#include "http/head.h"
#include "proxy/session.h"

namespace weir::proxy {

struct Session::Handshake {
  explicit Handshake(boost::asio::io_context& io) : resolver(io) {}
  std::string in;               // client request head (+ any early frames)
  http::Head req;
  std::size_t route_index = 0;
  std::uint32_t first_upstream = 0;
  std::size_t attempts = 0;
  std::string last_error;
  tcp::resolver resolver;
  std::vector<tcp::endpoint> endpoints;
  std::size_t endpoint_index = 0;
  std::string out;              // request to the backend, then response to the client
  std::string up_in;            // backend response head (+ any early frames)
  http::Head resp;
  std::uint8_t allowed_rsv = 0;
};

}  // namespace weir::proxy
