"""Headless Chromium driving a test page: a local HTTP server for the page and the page's
report, and the browser process.

PageServer serves this directory on 127.0.0.1 (port 0) and records every
GET /report?result=<json> it receives; wait_report() returns the first one.
Chromium(...) starts /usr/bin/chromium --headless=new on a URL with a throw-away profile;
stop() ends it (the process group it started, by id).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

HERE = Path(__file__).resolve().parent
CHROMIUM = "/usr/bin/chromium"


class PageServer:
    def __init__(self) -> None:
        self.reports: list[dict] = []
        self.cond = threading.Condition()
        owner = self

        class Handler(SimpleHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                u = urlparse(self.path)
                if u.path == "/report":
                    raw = parse_qs(u.query).get("result", ["{}"])[0]
                    try:
                        rep = json.loads(raw)
                    except ValueError:
                        rep = {"unparsable": raw}
                    with owner.cond:
                        owner.reports.append(rep)
                        owner.cond.notify_all()
                    self.send_response(204)
                    self.end_headers()
                    return
                super().do_GET()

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(HERE)))
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, page: str, **query: str) -> str:
        from urllib.parse import urlencode
        return f"http://127.0.0.1:{self.port}/{page}?{urlencode(query)}"

    def wait_report(self, timeout: float) -> dict | None:
        deadline = time.monotonic() + timeout
        with self.cond:
            while not self.reports:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(min(left, 0.2))
            return self.reports[0]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class Chromium:
    def __init__(self, url: str, profile: Path, extra_flags: list[str] = ()) -> None:
        self.argv = [CHROMIUM, "--headless=new", "--no-sandbox", f"--user-data-dir={profile}",
                     "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                     "--no-default-browser-check", "--disable-extensions",
                     "--disable-background-networking", "--disable-component-update",
                     "--disable-sync", "--metrics-recording-only", "--mute-audio",
                     *extra_flags, url]
        self.log_path = profile.parent / f"{profile.name}.chromium.log"
        self.log = open(self.log_path, "wb")
        # its own session (process group), so stop() reaches the renderer and helpers too
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def output(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(timeout=5)
        self.log.close()
