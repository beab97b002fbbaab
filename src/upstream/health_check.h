#pragma once
// One active health check of one member (docs/configuration.md,
// "health_check"): a TCP connect, an HTTP GET answered with the expected
// status, or a WebSocket handshake followed by a ping answered by its pong.
// Runs on the main thread's io_context; the whole check has `timeout`.

#include <functional>
#include <memory>
#include <string>

#include "config/upstream_group.h"

namespace boost::asio {
class io_context;
}

namespace weir::net {
class TlsClient;
}

namespace weir::upstream {

// done(ok, why it failed) once, on the io_context's thread. tls: for a
// wss:// member, the group's TLS client (its CA, SNI, name check and client
// certificate, as sessions use): http and websocket checks then speak TLS,
// a tcp check completes the TLS handshake too.
void run_health_check(boost::asio::io_context& io, const config::HealthCheck& check, const config::Upstream& member,
                      std::shared_ptr<const net::TlsClient> tls, std::function<void(bool, std::string)> done);

}  // namespace weir::upstream
