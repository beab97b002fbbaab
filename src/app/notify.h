#pragma once
// The service manager's notify protocol (sd_notify(3), systemd's Type=notify):
// READY=1 once the listeners are bound, RELOADING=1 then READY=1 around a
// reload, STOPPING=1 when the drain begins, STATUS= with the connection count.
// Each call is a no-op when NOTIFY_SOCKET is not set (not run by systemd).

#include <cstddef>

namespace weir::app {

void notify_ready(std::size_t connections);
void notify_reloading();
void notify_stopping(std::size_t connections);
void notify_status(std::size_t connections);

}  // namespace weir::app
