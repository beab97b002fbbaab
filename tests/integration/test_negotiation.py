"""4. Subprotocol and extension (permessage-deflate) negotiation end to end."""

import random

import websockets

from aiohelp import connect, run


def _hdr(ev, name):
    vals = [v for k, v in ev["headers"] if k.lower() == name.lower()]
    return ", ".join(vals) if vals else None


def test_subprotocol_chosen_by_backend_reaches_client(weir, peers):
    py = peers.py("echo", "--subprotocols", "b")
    w = weir.routes([{"upstreams": [py.addr]}])

    async def go():
        async with connect(w.url("/"), subprotocols=["a", "b"]) as ws:
            await ws.send("hi")
            return ws.subprotocol, await ws.recv()

    sub, echo = run(go())
    assert sub == "b"
    assert echo == "hi"
    ev = py.log.wait("open")[0]
    assert ev["subprotocol"] == "b"
    assert [p.strip() for p in _hdr(ev, "Sec-WebSocket-Protocol").split(",")] == ["a", "b"]


def test_no_common_subprotocol_means_none(weir, peers):
    py = peers.py("echo", "--subprotocols", "b")
    w = weir.routes([{"upstreams": [py.addr]}])

    async def go():
        async with connect(w.url("/"), subprotocols=["x"]) as ws:
            await ws.send("hi")
            return ws.subprotocol, await ws.recv()

    assert run(go()) == (None, "hi")


def test_permessage_deflate_end_to_end(weir, peers):
    py = peers.py("echo")
    w = weir.routes([{"upstreams": [py.addr]}])
    rng = random.Random(4)
    compressible = "weir " * 40000  # 200000 bytes, compresses very well
    msgs = [compressible, rng.randbytes(100000), "", b"", "é" * 1000, rng.randbytes(1)]

    async def go():
        async with connect(w.url("/"), compression="deflate") as ws:
            names = [e.name for e in ws.extensions]
            out = []
            for m in msgs:
                await ws.send(m)
                out.append(await ws.recv())
            return names, out

    names, out = run(go(), timeout=30)
    assert names == ["permessage-deflate"]
    assert out == msgs
    ev = py.log.wait("open")[0]
    assert ev["extensions"] == ["permessage-deflate"]
    assert "permessage-deflate" in (_hdr(ev, "Sec-WebSocket-Extensions") or "")
    cl = w.log.wait("conn.close", timeout=5)[0]
    # compressed on the wire: far fewer bytes than the 300 KB+ of payload
    assert cl["bytes_in"] < 150000, cl


def test_deflate_offer_declined_by_backend(weir, peers):
    """If the backend declines permessage-deflate, the client must not get it either."""
    py = peers.py("echo", "--no-compression")
    w = weir.routes([{"upstreams": [py.addr]}])

    async def go():
        async with connect(w.url("/"), compression="deflate") as ws:
            await ws.send("abc" * 1000)
            return [e.name for e in ws.extensions], await ws.recv()

    names, echo = run(go())
    assert names == []
    assert echo == "abc" * 1000
