"""json_schema on the real binary: a route validates client messages against a schema file
(with a $ref to a sibling); valid messages reach the backend byte for byte, invalid ones
end the session with 1008 (1007 when not JSON) and never reach it, or are dropped and
counted; fragmented messages are judged whole."""

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
