"""The admin dashboard (src/admin/dashboard, docs/admin.md) in a real browser.

Weir runs with an admin listener on port 0 and a route to the built-in echo upstream;
3 Python websockets clients keep sending through it. Headless Chromium, driven over
the DevTools protocol (browser/cdp.py), loads the page from the admin listener with
?interval=250 and the test reads the page's DOM: the live count, the rates, the
tables; it clicks a connection's Close button and checks that this client gets the
Close (1000, "closed from dashboard") and the page drops to 2 connections; then
the same with a code typed into the close-code input. A screenshot is always taken
(docs/dashboard.png with WEIR_SCREENSHOT=1). A second test covers the token: 401,
the token form, then the page working with the token.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import struct
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import websockets

sys.path.insert(0, str(Path(__file__).resolve().parent / "browser"))

from cdp import Browser  # noqa: E402
from harness import CHROMIUM  # noqa: E402
from weirlib import REPO, build_request, http_exchange, make_config  # noqa: E402

pytestmark = pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK),
                                reason=f"{CHROMIUM} not installed (apt-get install chromium)")

DASHBOARD_DIR = REPO / "src" / "admin" / "dashboard"
ASSETS = {"/": ("index.html", "text/html"),
          "/dashboard.js": ("dashboard.js", "javascript"),
          "/dashboard.css": ("dashboard.css", "text/css")}
N_CLIENTS = 3
REASON = "closed from dashboard"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------- clients


class Client:
    def __init__(self, index: int, ws) -> None:
        self.index = index
        self.ws = ws
        self.port: int = ws.local_address[1]
        self.sent = 0
        self.received = 0
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self.closed = threading.Event()


class Clients:
    """n websockets clients through Weir, each sending a small text message every
    `period` seconds (for at most `limit` seconds) and counting the echoes, on an event
    loop in a thread of their own. stop() closes what is still open and ends the loop."""

    def __init__(self, url: str, n: int, period: float = 0.02, limit: float = 180.0) -> None:
        self.period = period
        self.deadline = time.monotonic() + limit
        self.stopping = False
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="ws-clients", daemon=True)
        self.thread.start()
        self.clients: list[Client] = []
        self.tasks = []
        try:
            self.clients = self._run(self._open(url, n), 20)
        except BaseException:
            self.stop()
            raise
        self.tasks = [asyncio.run_coroutine_threadsafe(self._drive(c), self.loop) for c in self.clients]

    def _run(self, coro, timeout: float):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _open(self, url: str, n: int) -> list[Client]:
        out = []
        for i in range(n):
            ws = await websockets.connect(url, max_size=None, compression=None, ping_interval=None,
                                          open_timeout=10, close_timeout=5)
            out.append(Client(i, ws))
        return out

    async def _drive(self, c: Client) -> None:
        async def send() -> None:
            while not self.stopping and time.monotonic() < self.deadline:
                await c.ws.send(f"client {c.index} message {c.sent}")
                c.sent += 1
                await asyncio.sleep(self.period)

        sender = asyncio.ensure_future(send())
        try:
            async for _ in c.ws:
                c.received += 1
        except websockets.ConnectionClosed:
            pass
        finally:
            sender.cancel()
            try:
                await sender
            except (asyncio.CancelledError, websockets.ConnectionClosed):
                pass
            c.close_code = c.ws.close_code
            c.close_reason = c.ws.close_reason
            c.closed.set()

    async def _close_all(self) -> None:
        await asyncio.gather(*(c.ws.close(1000, "test done") for c in self.clients if not c.closed.is_set()),
                             return_exceptions=True)

    def stop(self) -> None:
        self.stopping = True
        if self.clients:
            try:
                self._run(asyncio.wait_for(self._close_all(), 10), 12)
            except Exception:  # noqa: BLE001 (best effort at teardown)
                pass
        for t in self.tasks:
            try:
                t.result(10)
            except Exception:  # noqa: BLE001
                pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    def by_port(self, port: int) -> Client:
        for c in self.clients:
            if c.port == port:
                return c
        raise AssertionError(f"no client with local port {port}: {[c.port for c in self.clients]}")


# --------------------------------------------------------------------------- helpers


def http_get(port: int, path: str, token: str | None = None) -> tuple[int, dict, bytes]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def start_weir(weir, admin: dict):
    w = weir.start(make_config([{"name": "echo", "match": {"path": "/echo"}, "upstreams": ["echo"]}],
                               admin={"address": "127.0.0.1", "port": 0, **admin}))
    ev = w.log.wait("admin_listening", timeout=10)[0]
    port = int(ev["port"])
    assert port > 0, ev
    return w, port


SNAPSHOT_JS = r"""
(() => {
  const q = (s) => document.querySelector(s);
  const all = (s) => Array.from(document.querySelectorAll(s));
  const text = (s) => (q(s) ? q(s).textContent : null);
  const val = (s) => (q(s) && q(s).dataset.value !== '' ? Number(q(s).dataset.value) : null);
  return {
    updates: Number(document.body.dataset.updates || 0),
    error: q('#error-banner').hidden ? null : q('#error-banner').textContent,
    tokenForm: !q('#token-form').hidden,
    active: text('#active-connections'),
    text: {connects: text('#connects-rate'), mc2u: text('#msgs-rate-c2u'), mu2c: text('#msgs-rate-u2c'),
           bc2u: text('#bytes-rate-c2u'), bu2c: text('#bytes-rate-u2c')},
    value: {connects: val('#connects-rate'), mc2u: val('#msgs-rate-c2u'), mu2c: val('#msgs-rate-u2c'),
            bc2u: val('#bytes-rate-c2u'), bu2c: val('#bytes-rate-u2c')},
    header: {version: text('#version'), generation: text('#generation'), draining: text('#draining'),
             uptime: text('#uptime')},
    rows: all('#connections-table tbody tr[data-id]').map((r) => ({
      id: r.dataset.id,
      client: r.querySelector('[data-field="client"]').textContent,
      route: r.querySelector('[data-field="route"]').textContent,
      buttons: r.querySelectorAll('button.close-btn').length,
    })),
    routes: all('#routes-table tbody tr[data-route]').map((r) => ({
      name: r.dataset.route, cells: Array.from(r.cells).map((c) => c.textContent)})),
    codes: Object.fromEntries(all('#close-codes tbody tr[data-code]').map(
      (r) => [r.dataset.code, r.cells[r.cells.length - 1].textContent])),
    rejections: all('#rejections tbody tr[data-reason]').map((r) => r.dataset.reason),
    charts: all('canvas').map((c) => [c.id, c.width, c.height]),
  };
})()
"""

RATE_RE = re.compile(r"^\d+\.\d$")
BYTE_RATE_RE = re.compile(r"^\d+\.\d (B|KiB|MiB|GiB|TiB)/s$")


def snapshot(page) -> dict:
    return page.evaluate(SNAPSHOT_JS)


def wait_snapshot(page, pred, what: str, timeout: float = 10.0) -> dict:
    """Poll the page until pred(snapshot) holds; fail with the last snapshot."""
    deadline = time.monotonic() + timeout
    while True:
        snap = snapshot(page)
        if pred(snap):
            return snap
        if time.monotonic() >= deadline:
            raise AssertionError(f"page: {what} not seen within {timeout}s; last state:\n"
                                 + json.dumps(snap, indent=1))
        time.sleep(0.1)


def check_png(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_MAGIC and data[12:16] == b"IHDR", data[:16]
    width, height = struct.unpack("!II", data[16:24])
    assert width > 0 and height > 0 and len(data) > 1000, (width, height, len(data))
    return width, height


def page_exceptions(page, since: int) -> list[str]:
    """Uncaught exceptions in the page since event index `since`."""
    out = []
    with page.cond:
        events = page.events[since:]
    for ev in events:
        if ev.get("method") != "Runtime.exceptionThrown":
            continue
        d = ev["params"]["exceptionDetails"]
        out.append(d.get("exception", {}).get("description") or d.get("text", "?"))
    return out


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    b = Browser(tmp_path_factory.mktemp("chromium") / "profile")
    b.page.call("Runtime.enable")
    yield b
    b.close()


# --------------------------------------------------------------------------- tests


def test_dashboard_live_view_and_close(weir, browser, tmp_path):
    w, admin = start_weir(weir, {})

    # The page and its two files, served verbatim from the repository's copies.
    for path, (name, ctype) in ASSETS.items():
        status, headers, body = http_get(admin, path)
        assert status == 200, f"GET {path}: {status} {body[:200]!r}"
        assert ctype in headers.get("content-type", ""), f"GET {path}: Content-Type {headers.get('content-type')!r}"
        assert body == (DASHBOARD_DIR / name).read_bytes(), \
            f"GET {path} is not src/admin/dashboard/{name} as it is now (stale embed?)"

    # One refused handshake (no route for /nope), for the rejections table.
    http_exchange(w.port, build_request("/nope"))

    clients = Clients(w.url("/echo"), N_CLIENTS)
    page = browser.page
    try:
        # the relay is up both ways before the page loads
        deadline = time.monotonic() + 10
        while any(c.received == 0 for c in clients.clients):
            assert time.monotonic() < deadline, [(c.sent, c.received) for c in clients.clients]
            time.sleep(0.05)

        mark = page.mark()
        page.navigate(f"http://127.0.0.1:{admin}/?interval=250")
        page.wait_for("Number(document.body.dataset.updates) >= 4", timeout=20)
        snap = wait_snapshot(
            page, lambda s: (s["active"] == str(N_CLIENTS) and len(s["rows"]) == N_CLIENTS
                             and (s["value"]["mc2u"] or 0) > 0 and (s["value"]["mu2c"] or 0) > 0),
            f"{N_CLIENTS} active connections and messages flowing both ways")
        assert snap["error"] is None, snap["error"]
        assert not snap["tokenForm"], "no token is configured: the token form must stay hidden"

        # rates: 1 decimal, positive both ways for messages and bytes
        for k in ("connects", "mc2u", "mu2c"):
            assert RATE_RE.match(snap["text"][k]), (k, snap["text"])
        for k in ("bc2u", "bu2c"):
            assert BYTE_RATE_RE.match(snap["text"][k]), (k, snap["text"])
            assert snap["value"][k] > 0, (k, snap["value"])

        # header from /admin/stats
        status, _, body = http_get(admin, "/admin/stats")
        assert status == 200, body
        stats = json.loads(body)
        assert snap["header"]["version"] == stats["version"], (snap["header"], stats["version"])
        assert snap["header"]["generation"] == str(stats["generation"]), (snap["header"], stats["generation"])
        assert snap["header"]["draining"] == "serving", snap["header"]

        # the tables
        assert [r["name"] for r in snap["routes"]] == ["echo"], snap["routes"]
        assert snap["routes"][0]["cells"][1] == str(N_CLIENTS), snap["routes"]
        assert snap["rejections"], f"the refused handshake is not in #rejections: {stats.get('handshakes')}"
        ports = sorted(int(r["client"].rsplit(":", 1)[1]) for r in snap["rows"])
        assert ports == sorted(c.port for c in clients.clients), (snap["rows"], [c.port for c in clients.clients])
        assert all(r["route"] == "echo" and r["buttons"] == 1 for r in snap["rows"]), snap["rows"]
        assert all(wd > 0 and ht > 0 for _, wd, ht in snap["charts"]) and len(snap["charts"]) == 3, snap["charts"]

        # the screenshot (docs/dashboard.png on request, with a few more seconds of chart)
        if os.environ.get("WEIR_SCREENSHOT") == "1":
            page.wait_for("Number(document.body.dataset.updates) >= 80", timeout=60)
            shot_path = REPO / "docs" / "dashboard.png"
        else:
            shot_path = tmp_path / "dashboard.png"
        png = page.screenshot()
        check_png(png)
        shot_path.write_bytes(png)

        # Close from the page with the default code
        victim = clients.clients[0]
        row = next(r for r in snap["rows"] if r["client"].endswith(f":{victim.port}"))
        page.evaluate(f"document.querySelector('tr[data-id=\"{row['id']}\"] button.close-btn').click()")
        assert victim.closed.wait(10), "the client got no Close within 10s of the click"
        assert (victim.close_code, victim.close_reason) == (1000, REASON), (victim.close_code, victim.close_reason)
        snap = wait_snapshot(page, lambda s: s["active"] == str(N_CLIENTS - 1) and len(s["rows"]) == N_CLIENTS - 1,
                             f"{N_CLIENTS - 1} active connections after the close")
        assert row["id"] not in [r["id"] for r in snap["rows"]], snap["rows"]
        assert all(not c.closed.is_set() for c in clients.clients[1:]), "another client was closed too"

        # Close with a code typed into the close-code input
        victim = clients.clients[1]
        row = next(r for r in snap["rows"] if r["client"].endswith(f":{victim.port}"))
        page.evaluate("document.querySelector('#close-code').value = '4001'")
        page.evaluate(f"document.querySelector('tr[data-id=\"{row['id']}\"] button.close-btn').click()")
        assert victim.closed.wait(10), "the second client got no Close within 10s of the click"
        assert (victim.close_code, victim.close_reason) == (4001, REASON), (victim.close_code, victim.close_reason)
        snap = wait_snapshot(page, lambda s: (s["active"] == str(N_CLIENTS - 2) and len(s["rows"]) == N_CLIENTS - 2
                                              and "1000" in s["codes"] and "4001" in s["codes"]),
                             "1 active connection, close codes 1000 and 4001 counted")
        assert not clients.clients[2].closed.is_set(), "the third client was closed too"
        assert snap["error"] is None, snap["error"]
        assert page_exceptions(page, mark) == []
    finally:
        clients.stop()


def test_dashboard_asks_for_the_token(weir, browser):
    token = "dash-s3cret-token"
    w, admin = start_weir(weir, {"token": token})

    # the page is served without the token; the API is not
    status, _, _ = http_get(admin, "/")
    assert status == 200
    status, headers, _ = http_get(admin, "/admin/stats")
    assert status == 401 and headers.get("www-authenticate", "").startswith("Bearer"), (status, headers)

    page = browser.page
    mark = page.mark()
    page.navigate(f"http://127.0.0.1:{admin}/?interval=250")
    snap = wait_snapshot(page, lambda s: s["tokenForm"] and s["error"], "the token form after a 401")
    assert snap["updates"] == 0 and "401" in snap["error"], snap

    # the token typed into the form
    page.evaluate(f"document.querySelector('#token-input').value = {json.dumps(token)}")
    page.evaluate("document.querySelector('#token-form').requestSubmit()")
    page.wait_for("Number(document.body.dataset.updates) >= 2", timeout=10)
    snap = snapshot(page)
    assert not snap["tokenForm"] and snap["error"] is None, snap
    assert snap["active"] == "0", snap

    # kept for the tab: a reload works without asking again
    page.reload()
    page.wait_for("Number(document.body.dataset.updates) >= 2", timeout=10)
    snap = snapshot(page)
    assert not snap["tokenForm"] and snap["error"] is None, snap

    # #token=... in the address: used, then taken off the address bar
    page.evaluate("sessionStorage.clear()")
    page.navigate(f"http://127.0.0.1:{admin}/?interval=250&from=link#token={token}")
    page.wait_for("Number(document.body.dataset.updates) >= 2", timeout=10)
    assert page.evaluate("location.hash") == "", page.evaluate("location.href")
    assert page_exceptions(page, mark) == []
