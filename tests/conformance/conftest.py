"""RFC 6455 conformance: the same raw byte sequences sent to a strict backend directly and
through Weir; the verdicts must match.

Run: WEIR_BIN=build/weir /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/conformance

Reuses the integration suite's helpers (tests/integration/weirlib.py: the weir process,
Python websockets peers, raw frame writer/reader, raw client and backend) and its
WeirFactory / PeerFactory classes from tests/integration/conftest.py.
"""

from __future__ import annotations

import importlib.util
import os
import ssl
import sys
from collections import OrderedDict
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
INTEGRATION = HERE.parent / "integration"
sys.path.insert(0, str(INTEGRATION))
sys.path.insert(0, str(HERE))

from tlscerts import generate  # noqa: E402
from weirlib import PEERS_DIR, PYTHON, Peer, make_config, weir_bin  # noqa: E402


def _load_integration_conftest():
    spec = importlib.util.spec_from_file_location("weir_integration_conftest", INTEGRATION / "conftest.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


_ic = _load_integration_conftest()
WeirFactory = _ic.WeirFactory
PeerFactory = _ic.PeerFactory


def pytest_configure(config):
    b = weir_bin()
    if not os.access(b, os.X_OK):
        raise pytest.UsageError(f"weir binary not found at {b} (set WEIR_BIN or build it)")
    config.addinivalue_line("markers", "group(name): conformance case group, for the summary table")


@pytest.fixture(scope="session")
def backend():
    """The strict reference: Python websockets echo, max_size=None, compression=None."""
    f = PeerFactory()
    py = f.py("echo", "--no-compression")
    yield py
    f.teardown()


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    """The integration suite's test PKI (tlscerts.py): `default` is valid for 127.0.0.1."""
    return generate(tmp_path_factory.mktemp("tls-pki"))


@pytest.fixture(scope="session")
def tls_backend(pki):
    """The same reference over TLS: Python websockets echo, max_size=None, no compression
    (peers/tlsback.py), with a certificate for 127.0.0.1."""
    peer = Peer([PYTHON, str(PEERS_DIR / "tlsback.py"), "--cert", str(pki.default.cert),
                 "--key", str(pki.default.key)])
    yield peer
    peer.stop()


@pytest.fixture(scope="session")
def proxy(backend, tls_backend, pki, tmp_path_factory):
    """One Weir with a ws:// and a wss:// listener, and four routes: /strict (strict: true),
    /inspect (the inspecting pump) and / (default) to the reference backend, /wss-upstream to
    the same reference over TLS.
    The listeners' ports are proxy.ports[0] (ws) and proxy.ports[1] (wss)."""
    f = WeirFactory(tmp_path_factory.mktemp("weir"))
    listeners = [
        {"address": "127.0.0.1", "port": 0},
        {"address": "127.0.0.1", "port": 0,
         "tls": {"certificates": [{"cert": str(pki.default.cert), "key": str(pki.default.key)}]}},
    ]
    cfg = make_config([
        {"name": "strict", "match": {"path_prefix": "/strict"}, "upstreams": [backend.addr], "strict": True},
        {"name": "wss-upstream", "match": {"path_prefix": "/wss-upstream"},
         "upstreams": [f"wss://127.0.0.1:{tls_backend.port}"], "upstream_tls": {"ca": str(pki.ca)}},
        # The inspecting pump (every message reassembled, handed to a filter, re-framed and
        # re-masked): a filter that reads payloads but changes none of the cases' messages
        # (they hold no control characters; binary ones are not its business).
        {"name": "inspect", "match": {"path_prefix": "/inspect"}, "upstreams": [backend.addr],
         "sanitize": {"html": "keep", "control_chars": "drop", "direction": "client"}},
        {"name": "plain", "match": {"path_prefix": "/"}, "upstreams": [backend.addr]},
    ], listeners=listeners)
    w = f.start(cfg, name="weir-conformance")
    yield w
    errors = f.teardown()
    assert not errors, "\n".join(errors)


@pytest.fixture(scope="session")
def client_tls(pki):
    ctx = ssl.create_default_context(cafile=str(pki.ca))
    ctx.check_hostname = False  # the certificate is checked against the CA; the name is 127.0.0.1
    return ctx


@pytest.fixture
def weir(tmp_path):
    f = WeirFactory(tmp_path)
    yield f
    errors = f.teardown()
    assert not errors, "\n".join(errors)


@pytest.fixture
def peers():
    f = PeerFactory()
    yield f
    f.teardown()


# --------------------------------------------------------------------------- summary table

_groups_by_nodeid: dict[str, str] = {}
_results: "OrderedDict[str, dict[str, int]]" = OrderedDict()


def pytest_collection_modifyitems(session, config, items):
    for item in items:
        if HERE not in Path(str(item.fspath)).resolve().parents:
            continue  # only this directory's cases go in the table
        m = item.get_closest_marker("group")
        g = m.args[0] if m else "other"
        _groups_by_nodeid[item.nodeid] = g
        _results.setdefault(g, {"passed": 0, "failed": 0, "skipped": 0})


def pytest_runtest_logreport(report):
    g = _groups_by_nodeid.get(report.nodeid)
    if g is None:
        return
    r = _results[g]
    if report.when == "call":
        if report.passed:
            r["passed"] += 1
        elif report.failed:
            r["failed"] += 1
        else:
            r["skipped"] += 1
    elif report.failed:  # setup/teardown error
        r["failed"] += 1
    elif report.skipped and report.when == "setup":
        r["skipped"] += 1


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not any(sum(r.values()) for r in _results.values()):
        return  # nothing ran (e.g. --collect-only)
    tr = terminalreporter
    tr.section("conformance summary")
    w = max(len("group"), *(len(g) for g in _results))
    tr.write_line(f"{'group':<{w}}  {'passed':>6}  {'failed':>6}  {'skipped':>7}")
    tot = {"passed": 0, "failed": 0, "skipped": 0}
    for g, r in _results.items():
        tr.write_line(f"{g:<{w}}  {r['passed']:>6}  {r['failed']:>6}  {r['skipped']:>7}")
        for k in tot:
            tot[k] += r[k]
    tr.write_line(f"{'total':<{w}}  {tot['passed']:>6}  {tot['failed']:>6}  {tot['skipped']:>7}")
