"""A real browser over wss:// through Weir: headless Debian Chromium loads
browser/echo.html from a local HTTP server; the page opens wss://localhost:PORT/echo
(Weir, TLS listener with the test PKI's localhost certificate, built-in echo upstream),
sends 3 messages (text, 70 kB binary, text), checks each echo and reports to /report.

Chromium trusts the test certificate through --ignore-certificate-errors-spki-list (the
SHA-256 of the certificate's public key); without it the same page must fail.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "browser"))

from harness import CHROMIUM, Chromium, PageServer  # noqa: E402
from tlscerts import certs, spki_sha256_b64  # noqa: E402,F401 (fixture)
from weirlib import make_config  # noqa: E402

pytestmark = pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK),
                                reason=f"{CHROMIUM} not installed (apt-get install chromium)")

N = 3


@pytest.fixture(scope="module")
def env(module_weir, certs):
    w = module_weir.start(make_config(
        [{"name": "echo", "match": {"path": "/echo"}, "upstreams": ["echo"]}],
        listeners=[{"address": "127.0.0.1", "port": 0, "tls": {
            "certificates": [{"cert": str(certs.default.cert), "key": str(certs.default.key)}]}}]))
    srv = PageServer()
    yield w, srv
    srv.close()


def open_page(env, tmp_path, flags) -> dict:
    w, srv = env
    srv.reports.clear()
    url = srv.url("echo.html", url=f"wss://localhost:{w.port}/echo", n=str(N))
    ch = Chromium(url, tmp_path / "profile", flags)
    try:
        rep = srv.wait_report(30)
        assert rep is not None, f"the page reported nothing within 30s; chromium said:\n{ch.output()}"
        return rep
    finally:
        ch.stop()


def test_browser_wss_echo(env, certs, tmp_path):
    w, _ = env
    mark = w.log.mark()
    spki = spki_sha256_b64(certs.default.cert)
    rep = open_page(env, tmp_path, [f"--ignore-certificate-errors-spki-list={spki}"])
    assert rep.get("matched") == N and rep.get("sent") == N, f"{rep.get('matched')} of {N} echoes matched: {rep}"
    assert rep.get("ok") is True and rep.get("close_code") == 1000, rep
    opened = w.log.wait("conn.open", since=mark)[0]
    assert opened.get("tls") == "TLSv1.3" and opened.get("sni") == "localhost", opened
    closed = w.log.wait("conn.close", since=mark)[0]
    assert closed.get("msgs_in") == N and closed.get("msgs_out") == N, closed
    assert closed.get("close_code") == 1000, closed


def test_browser_untrusted_certificate_fails(env, tmp_path):
    """The control: without the SPKI pin the browser refuses Weir's (test CA) certificate."""
    w, _ = env
    mark = w.log.mark()
    rep = open_page(env, tmp_path, [])
    assert rep.get("ok") is False and rep.get("matched") == 0, rep
    assert rep.get("close_code") == 1006, rep
    assert not w.log.find("conn.open", since=mark)
    w.log.wait("tls.handshake_failed", since=mark)
