"""1. Text and binary echo of every size class through Weir, with real peers:
Python websockets client -> Weir -> Python websockets / Node ws echo backends,
and a Node ws client -> Weir -> both backends."""

import json
import random
import subprocess

import pytest

from aiohelp import connect, run
from weirlib import MiB, NODE_DIR, make_config, node_available, random_text

SIZES = [0, 1, 125, 126, 127, 65535, 65536, 1 * MiB, 16 * MiB]


@pytest.fixture(scope="module")
def echo_env(module_weir, module_peers):
    py = module_peers.py("echo")
    node = module_peers.node_echo()
    w = module_weir.start(make_config(
        [
            {"name": "py", "match": {"path": "/py"}, "upstreams": [py.addr]},
            {"name": "node", "match": {"path": "/node"}, "upstreams": [node.addr]},
        ],
        limits={"max_frame_bytes": "16MiB", "max_message_bytes": "64MiB"},
    ))
    return w, py, node


@pytest.mark.parametrize("size", SIZES, ids=[f"{s}B" for s in SIZES])
@pytest.mark.parametrize("kind", ["text", "binary"])
@pytest.mark.parametrize("backend", ["py", "node"])
def test_python_client_echo(echo_env, backend, kind, size):
    w, _, _ = echo_env
    rng = random.Random(size * 7 + len(kind) + len(backend))
    payload = random_text(rng, size) if kind == "text" else rng.randbytes(size)

    async def go():
        async with connect(w.url(f"/{backend}")) as ws:
            await ws.send(payload)
            got = await ws.recv()
            # a second message right behind it: framing must stay in sync after each size
            await ws.send(payload[:3])
            got2 = await ws.recv()
            return got, got2

    got, got2 = run(go(), timeout=60)
    assert type(got) is type(payload), f"message type changed: sent {kind}, got {type(got).__name__}"
    assert len(got) == len(payload)
    assert got == payload
    assert got2 == payload[:3]


def test_multibyte_utf8_text_echo(echo_env):
    w, _, _ = echo_env
    text = "héllo wörld — 日本語 — 🎉" * 1000

    async def go():
        async with connect(w.url("/py")) as ws:
            await ws.send(text)
            return await ws.recv()

    assert run(go()) == text


@pytest.mark.parametrize("backend", ["py", "node"])
def test_node_client_echo(echo_env, backend):
    if not node_available():
        pytest.fail("node or tests/node/node_modules/ws missing: run scripts/setup test")
    w, _, _ = echo_env
    sizes = ",".join(str(s) for s in SIZES)
    p = subprocess.run(["node", str(NODE_DIR / "client.js"), w.url(f"/{backend}"), sizes],
                       capture_output=True, text=True, timeout=120, cwd=NODE_DIR)
    lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
    assert lines, f"node client printed nothing; rc={p.returncode} stderr={p.stderr[-2000:]}"
    res = json.loads(lines[-1])
    assert res["ok"], f"node client failed: {res} stderr={p.stderr[-2000:]}"
    assert res["checked"] == 2 * len(SIZES)
    assert res["close_code"] == 1000
    assert p.returncode == 0


def test_session_log_lines(echo_env):
    """session_open/session_close carry route, upstream, path and message counters."""
    w, py, _ = echo_env
    mark = w.log.mark()

    async def go():
        async with connect(w.url("/py?x=1")) as ws:
            for i in range(3):
                await ws.send(f"m{i}")
                assert await ws.recv() == f"m{i}"

    run(go())
    op = w.log.wait("conn.open", since=mark, path="/py?x=1")[0]
    assert op["route"] == "py"
    assert op["upstream"] == py.addr
    assert op["client"].startswith("127.0.0.1:")
    cl = w.log.wait("conn.close", since=mark, id=op["id"], timeout=5)[0]
    assert cl["closed_by"] == "client"
    assert cl["close_code"] == 1000
    assert cl["msgs_in"] == 3 and cl["msgs_out"] == 3
    assert cl["bytes_in"] > 0 and cl["bytes_out"] > 0
    assert isinstance(cl["duration_ms"], int)
    for key in ("ts", "level", "event"):
        assert key in op and key in cl
