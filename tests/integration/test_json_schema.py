"""json_schema on the real binary: a route validates client messages against a schema file
(with a $ref to a sibling); valid messages reach the backend byte for byte, invalid ones
end the session with 1008 (1007 when not JSON) and never reach it, or are dropped and
counted; fragmented messages are judged whole. Binary messages declared MessagePack are
validated against the same schema (1007 when not MessagePack, 1009 over max_binary_bytes)."""

from __future__ import annotations

import json

import subprocess

from weirlib import OP_BINARY, OP_CONT, OP_TEXT, RawClient, weir_bin

CHAT = {"type": "object", "required": ["type", "text"], "additionalProperties": False,
        "properties": {"type": {"enum": ["chat", "typing"]}, "text": {"type": "string", "maxLength": 20},
                       "to": {"$ref": "user.json"}}}
USER = {"type": "object", "required": ["id"], "properties": {"id": {"type": "integer"}}}


def schema_route(tmp_path, rb, **extra):
    (tmp_path / "user.json").write_text(json.dumps(USER))
    (tmp_path / "chat.json").write_text(json.dumps(CHAT))
    return {"name": "chat", "upstreams": [rb.addr],
            "json_schema": {"client_to_upstream": str(tmp_path / "chat.json"), **extra}}


def backend_texts(rb):
    return [f.payload for c in rb.conns for f in c.frames if f.opcode in (OP_TEXT, OP_CONT)]


def test_valid_messages_pass_invalid_ones_close(weir, peers, tmp_path):
    rb = peers.raw("echo")
    w = weir.routes([schema_route(tmp_path, rb)])
    good = [b'{"type":"chat","text":"hi"}', b'{"type": "typing", "text": "", "to": {"id": 7}}']
    c = RawClient(w.port, "/")
    try:
        for g in good:
            c.send(OP_TEXT, g)
            assert c.recv_message() == (OP_TEXT, g)  # byte for byte
        # A fragmented valid message is judged whole.
        c.send(OP_TEXT, b'{"type":"chat",', fin=False)
        c.send(OP_CONT, b'"text":"parts"}')
        assert c.recv_message() == (OP_TEXT, b'{"type":"chat","text":"parts"}')
        c.send(OP_TEXT, b'{"type":"chat","text":"hi","to":{"id":"seven"}}')
        f = c.expect_close()
        assert f.close_code == 1008 and "/to/id" in f.close_reason, (f.close_code, f.close_reason)
    finally:
        c.close()
    c = RawClient(w.port, "/")
    try:
        c.send(OP_TEXT, b"not json")
        f = c.expect_close()
        assert f.close_code == 1007 and f.close_reason.startswith("not JSON")
    finally:
        c.close()
    assert b"seven" not in b"".join(backend_texts(rb)) and b"not json" not in b"".join(backend_texts(rb))
    m = w.metrics()
    assert m['weir_json_schema_failures_total{route="chat",direction="client_to_upstream",reason="invalid"}'] == 1
    assert m['weir_json_schema_failures_total{route="chat",direction="client_to_upstream",reason="not_json"}'] == 1
    assert m['weir_filter_closes_total{route="chat",filter="json_schema"}'] == 2


def test_drop_mode_keeps_the_session(weir, peers, tmp_path):
    rb = peers.raw("echo")
    w = weir.routes([schema_route(tmp_path, rb, on_failure="drop", binary="refuse")])
    c = RawClient(w.port, "/")
    try:
        c.send(OP_TEXT, b'{"type":"shout","text":"HI"}')
        c.send(OP_BINARY, b"\x00\x01")
        c.send(OP_TEXT, b'{"type":"chat","text":"after"}')
        assert c.recv_message() == (OP_TEXT, b'{"type":"chat","text":"after"}')
    finally:
        c.close()
    assert backend_texts(rb) == [b'{"type":"chat","text":"after"}']
    m = w.metrics()
    assert m['weir_json_schema_failures_total{route="chat",direction="client_to_upstream",reason="invalid"}'] == 1
    assert m['weir_json_schema_failures_total{route="chat",direction="client_to_upstream",reason="binary"}'] == 1
    assert m['weir_messages_dropped_total{route="chat",direction="client_to_upstream"}'] == 2


def test_a_bad_schema_file_is_a_config_error(tmp_path):
    (tmp_path / "bad.json").write_text('{\n  "type": "object",\n  "properties": {,}\n}')
    cfg = tmp_path / "weir.yaml"
    cfg.write_text("listeners: [{address: 127.0.0.1, port: 0}]\nroutes:\n  - upstreams: [echo]\n"
                   "    json_schema: {client_to_upstream: bad.json}\n")
    r = subprocess.run([weir_bin(), "check-config", "-c", str(cfg)], capture_output=True, text=True, timeout=10)
    assert r.returncode == 1
    assert f"{cfg}:4:39: 'json_schema.client_to_upstream': {tmp_path}/bad.json:3:18: not JSON" in r.stderr + r.stdout


# MessagePack by hand (fixmap / fixstr / fixint are all these tests need).
def mp_str(s: str) -> bytes:
    b = s.encode()
    assert len(b) < 32
    return bytes([0xA0 | len(b)]) + b


def mp_map(pairs: list[tuple[bytes, bytes]]) -> bytes:
    assert len(pairs) < 16
    return bytes([0x80 | len(pairs)]) + b"".join(k + v for k, v in pairs)


MP_GOOD = mp_map([(mp_str("type"), mp_str("chat")), (mp_str("text"), mp_str("hi")),
                  (mp_str("to"), mp_map([(mp_str("id"), b"\x07")]))])
MP_INVALID = mp_map([(mp_str("type"), mp_str("chat")), (mp_str("text"), mp_str("hi")),
                     (mp_str("to"), mp_map([(mp_str("id"), mp_str("seven"))]))])


def backend_binaries(rb):
    """The binary payload bytes the backend got (no text message here is fragmented)."""
    return b"".join(f.payload for c in rb.conns for f in c.frames if f.opcode in (OP_BINARY, OP_CONT))


def closed_with(w, payload: bytes) -> tuple[int, str]:
    c = RawClient(w.port, "/")
    try:
        c.send(OP_BINARY, payload)
        f = c.expect_close()
        return f.close_code, f.close_reason
    finally:
        c.close()


def test_msgpack_binaries_are_validated_against_the_schema(weir, peers, tmp_path):
    rb = peers.raw("echo")
    w = weir.routes([schema_route(tmp_path, rb, binary="msgpack", max_binary_bytes="256")])
    c = RawClient(w.port, "/")
    try:
        c.send(OP_BINARY, MP_GOOD)
        assert c.recv_message() == (OP_BINARY, MP_GOOD)  # byte for byte, both ways
        # Fragmented, judged whole.
        c.send(OP_BINARY, MP_GOOD[:5], fin=False)
        c.send(OP_CONT, MP_GOOD[5:])
        assert c.recv_message() == (OP_BINARY, MP_GOOD)
        c.send(OP_TEXT, b'{"type":"chat","text":"json too"}')  # text is still JSON
        assert c.recv_message() == (OP_TEXT, b'{"type":"chat","text":"json too"}')
        c.send(OP_BINARY, MP_INVALID)
        f = c.expect_close()
        assert f.close_code == 1008 and f.close_reason.startswith("schema: /to/id: "), (f.close_code, f.close_reason)
    finally:
        c.close()
    code, reason = closed_with(w, b"\x93\x01\x02")  # an array of 3 holding 2
    assert (code, reason) == (1007, "not MessagePack: truncated")
    code, reason = closed_with(w, MP_GOOD + b"\xc0")
    assert (code, reason) == (1007, "not MessagePack: 1 trailing bytes after the object")
    code, reason = closed_with(w, mp_map([(mp_str("type"), b"\xc4\x01x")]))  # bin
    assert (code, reason) == (1008, "msgpack: /type: bin is not representable in JSON")
    code, reason = closed_with(w, b"\x91" * 100_000 + b"\xc0")  # over max_binary_bytes before anything
    assert (code, reason) == (1009, "binary message over 256 bytes")
    code, reason = closed_with(w, b"\x91" * 100 + b"\xc0")  # deeper than max_depth (64)
    assert (code, reason) == (1008, "nested deeper than 64")
    assert backend_binaries(rb) == MP_GOOD * 2
    m = w.metrics()
    key = 'weir_json_schema_failures_total{route="chat",direction="client_to_upstream",reason="%s"}'
    assert m[key % "invalid"] == 3
    assert m[key % "not_msgpack"] == 2
    assert m[key % "binary_too_big"] == 1
    assert m[key % "binary"] == 0
    assert m['weir_filter_closes_total{route="chat",filter="json_schema"}'] == 6


def test_msgpack_drop_mode_and_binary_refusal(weir, peers, tmp_path):
    rb = peers.raw("echo")
    drop_dir = tmp_path / "drop"
    drop_dir.mkdir()
    refuse_dir = tmp_path / "refuse"
    refuse_dir.mkdir()
    drop = schema_route(drop_dir, rb, binary="msgpack", on_failure="drop")
    refuse = {**schema_route(refuse_dir, rb, binary="refuse"), "name": "refuse", "match": {"path": "/refuse"}}
    w = weir.routes([refuse, {**drop, "match": {"path": "/"}}])
    c = RawClient(w.port, "/")
    try:
        c.send(OP_BINARY, MP_INVALID)
        c.send(OP_BINARY, b"garbage")
        c.send(OP_BINARY, MP_GOOD)
        assert c.recv_message() == (OP_BINARY, MP_GOOD)
    finally:
        c.close()
    assert backend_binaries(rb) == MP_GOOD  # the refused ones never reached it
    m = w.metrics()
    key = 'weir_json_schema_failures_total{route="chat",direction="client_to_upstream",reason="%s"}'
    assert m[key % "invalid"] == 1 and m[key % "not_msgpack"] == 1
    assert m['weir_messages_dropped_total{route="chat",direction="client_to_upstream"}'] == 2
    c = RawClient(w.port, "/refuse")
    try:
        c.send(OP_BINARY, MP_GOOD)
        f = c.expect_close()
        assert f.close_code == 1003 and f.close_reason == "binary messages are refused"
    finally:
        c.close()
    assert backend_binaries(rb) == MP_GOOD
