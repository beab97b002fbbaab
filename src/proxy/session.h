#pragma once
// A proxied WebSocket session: the client's socket, the upstream's socket, the
// handshake between them and then the relay (two pumps, one per direction).
// Lives on one worker; handlers hold a Ref, so the session dies with its last
// pending operation. Handshake code is in session_handshake.cpp (TLS in
// session_tls.cpp), the relay in relay.cpp, the close logic in
// session_close.cpp, deadlines in session_timers.cpp.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "core/edges.h"
#include "core/ref.h"
#include "core/worker.h"
#include "observability/trace.h"
#include "proxy/leg.h"
#include "proxy/side.h"
#include "proxy/upstream_leg.h"
#include "ws/refragment.h"
#include "ws/scanner.h"

namespace weir::filters {
class SessionFilters;
struct HandshakeVerdict;
struct HandshakeContext;
struct Header;
}  // namespace weir::filters

namespace weir::proxy {
class Runtime;
struct CompiledRoute;
class WorkerGateway;
struct InspectState;
}  // namespace weir::proxy

struct ssl_st;
struct sockaddr;

namespace weir::net {
struct IoResult;
enum class Io : unsigned char;
}  // namespace weir::net

namespace weir::proxy {

// Both sockets are plain non-blocking descriptors in the worker's
// ReadyPoller from the moment they exist (registered once, edge-triggered),
// and the session's deadlines live on the worker's timer wheel: no Asio
// socket or timer objects, no per-wait epoll_ctl, and a small footprint for
// an idle connection.
class Session final : public core::RefCounted,
                      public core::Closable,
                      public core::ReadyTarget,
                      public core::TimerTarget,
                      public UpstreamLeg::Owner {
 public:
  // Takes an accepted client socket (fd, owned from now on; peer: its
  // address) and runs the session to its end under the gateway's current
  // config generation, which it keeps for life. listener: index into that
  // config's listeners (for its TLS settings).
  static void start(WorkerGateway& gateway, int fd, const sockaddr* peer, std::size_t listener = 0);

  void shutdown(std::uint16_t code, std::string_view reason) override;
  // A new generation: if this session's route is gone from it, Close 1012
  // after config.removed_route_grace (of the new generation).
  void on_reload() override;
  bool describe(core::SessionInfo& out) const override;
  std::uint64_t session_id() const override { return id_; }
  void on_ready(unsigned side, std::uint32_t events) override;
  void on_due(std::int64_t now_ms) override;

  // UpstreamLeg::Owner: the upstream leg reports while it opens.
  void upstream_connected() override;
  void upstream_opened(UpstreamOpened outcome) override;
  core::Ref<core::RefCounted> hold() override { return core::Ref<core::RefCounted>(this); }
  void upstream_chosen(std::size_t member) override;

  // Sessions come from a per-thread free list: they are many, all the same
  // size, and long-lived, so they neither fragment the heap around the
  // short-lived handshake buffers nor pay malloc on every connection.
  static void* operator new(std::size_t size);
  static void operator delete(void* p, std::size_t size);

 private:
  enum class Phase : std::uint8_t { proxy_header, tls_handshake, request, filtering, connecting, upstream_handshake, responding, relay, done };

  // A pump's buffer: kHeadroom bytes in front of what is read, for the
  // header a re-fragmented run may need (ws/refragment.h).
  static constexpr std::uint32_t kHeadroom = ws::kRefragHeadroom;

  struct Pump {
    ws::FrameScanner scanner;
    ws::Refragmenter refrag;         // every run written ends between frames (refrag_)
    std::uint8_t* buf = nullptr;     // pooled; only while bytes are held
    std::size_t buf_size = 0;        // its size (>= the route's buffer_bytes)
    std::uint32_t wpos = 0, wend = 0;       // pending write [wpos, wend)
    std::uint32_t keep_from = 0, keep_to = 0;  // unscanned tail (or frames a pause holds) to carry
    std::uint32_t carry = 0;         // carried bytes at buf[kHeadroom..+carry)
    std::string inject;              // our own frames, sent at the next frame boundary
    std::string pending_in;          // bytes read during the handshake, not yet relayed
    std::uint64_t bytes = 0, messages = 0;
    std::uint64_t dropped = 0;       // messages a filter dropped
    std::uint64_t drop_left = 0;     // payload of a dropped frame still to come
    std::int64_t paused_until = 0;   // a filter throttles: no read from this side before then
    bool dropping = false;           // a filter drops the rest of the current message
    bool admit_next = false;         // the first carried frame waited out a pause: forward it
    bool rescan = false;             // scan the carry before reading (after a pause)
    std::uint8_t remask_delta[4] = {0, 0, 0, 0};  // remask: old ^ new key of the current frame
    // The inspecting pump's state (its route has on_message filters), else
    // null: then runs are written from buf as scanned; with it, from its
    // re-framed output (proxy/inspect.h).
    std::unique_ptr<InspectState> ins;
  };

  struct Handshake;

  using Step = void (Session::*)();

  Session(WorkerGateway& gateway, int fd, const sockaddr* peer, std::size_t listener);
  ~Session() override;

  // session_handshake.cpp: a trusted proxy's PROXY protocol header
  void read_proxy_header();
  void after_proxy_header();

  // session_tls.cpp
  void tls_accept();
  void tls_failed(std::string_view reason);
  // Runs next once the client is readable (want_read) or writable (want_write).
  void wait_io(net::Io want, Step next);
  // Writes hs_->out[hs_->out_pos..] to the client, then runs next (even on
  // failure: hs_->io_error is then set).
  void send_out(Step next);
  void continue_send();
  void free_tls();
  void close_fd(Side s);

  // session_handshake.cpp
  void read_request();
  bool on_request_bytes();
  void route_and_connect();
  void on_filters_done(filters::HandshakeVerdict v);
  void apply_filter_changes(filters::HandshakeContext& ctx);
  void connect_upstream();
  std::string client_key(const config::HashKey& k);
  void open_upstream(std::optional<std::uint64_t> sticky);
  // session_upstream.cpp: a timed-out attempt moves to another member (true), or not.
  bool retry_upstream(std::string_view why);
  void release_member();  // out of its member's live count
  void check_client_during_setup();
  void on_response_sent();
  void on_refusal_sent();
  // headers: extra response fields (a filter's); the refusal is logged with
  // the filter that decided it, if any.
  // label: the metric's reason label and the log's filter ("" = from the
  // deciding filter, else from the status).
  void refuse(unsigned status, std::string reason, const std::vector<filters::Header>* headers = nullptr,
              std::string_view label = {});
  void upstream_failed(unsigned status, std::string reason);

  // relay.cpp
  void start_relay();
  void pump(Side d);
  bool flush(Side d);
  void after_flush(Side d);
  void arm_read(Side d);
  void arm_write(Side d);
  void release_buffer(Pump& p);
  void note_drops(Side d, std::uint64_t n);
  void relay_ready(Side d);
  // Nothing of a frame is outstanding in the stream pump d writes.
  // (The inspecting pump writes whole frames only.)
  bool out_at_boundary(Side d) const {
    return refrag_ || pumps_[d].ins != nullptr || pumps_[d].scanner.at_frame_boundary();
  }
  // What flush writes: the scanned run in buf, or the inspecting pump's output.
  const std::uint8_t* out_bytes(const Pump& p) const;

  // session_inspect.cpp: the refusals and replies of an inspecting scan.
  void after_inspect(Side d);
  // Bytes of reject answers an inspecting scan of d's messages may frame:
  // what the answers already waiting for d leave of their bound (0 once d
  // is closing or gone).
  std::size_t reply_room(Side d) const;

  // session_close.cpp
  // Who ended the session, with what code and reason: the first call wins,
  // later ones (the other side's Close, a timeout during the close) do not
  // change what session_close reports. by: "client", "upstream", "weir".
  void record_end(const char* by, std::uint16_t code, std::string_view reason);
  // io_error: the socket failed or ended under us (a read or write error,
  // EOF): for the upstream side, a passive-health failure of its member.
  // Cuts Weir makes itself (a protocol error, a timeout) are not.
  void side_lost(Side s, std::string_view why, bool io_error = false);
  // Side d broke the protocol (filter == nullptr) or a filter's policy: d
  // gets a Close with code, the other side learns why.
  void protocol_error(Side d, std::uint16_t code, const char* reason, std::string_view filter = {});
  void queue_close(Side s, std::uint16_t code, std::string_view reason);
  void queue_ping(Side s);
  void begin_close(std::uint16_t code, std::string_view reason);
  void maybe_finish();
  void finish();

  // session_timers.cpp
  void arm_timer();
  void on_timer(std::int64_t now_ms);

  // Logs and counts a refusal; label: its metrics reason (default: the
  // deciding filter's name, else one derived from the status).
  void log_refusal(unsigned status, std::string_view reason, std::string_view label = {});
  std::string_view client_ip() const;  // client_addr_ without port or brackets
  void log_close();
  // The session's trace: the client's traceparent (taken out of the request:
  // the backend gets Weir's own) or a new trace id.
  void take_trace();

  WorkerGateway& gateway_;
  core::Worker& worker_;
  std::shared_ptr<const Runtime> runtime_;  // the generation accepted under, for life
  const CompiledRoute* compiled_ = nullptr;  // its route, once matched (in runtime_)
  const config::Route* route_ = nullptr;     // compiled_->conf
  std::unique_ptr<Handshake> hs_;   // only until the relay starts
  std::unique_ptr<filters::SessionFilters> filters_;  // its route's filter instances (none: null)
  BySide<Leg> legs_;
  BySide<Pump> pumps_;   // by the side each reads
  BySide<ws::ScanPolicy> policy_;
  std::uint64_t id_;
  std::string client_addr_;         // "ip:port"
  std::string_view upstream_addr_;  // the upstream's text in runtime_'s config
  std::int64_t started_ms_;
  std::int64_t started_us_;         // precise, for the handshake duration
  std::int64_t last_data_ms_ = 0;   // last data frame either way (idle timeout)
  std::int64_t close_deadline_ms_ = 0;
  std::int64_t route_gone_ms_ = 0;
  std::int64_t deadline_ms_ = 0;    // a filter's deadline (token expiry): Close 1008 then
  // Who the session is, when a filter authenticated it (kept apart: most
  // sessions have none).
  struct Identity {
    std::string user, token_id;
  };
  std::unique_ptr<Identity> identity_;
  // Its slot under limits.max_pending_handshakes_per_ip, until the relay
  // starts or the session ends (null: none held).
  std::unique_ptr<std::string> pending_key_;
  // Its sticky.session_map key while it lives (kept alive in Redis by it).
  std::unique_ptr<std::string> map_key_;
  void release_pending_slot();
  Phase phase_ = Phase::request;
  bool closing_ = false;
  bool finished_ = false;
  obs::TraceParent trace_;          // from the client's traceparent, or new (trace_.trace.empty(): not yet)
  std::uint16_t upstream_index_ = 0;  // in route_->upstreams: the one chosen last
  bool remask_ = false;
  bool member_live_ = false;        // counted in its member's live sessions (upstream::MemberState)
  bool refrag_ = false;             // re-fragment cut frames (no unknown extension negotiated)
  bool registered_ = false;         // the client socket is in the worker's ReadyPoller
  core::Ref<Session> poll_ref_;     // alive while registered there (released after finish)
  // Who ended it, with what code and reason (first one wins).
  const char* closed_by_ = nullptr;
  std::uint16_t close_code_ = 0;
  std::string close_reason_;
};

}  // namespace weir::proxy
