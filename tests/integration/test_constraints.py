"""constraints on the real binary: messages within the limits reach the backend byte for
byte (fragmented ones judged whole); one past a limit or not matching its pattern ends the
session with 1008 and the JSON pointer (1007 when not JSON, 1003 for a refused type) and
never reaches the backend, or is dropped and counted; a pattern that backtracks for ever in a
backtracking engine costs nothing here; a bad pattern is a config error."""

from __future__ import annotations

import subprocess
import time

from weirlib import OP_BINARY, OP_CONT, OP_TEXT, RawClient, encode_frame, weir_bin

LIMITS = {"max_depth": 4, "max_string_length": 16, "max_array_length": 3, "max_object_keys": 3,
          "message_types": ["text"], "patterns": [{"pointer": "/type", "match": "chat|typing"}]}


def backend_texts(rb):
    return [f.payload for c in rb.conns for f in c.frames if f.opcode in (OP_TEXT, OP_CONT)]


def closed_by(w, payload: bytes, opcode=OP_TEXT):
    c = RawClient(w.port, "/")
    try:
        c.send(opcode, payload)
        f = c.expect_close()
        return f.close_code, f.close_reason
    finally:
        c.close()


def test_within_limits_pass_past_them_close(weir, peers):
    rb = peers.raw("echo")
    w = weir.routes([{"name": "chat", "upstreams": [rb.addr], "constraints": LIMITS}])
    good = [b'{"type":"chat","to":["a","b","c"],"x":{"y":{"z":1}}}', b'{"type": "typing"}']
    c = RawClient(w.port, "/")
    try:
        for g in good:
            c.send(OP_TEXT, g)
            assert c.recv_message() == (OP_TEXT, g)  # byte for byte
        c.send(OP_TEXT, b'{"type":"chat",', fin=False)  # judged whole
        c.send(OP_CONT, b'"to":["a"]}')
        assert c.recv_message() == (OP_TEXT, b'{"type":"chat","to":["a"]}')
    finally:
        c.close()
    bad = {
        b'{"type":"chat","to":["a","b","c","d"]}': (1008, "array longer than 3 at /to"),
        b'{"type":"chat","x":{"y":{"z":{"w":{"v":1}}}}}': (1008, "nested deeper than 4"),
        b'{"type":"chat","t":"abcdefghijklmnopq"}': (1008, "string longer than 16 bytes at /t"),
        b'{"type":"shout"}': (1008, "/type does not match chat|typing"),
        b"not json": (1007, None),
    }
    for payload, (code, reason) in bad.items():
        got = closed_by(w, payload)
        assert got[0] == code and (reason is None or got[1] == reason), (payload, got)
    assert closed_by(w, b"\x00\x01", OP_BINARY) == (1003, "binary messages are refused")
    seen = b"".join(backend_texts(rb))
    assert b"shout" not in seen and b"not json" not in seen and b"abcdefghijklmnopq" not in seen
    m = w.metrics()
    key = 'weir_constraint_failures_total{{route="chat",direction="client_to_upstream",reason="{}"}}'
    assert [m[key.format(r)] for r in ("array_length", "depth", "string_length", "pattern", "not_json",
                                       "message_type")] == [1, 1, 1, 1, 1, 1]
    assert m['weir_filter_closes_total{route="chat",filter="constraints"}'] == 6


def test_a_pattern_that_backtracks_elsewhere_costs_nothing(weir, peers):
    rb = peers.raw("echo")
    w = weir.routes([{"name": "chat", "upstreams": [rb.addr],
                      "constraints": {"patterns": [{"pointer": "/s", "match": "(a+)+"}]}}])
    # (a+)+ against a long run of a's and a '!': exponential time for a backtracking engine.
    t0 = time.monotonic()
    assert closed_by(w, b'{"s":"' + b"a" * 60_000 + b'!"}') == (1008, "/s does not match (a+)+")
    assert time.monotonic() - t0 < 5
    c = RawClient(w.port, "/")
    try:
        c.send(OP_TEXT, b'{"s":"' + b"a" * 60_000 + b'"}')
        assert c.recv_message()[1].endswith(b'aaa"}')
    finally:
        c.close()


def test_drop_mode_keeps_the_session(weir, peers):
    rb = peers.raw("echo")
    w = weir.routes([{"name": "chat", "upstreams": [rb.addr],
                      "constraints": {"max_object_keys": 1, "on_failure": "drop"}}])
    c = RawClient(w.port, "/")
    try:
        c.send(OP_TEXT, b'{"a":1,"b":2}')
        c.send(OP_TEXT, b'{"a":"after"}')
        assert c.recv_message() == (OP_TEXT, b'{"a":"after"}')
    finally:
        c.close()
    assert backend_texts(rb) == [b'{"a":"after"}']
    m = w.metrics()
    assert m['weir_constraint_failures_total{route="chat",direction="client_to_upstream",reason="object_keys"}'] == 1
    assert m['weir_messages_dropped_total{route="chat",direction="client_to_upstream"}'] == 1


def test_a_bad_pattern_is_a_config_error(tmp_path):
    cfg = tmp_path / "weir.yaml"
    cfg.write_text("listeners: [{address: 127.0.0.1, port: 0}]\nroutes:\n  - upstreams: [echo]\n"
                   "    constraints: {patterns: [{pointer: /a, match: \"[a-\"}]}\n")
    r = subprocess.run([weir_bin(), "check-config", "-c", str(cfg)], capture_output=True, text=True, timeout=10)
    assert r.returncode == 1
    assert "'constraints.patterns[0].match' is not a valid RE2 pattern" in r.stderr + r.stdout


def test_reject_answers_the_sender_and_the_session_goes_on(weir, peers):
    """on_failure: reject: the refused message never reaches the backend; its sender gets the
    configured JSON error (reason and pointer) in its place, in order with the messages around
    it, and the session goes on. Both ways: a refused backend message is answered to the
    backend (here an echo backend, which sends the answer on to the client). Each refusal is
    logged, with a payload prefix only because the route asks for one."""
    rb = peers.raw("echo")
    reply = '{"type":"error","detail":"{reason}","at":"{pointer}"}'
    w = weir.routes([{"name": "chat", "upstreams": [rb.addr],
                      "constraints": {"direction": "both", "max_string_length": 8,
                                      "patterns": [{"pointer": "/type", "match": "chat|error"}],
                                      "on_failure": "reject", "reject_reply": reply, "log_payload": 12}}])
    c = RawClient(w.port, "/")
    try:
        c.send(OP_TEXT, b'{"type":"chat","t":"hi"}')
        assert c.recv_message() == (OP_TEXT, b'{"type":"chat","t":"hi"}')
        c.send(OP_TEXT, b'{"type":"shout","t":"HI"}')
        c.send(OP_TEXT, b'{"type":"chat",', fin=False)  # fragmented, judged whole
        c.send(OP_CONT, b'"t":"far too long"}')
        c.send(OP_TEXT, b'{"type":"chat","t":"after"}')
        assert c.recv_message() == (OP_TEXT, b'{"type":"error","detail":"/type does not match chat|error","at":"/type"}')
        assert c.recv_message() == (OP_TEXT, b'{"type":"error","detail":"string longer than 8 bytes at /t","at":"/t"}')
        assert c.recv_message() == (OP_TEXT, b'{"type":"chat","t":"after"}')
    finally:
        c.close()
    seen = b"".join(backend_texts(rb))
    assert b"shout" not in seen and b"far too long" not in seen and b"after" in seen
    ev = w.log.wait("message.refused", count=2)
    assert [(e["action"], e["filter"], e["side"], e["pointer"]) for e in ev] == [
        ("reject", "constraints", "client", "/type"), ("reject", "constraints", "client", "/t")]
    assert ev[0]["reason"] == "/type does not match chat|error" and ev[0]["replied"] is True
    assert ev[0]["payload_prefix"] == '{"type":"sho' and ev[0]["size"] == 25
    m = w.metrics()
    assert m['weir_constraint_failures_total{route="chat",direction="client_to_upstream",reason="pattern"}'] == 1
    assert m['weir_constraint_failures_total{route="chat",direction="client_to_upstream",reason="string_length"}'] == 1


def test_reject_of_a_backend_message_answers_the_backend(weir, peers):
    """A message from the backend that fails is answered to the backend (masked, as a client
    frame must be); the client never sees the refused one. (The echo backend sends the answer
    back, which passes: it has no /type.)"""
    def greet(conn):
        conn.send(OP_TEXT, b'{"type":"shout"}')
        conn.send(OP_TEXT, b'{"type":"chat"}')
    rb = peers.raw("echo", on_open=greet)
    answer = (b'{"error":"message rejected","filter":"constraints",'
              b'"reason":"/type does not match chat","pointer":"/type"}')
    w = weir.routes([{"name": "chat", "upstreams": [rb.addr],
                      "constraints": {"direction": "upstream", "patterns": [{"pointer": "/type", "match": "chat"}],
                                      "on_failure": "reject"}}])
    c = RawClient(w.port, "/")
    try:
        assert c.recv_message() == (OP_TEXT, b'{"type":"chat"}')
        assert c.recv_message() == (OP_TEXT, answer)  # the backend's echo of Weir's answer
    finally:
        c.close()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        got = [f for conn in rb.conns for f in conn.frames if f.opcode == OP_TEXT]
        if got:
            break
        time.sleep(0.05)
    assert [(f.payload, f.mask_key is not None) for f in got] == [(answer, True)]
    ev = w.log.wait("message.refused")[0]
    assert ev["side"] == "upstream" and "payload_prefix" not in ev  # no log_payload: no payload


def test_a_burst_of_refused_messages_is_answered_and_logged_within_bounds(weir, peers):
    """40 refused messages in one write: each gets its answer, in order; the audit log notes
    at most 16 of them per read from the client, and the last line of such a read says how
    many more it held, so every refusal is accounted for."""
    rb = peers.raw("echo")
    w = weir.routes([{"name": "chat", "upstreams": [rb.addr],
                      "constraints": {"patterns": [{"pointer": "/n", "match": "ok"}], "on_failure": "reject",
                                      "reject_reply": '{"bad":"{reason}"}'}}])
    c = RawClient(w.port, "/")
    try:
        c.send_raw(b"".join(encode_frame(OP_TEXT, b'{"n":"%d"}' % i, mask=True) for i in range(40)))
        got = [c.recv_message() for _ in range(40)]
        assert got == [(OP_TEXT, b'{"bad":"/n does not match ok"}')] * 40
    finally:
        c.close()
    lines = w.log.wait("message.refused", count=3)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        lines = w.log.find("message.refused")
        if len(lines) + sum(e.get("more_refused", 0) for e in lines) >= 40:
            break
        time.sleep(0.05)
    assert len(lines) + sum(e.get("more_refused", 0) for e in lines) == 40
    assert len(lines) < 40  # bounded: not one line each
    assert all(e["replied"] for e in lines)
    m = w.metrics()
    assert m['weir_constraint_failures_total{route="chat",direction="client_to_upstream",reason="pattern"}'] == 40


def test_a_refused_message_wins_over_a_malformed_frame_after_it(weir, peers):
    """A refused message and, in the same write, a frame with a reserved bit set: the
    refusal came first in the stream, so the client gets its 1008, not the 1002 the later
    frame would earn."""
    rb = peers.raw("echo")
    w = weir.routes([{"name": "chat", "upstreams": [rb.addr],
                      "constraints": {"patterns": [{"pointer": "/n", "match": "ok"}]}}])
    c = RawClient(w.port, "/")
    try:
        c.send_raw(encode_frame(OP_TEXT, b'{"n":"bad"}') + encode_frame(OP_TEXT, b"x", rsv=2))
        f = c.expect_close()
        assert (f.close_code, f.close_reason) == (1008, "/n does not match ok")
    finally:
        c.close()
