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
import sys
from collections import OrderedDict
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
INTEGRATION = HERE.parent / "integration"
sys.path.insert(0, str(INTEGRATION))
sys.path.insert(0, str(HERE))

from weirlib import make_config, weir_bin  # noqa: E402


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
def proxy(backend, tmp_path_factory):
    """One Weir, two routes to the same backend: /strict (strict: true) and / (default)."""
    f = WeirFactory(tmp_path_factory.mktemp("weir"))
    cfg = make_config([
        {"name": "strict", "match": {"path_prefix": "/strict"}, "upstreams": [backend.addr], "strict": True},
        {"name": "plain", "match": {"path_prefix": "/"}, "upstreams": [backend.addr]},
    ])
    w = f.start(cfg, name="weir-conformance")
    yield w
    errors = f.teardown()
    assert not errors, "\n".join(errors)


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
