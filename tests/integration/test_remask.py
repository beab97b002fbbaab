"""14. Masking: by default client frames keep the client's masking key; with
remask: true Weir re-masks with fresh keys, and the payload is still intact."""

import random

from aiohelp import connect, run
from weirlib import OP_BINARY, OP_CLOSE, OP_CONT, OP_TEXT, RawClient, close_payload

KEYS = [b"\x11\x22\x33\x44", b"\xde\xad\xbe\xef", b"\x00\x00\x00\x00", b"\xff\x01\xff\x01"]


def _send_with_keys(w, rb):
    c = RawClient(w.port, "/")
    payloads = [b"a" * 10, b"b" * 200, random.Random(1).randbytes(70000), b"\x00\xff" * 64]
    try:
        for key, p in zip(KEYS, payloads):
            c.send(OP_BINARY, p, mask_key=key)
            op, got = c.recv_message(timeout=5)
            assert (op, got) == (OP_BINARY, p)
        c.send(OP_CLOSE, close_payload(1000))
        assert c.expect_close().close_code == 1000
    finally:
        c.close()
    conn = rb.wait_conn()
    rb.wait_frame(conn, lambda f: f.opcode == OP_CLOSE)
    # A frame that spans Weir's reads arrives re-fragmented (RFC 6455 5.4): group the
    # frames into messages, each led by its first frame (the one the client keyed).
    messages = []
    for f in conn.frames:
        if f.opcode == OP_BINARY:
            messages.append([f])
        elif f.opcode == OP_CONT:
            messages[-1].append(f)
    assert [b"".join(f.payload for f in m) for m in messages] == payloads, \
        "backend must see the unmasked content intact"
    assert all(m[-1].fin and not any(f.fin for f in m[:-1]) for m in messages)
    assert all(f.mask_key is not None for m in messages for f in m), "frames to the upstream must be masked"
    return [m[0] for m in messages]


def test_client_mask_kept_by_default(weir, peers):
    rb = peers.raw("echo")
    w = weir.routes([{"upstreams": [rb.addr], "remask": False}])
    frames = _send_with_keys(w, rb)
    assert [f.mask_key for f in frames] == KEYS


def test_remask_uses_fresh_keys(weir, peers):
    rb = peers.raw("echo")
    w = weir.routes([{"upstreams": [rb.addr], "remask": True}])
    frames = _send_with_keys(w, rb)
    assert all(f.mask_key is not None for f in frames), "frames to the upstream must be masked"
    assert all(f.mask_key != k for f, k in zip(frames, KEYS)), \
        f"remask route forwarded client keys: {[f.mask_key for f in frames]}"
    assert len({f.mask_key for f in frames}) > 1, "remask must not reuse one key for every frame"


def test_remask_echo_with_websockets(weir, peers):
    py = peers.py("echo")
    w = weir.routes([{"upstreams": [py.addr], "remask": True}])
    rng = random.Random(14)
    msgs = [rng.randbytes(n) for n in (0, 1, 125, 126, 65536, 1 << 20)] + ["text é", "x" * 70000]

    async def go():
        async with connect(w.url("/")) as ws:
            out = []
            for m in msgs:
                await ws.send(m)
                out.append(await ws.recv())
            await ws.send(iter([b"frag1", b"frag2"]))
            out.append(await ws.recv())
            return out

    out = run(go(), timeout=30)
    assert out[:-1] == msgs
    assert out[-1] == b"frag1frag2"
