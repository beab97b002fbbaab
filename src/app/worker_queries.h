#pragma once
// What the admin API asks of every worker (app/server.cpp's admin::Gateway):
// each question is posted to every worker's loop and the answers come back
// on the main thread's io_context, within a deadline of 1 s; a worker that
// has not answered by then is named, not waited for.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "admin/admin_api.h"
#include "core/worker.h"

namespace boost::asio {
class io_context;
}

namespace weir::app {

using Workers = std::vector<std::unique_ptr<core::Worker>>;

// done(the workers that did not run a posted no-op within the deadline).
void probe_workers(Workers& workers, boost::asio::io_context& io, std::function<void(std::vector<unsigned>)> done);
// Every worker's session count and its `first` oldest sessions, described.
void list_sessions(Workers& workers, boost::asio::io_context& io, std::size_t first,
                   std::function<void(admin::Gateway::SessionPage)> done);
// Session `id` (on whichever worker has it) is asked to close; done(found).
void close_session(Workers& workers, boost::asio::io_context& io, std::uint64_t id, std::uint16_t code,
                   std::string reason, std::function<void(bool)> done);

// Every session whose identity (SessionInfo user / token_id) equals sub or
// jti (an empty one matches nothing) is asked to close; done(how many).
void close_identity(Workers& workers, boost::asio::io_context& io, std::string sub, std::string jti,
                    std::uint16_t code, std::string reason, std::function<void(std::size_t)> done);

// Up to `max` relaying sessions on an upstream member (SessionInfo::member),
// at least min_age_ms old, chosen at random, are asked to close; done(how many).
void close_member(Workers& workers, boost::asio::io_context& io, const void* member, std::size_t max,
                  std::int64_t min_age_ms, std::uint16_t code, std::string reason,
                  std::function<void(std::size_t)> done);

}  // namespace weir::app
