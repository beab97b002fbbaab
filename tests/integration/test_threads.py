"""The threads of the real binary together: two workers, SIGHUP reloads posted to them
under traffic, upstreams given by DNS name (Asio's resolver thread), and SIGTERM with
live sessions. scripts/test runs this file against the TSan build (TSAN_OPTIONS
halt_on_error=1: a race makes weir exit 66); in other builds it is an ordinary test.

A SIGHUP is a new generation posted to every worker: the whole config where weir
reloads it ("config.reload"), the TLS contexts where it reloads only those
("tls.reload", even with no certificate). Route changes and the refused file are
checked only where the config is reloaded.
"""

import asyncio
import signal
import socket

import pytest

from aiohelp import connect, run
from weirlib import make_config, to_yaml

CLIENTS = 12      # long-lived sessions, spread over both workers by SO_REUSEPORT
RELOADS = 4       # alternately add and remove route "b"


def sanitizer_reports(text: str) -> list[str]:
    marks = ("WARNING: ThreadSanitizer", "ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")
    return [line for line in text.splitlines() if any(m in line for m in marks)]


def dns_name() -> str:
    """A name (not an IP literal: weir resolves it on Asio's resolver thread) that
    reaches the backend on 127.0.0.1. Weir tries each address it gets in turn, so a
    ::1 listed as well only costs a refused connect."""
    try:
        addrs = {ai[4][0] for ai in socket.getaddrinfo("localhost", None, type=socket.SOCK_STREAM)}
    except OSError as e:
        pytest.fail(f"localhost does not resolve: {e}")
    if "127.0.0.1" not in addrs:
        pytest.fail(f"localhost resolves to {sorted(addrs)}, not 127.0.0.1")
    return "localhost"


def config(upstream: str, with_b: bool) -> dict:
    routes = [{"name": "a", "match": {"path_prefix": "/a"}, "upstreams": [upstream]}]
    if with_b:
        routes.insert(0, {"name": "b", "match": {"path_prefix": "/b"}, "upstreams": [upstream]})
    return make_config(routes, workers=2, shutdown={"drain": "1s"})


def is_reload(ev: dict) -> bool:
    return ev.get("event") in ("config.reload", "tls.reload")


def test_reload_resolver_and_shutdown_across_two_workers(weir, peers):
    py = peers.py("echo")
    upstream = f"{dns_name()}:{py.port}"
    w = weir.start(config(upstream, with_b=False))
    assert w.log.find("started")[0]["workers"] == 2

    def write_and_hup(text: str) -> int:
        mark = w.log.mark()
        w.config_path.write_text(text)
        w.proc.send_signal(signal.SIGHUP)
        return mark

    async def chatter(ws, tag: str, stop: asyncio.Event, counts: dict) -> None:
        n = 0
        while not stop.is_set():
            msg = f"{tag}:{n}"
            await ws.send(msg)
            assert await asyncio.wait_for(ws.recv(), 10) == msg
            n += 1
            counts[tag] = n
            await asyncio.sleep(0.01)

    async def go():
        loop = asyncio.get_running_loop()
        wait = lambda *a, **k: loop.run_in_executor(None, lambda: w.log.wait(*a, **k))  # noqa: E731
        clients = [await connect(w.url(f"/a/{i}")) for i in range(CLIENTS)]
        stop = asyncio.Event()
        counts: dict = {}
        tasks = [asyncio.create_task(chatter(ws, f"a{i}", stop, counts)) for i, ws in enumerate(clients)]

        # Reloads under traffic: each one is a new generation posted to both workers.
        served_b = 0
        config_reloads = False
        for r in range(RELOADS):
            with_b = r % 2 == 0
            mark = write_and_hup(to_yaml(config(upstream, with_b)) + "\n")
            ev = (await wait(timeout=20, since=mark, pred=is_reload))[0]
            config_reloads = ev["event"] == "config.reload"
            if config_reloads:
                assert ev["added" if with_b else "removed"] == "b", ev
            if with_b and config_reloads:
                # New sessions take the new generation, on whichever worker accepts them.
                for i in range(4):
                    async with connect(w.url(f"/b/{r}/{i}")) as wb:
                        await wb.send("via b")
                        assert await asyncio.wait_for(wb.recv(), 10) == "via b"
                        served_b += 1
            await asyncio.sleep(0.2)

        # A refused reload leaves the running generation alone.
        if config_reloads:
            mark = write_and_hup("routes: [unclosed\n")
            await wait("config.reload_failed", timeout=20, since=mark)

        # Every session is still relaying; then SIGTERM with all of them live.
        before = dict(counts)
        await asyncio.sleep(0.3)
        assert all(counts[t] > before.get(t, 0) for t in counts), "a session stopped relaying"
        stop.set()
        await asyncio.gather(*tasks)
        w.proc.send_signal(signal.SIGTERM)
        await wait("shutdown", timeout=10)
        codes = []
        for ws in clients:
            try:
                await asyncio.wait_for(ws.recv(), 15)
            except Exception:  # noqa: BLE001 - ConnectionClosed is the expected end
                pass
            codes.append(ws.close_code)
        return config_reloads, served_b, codes

    config_reloads, served_b, codes = run(go(), timeout=120)
    assert served_b == (4 * (RELOADS // 2) if config_reloads else 0)
    assert codes == [1001] * CLIENTS, codes
    rc = w.terminate(timeout=20)
    reports = sanitizer_reports(w.stderr)
    assert not reports, "sanitizer report(s):\n" + w.stderr[-6000:]
    assert rc == 0, f"weir exited {rc}; stderr: {w.stderr[-3000:]}"

    # Both workers carried sessions (the low byte of a session id is its worker),
    # and every one of them reached the backend through the resolved name.
    opens = w.log.find("conn.open")
    assert {e["id"] & 0xFF for e in opens} == {0, 1}, [e["id"] for e in opens]
    assert {e["upstream"] for e in opens} == {upstream}
    assert len(opens) == CLIENTS + served_b
    events = [e.get("event") for e in w.log.items]
    assert events.index("shutdown") < events.index("stopped")
