#pragma once
// A small HTTP/1.1 server for the admin listener (Beast's parser and
// serializer): keep-alive, one request at a time per connection, bounded
// request size and idle time. It runs on one io_context (the main thread's,
// never a worker's) and hands each request to a handler, which answers
// through Reply, at once or later (after asking the workers).

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace boost::asio {
class io_context;
}

namespace weir::admin {

struct Request {
  std::string method;         // "GET", "POST", ...
  std::string path;           // target without the query
  std::string query;          // after '?', raw
  std::string authorization;  // the header's value, if any
  std::string body;
};

struct Response {
  unsigned status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

// Call once; later calls do nothing. Safe to call after the connection is
// gone (the answer is dropped).
using Reply = std::function<void(Response)>;
using Handler = std::function<void(const Request&, Reply)>;

class HttpServer {
 public:
  // Binds address:port (port 0: any); throws std::system_error.
  HttpServer(boost::asio::io_context& io, const std::string& address, std::uint16_t port, Handler handler);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  std::uint16_t port() const;
  void start();
  // Stops accepting and closes every connection.
  void stop();

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

// The value of a query parameter ("" when absent), percent-decoded.
std::string query_param(const std::string& query, const std::string& name);

}  // namespace weir::admin
