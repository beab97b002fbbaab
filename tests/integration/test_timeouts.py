"""12. Idle timeout, max lifetime and keepalive pings."""

import asyncio
import time

import websockets

from aiohelp import connect, run
from weirlib import OP_CLOSE, OP_PING, RawClient


def _wait_close(ws, timeout):
    async def go():
        t0 = time.monotonic()
        try:
            await asyncio.wait_for(ws.recv(), timeout)
            return "message", None, None
        except websockets.ConnectionClosed as e:
            rc = e.rcvd
            return (rc.code if rc else None), (rc.reason if rc else None), time.monotonic() - t0
        except asyncio.TimeoutError:
            return "still open", None, None
    return go()


def test_idle_timeout_closes_both_sides_1001(weir, peers):
    py = peers.py("echo")
    w = weir.routes([{"upstreams": [py.addr]}], timeouts={"idle": "1s"})

    async def go():
        async with connect(w.url("/")) as ws:
            return await _wait_close(ws, 4)

    code, reason, dt = run(go())
    assert (code, reason) == (1001, "idle timeout")
    assert 0.8 <= dt <= 2.5, f"closed after {dt:.2f}s of idleness, idle is 1s"
    ev = py.log.wait("closed", timeout=5)[0]
    assert (ev["code"], ev["reason"]) == (1001, "idle timeout")
    cl = w.log.wait("conn.close", timeout=5)[0]
    assert cl["closed_by"] == "weir"


def test_traffic_keeps_idle_session_open(weir, peers):
    py = peers.py("echo")
    w = weir.routes([{"upstreams": [py.addr], "timeouts": {"idle": "1s"}}])

    async def go():
        async with connect(w.url("/")) as ws:
            t_end = time.monotonic() + 2.5
            n = 0
            while time.monotonic() < t_end:
                await ws.send(f"m{n}")
                assert await ws.recv() == f"m{n}"
                n += 1
                await asyncio.sleep(0.3)
            return n

    assert run(go()) >= 5


def test_pings_do_not_count_as_activity_for_idle(weir, peers):
    py = peers.py("echo")
    w = weir.routes([{"upstreams": [py.addr]}], timeouts={"idle": "1s"})

    async def go():
        async with connect(w.url("/")) as ws:
            async def pinger():
                while True:
                    await asyncio.sleep(0.2)
                    try:
                        await ws.ping()
                    except websockets.ConnectionClosed:
                        return
            t = asyncio.ensure_future(pinger())
            try:
                return await _wait_close(ws, 4)
            finally:
                t.cancel()

    code, reason, _ = run(go())
    assert (code, reason) == (1001, "idle timeout")


def test_max_lifetime_closes_busy_session(weir, peers):
    py = peers.py("echo")
    w = weir.routes([{"upstreams": [py.addr]}], timeouts={"max_lifetime": "1s"})

    async def go():
        async with connect(w.url("/")) as ws:
            t0 = time.monotonic()
            try:
                while time.monotonic() - t0 < 4:
                    await ws.send("busy")
                    await asyncio.wait_for(ws.recv(), 2)
                    await asyncio.sleep(0.1)
                return "still open", None, None
            except websockets.ConnectionClosed as e:
                rc = e.rcvd
                return rc.code if rc else None, rc.reason if rc else None, time.monotonic() - t0

    code, reason, dt = run(go())
    assert code == 1001, (code, reason)
    assert dt <= 2.5


def test_keepalive_drops_client_that_never_answers(weir, peers):
    py = peers.py("echo")
    w = weir.routes([{"upstreams": [py.addr], "keepalive": {"interval": "1s", "timeout": "1s"}}])
    c = RawClient(w.port, "/")
    t0 = time.monotonic()
    pings = 0
    gone = None
    try:
        while time.monotonic() - t0 < 6:
            try:
                f = c.recv_frame(timeout=6 - (time.monotonic() - t0))
            except (EOFError, ConnectionError):
                gone = time.monotonic() - t0
                break
            except TimeoutError:
                break
            if f.opcode == OP_PING:
                pings += 1  # deliberately not answered
            if f.opcode == OP_CLOSE:
                gone = time.monotonic() - t0
                break
    finally:
        c.close()
    assert pings >= 1, "weir never pinged the silent client"
    assert gone is not None, "a client that never answers pings was not dropped within 6s"
    assert gone <= 3.5, f"dropped after {gone:.2f}s (interval 1s + timeout 1s)"
    ev = py.log.wait("closed", timeout=3)[0]
    assert (ev["code"], ev["reason"]) == (1001, "client went away")


def test_keepalive_keeps_answering_client(weir, peers):
    py = peers.py("echo")
    w = weir.routes([{"upstreams": [py.addr], "keepalive": {"interval": "1s", "timeout": "1s"}}])

    async def go():
        async with connect(w.url("/")) as ws:  # websockets answers pings by itself
            code, _, _ = await _wait_close(ws, 3.5)
            assert code == "still open", f"closed with {code}"
            await ws.send("still here")
            return await ws.recv()

    assert run(go(), timeout=15) == "still here"
    assert not py.log.find("closed") or py.log.find("closed")[0]["code"] == 1000


def test_keepalive_drops_upstream_that_never_answers(weir, peers):
    """Keepalive applies to the upstream too: a backend that goes quiet and never answers
    pings is dropped, and the client gets 1011."""
    def on_open(conn):
        while not conn.owner.stopped:  # answers the upgrade, then never reads or writes
            time.sleep(0.1)

    rb = peers.raw("record", on_open=on_open)
    w = weir.routes([{"upstreams": [rb.addr], "keepalive": {"interval": "1s", "timeout": "1s"}}])

    async def go():
        async with connect(w.url("/")) as ws:
            return await _wait_close(ws, 6)

    code, reason, dt = run(go(), timeout=15)
    assert (code, reason) == (1011, "upstream connection lost")
    assert dt <= 3.5
