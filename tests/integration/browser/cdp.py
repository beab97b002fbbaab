"""A small Chrome DevTools Protocol client for driving headless Chromium from a test.

    with Browser(tmp_path / "profile") as b:
        b.page.navigate("http://127.0.0.1:8080/")
        b.page.wait_for("document.readyState === 'complete'")
        png = b.page.screenshot()

Browser starts /usr/bin/chromium --headless=new --remote-debugging-port=0 with a
throw-away profile (through harness.Chromium, so stop() ends its whole process group),
reads the port Chromium picked from <profile>/DevToolsActivePort, and connects to the
page target's webSocketDebuggerUrl.

The websocket is Debian's python3-websockets 10.4, which has no sync client
(websockets.sync arrived in 11): its asyncio client runs on an event loop in a thread
of its own and Page offers blocking calls. Every call and wait is bounded.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any, Optional

import websockets

from harness import Chromium


class CDPError(Exception):
    """An error answer from the browser, or an exception thrown by evaluated script."""


class Page:
    """One CDP session on a page target (blocking API)."""

    def __init__(self, ws_url: str, timeout: float = 10.0) -> None:
        self.timeout = timeout
        self.events: list[dict] = []
        self.cond = threading.Condition()
        self._next_id = 0
        self._pending: dict[int, asyncio.Future] = {}
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="cdp", daemon=True)
        self.thread.start()
        try:
            self.ws = self._run(self._connect(ws_url, timeout), timeout + 1)
        except BaseException:
            self._stop_loop()
            raise
        self._reader = asyncio.run_coroutine_threadsafe(self._read_loop(), self.loop)

    # ------------------------------------------------------------------ plumbing

    def _run(self, coro, timeout: float):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    @staticmethod
    async def _connect(ws_url: str, timeout: float):
        return await websockets.connect(ws_url, max_size=None, ping_interval=None,
                                        compression=None, open_timeout=timeout)

    async def _read_loop(self) -> None:
        try:
            async for raw in self.ws:
                msg = json.loads(raw)
                if "id" in msg:
                    fut = self._pending.pop(msg["id"], None)
                    if fut is not None and not fut.done():
                        fut.set_result(msg)
                else:
                    with self.cond:
                        self.events.append(msg)
                        self.cond.notify_all()
        except websockets.ConnectionClosed:
            pass
        finally:
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(CDPError("the DevTools connection closed"))
            self._pending.clear()
            with self.cond:
                self.cond.notify_all()

    async def _call(self, method: str, params: dict) -> dict:
        self._next_id += 1
        mid = self._next_id
        fut = self.loop.create_future()
        self._pending[mid] = fut
        await self.ws.send(json.dumps({"id": mid, "method": method, "params": params}))
        return await fut

    def call(self, method: str, timeout: Optional[float] = None, **params: Any) -> dict:
        """Send one command and return its result (raises CDPError on an error answer)."""
        t = timeout or self.timeout
        try:
            msg = self._run(asyncio.wait_for(self._call(method, params), t), t + 1)
        except asyncio.TimeoutError:
            raise CDPError(f"{method}: no answer within {t}s") from None
        if "error" in msg:
            raise CDPError(f"{method}: {msg['error']}")
        return msg.get("result", {})

    def wait_event(self, method: str, timeout: Optional[float] = None, since: int = 0) -> dict:
        deadline = time.monotonic() + (timeout or self.timeout)
        with self.cond:
            while True:
                for ev in self.events[since:]:
                    if ev.get("method") == method:
                        return ev
                left = deadline - time.monotonic()
                if left <= 0:
                    raise CDPError(f"no {method} event within {timeout or self.timeout}s")
                self.cond.wait(min(left, 0.2))

    def mark(self) -> int:
        """The number of events so far (for since= in wait_event)."""
        with self.cond:
            return len(self.events)

    def find_events(self, method: str) -> list[dict]:
        with self.cond:
            return [e for e in self.events if e.get("method") == method]

    def close(self) -> None:
        try:
            self._run(self.ws.close(), 5)
        except Exception:  # noqa: BLE001 (the browser may be gone already)
            pass
        self._stop_loop()

    def _stop_loop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    # ------------------------------------------------------------------ page API

    def navigate(self, url: str, timeout: float = 15.0) -> None:
        """Page.navigate and wait for the load event (none comes for a same-document
        navigation, e.g. a change of #fragment only: no wait then)."""
        self.call("Page.enable")
        with self.cond:
            mark = len(self.events)
        res = self.call("Page.navigate", url=url)
        if res.get("errorText"):
            raise CDPError(f"navigating to {url}: {res['errorText']}")
        if res.get("loaderId"):
            self.wait_event("Page.loadEventFired", timeout=timeout, since=mark)

    def reload(self, timeout: float = 15.0) -> None:
        """Page.reload and wait for the load event."""
        self.call("Page.enable")
        with self.cond:
            mark = len(self.events)
        self.call("Page.reload", ignoreCache=True)
        self.wait_event("Page.loadEventFired", timeout=timeout, since=mark)

    def evaluate(self, expression: str, timeout: Optional[float] = None) -> Any:
        """The value of a JavaScript expression (awaited if it is a promise, returned by value)."""
        res = self.call("Runtime.evaluate", timeout=timeout, expression=expression,
                        returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in res:
            d = res["exceptionDetails"]
            desc = d.get("exception", {}).get("description") or d.get("text")
            raise CDPError(f"{expression!r} threw: {desc}")
        return res.get("result", {}).get("value")

    def wait_for(self, expression: str, timeout: float = 10.0, interval: float = 0.1) -> Any:
        """Evaluate `expression` until it is truthy; return that value."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while True:
            last = self.evaluate(expression)
            if last:
                return last
            if time.monotonic() >= deadline:
                raise CDPError(f"{expression!r} still {last!r} after {timeout}s")
            time.sleep(interval)

    def screenshot(self, full_page: bool = True) -> bytes:
        """A PNG of the page (the whole document when full_page)."""
        params: dict = {"format": "png"}
        if full_page:
            m = self.call("Page.getLayoutMetrics")
            size = m.get("cssContentSize") or m.get("contentSize")
            params.update(captureBeyondViewport=True,
                          clip={"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1})
        res = self.call("Page.captureScreenshot", timeout=30, **params)
        return base64.b64decode(res["data"])


class Browser:
    """Headless Chromium with remote debugging, and a CDP session on its first page."""

    def __init__(self, profile: Path, width: int = 1400, height: int = 1000,
                 start_timeout: float = 30.0) -> None:
        self.profile = profile
        profile.mkdir(parents=True, exist_ok=True)
        self.chromium = Chromium("about:blank", profile, [
            "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
            f"--window-size={width},{height}", "--hide-scrollbars", "--force-device-scale-factor=1"])
        self.page: Optional[Page] = None
        try:
            self.port = self._read_port(start_timeout)
            self.page = Page(self._page_ws_url(start_timeout))
        except BaseException:
            self.close()
            raise

    def _read_port(self, timeout: float) -> int:
        f = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.chromium.proc.poll() is not None:
                raise CDPError(f"chromium exited with {self.chromium.proc.returncode}:\n{self.chromium.output()}")
            try:
                first = f.read_text().splitlines()[0].strip()
                if first:
                    return int(first)
            except (OSError, IndexError, ValueError):
                pass
            time.sleep(0.1)
        raise CDPError(f"no {f} within {timeout}s; chromium said:\n{self.chromium.output()}")

    def _page_ws_url(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/json/list", timeout=5) as r:
                    targets = json.load(r)
                for t in targets:
                    if t.get("type") == "page" and t.get("webSocketDebuggerUrl"):
                        return t["webSocketDebuggerUrl"]
                last = targets
            except OSError as e:
                last = e
            time.sleep(0.1)
        raise CDPError(f"no page target within {timeout}s (last: {last!r})")

    def close(self) -> None:
        if self.page is not None:
            self.page.close()
            self.page = None
        self.chromium.stop()

    def __enter__(self) -> "Browser":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
