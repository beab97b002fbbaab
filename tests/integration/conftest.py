"""Shared fixtures: weir processes, Python websockets / Node ws / raw backends.

Run: WEIR_BIN=build/weir /usr/bin/python3 -m pytest -q tests/integration
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from weirlib import (  # noqa: E402
    RawBackend,
    Weir,
    make_config,
    node_available,
    node_echo_backend,
    py_backend,
    weir_bin,
)


def pytest_configure(config):
    b = weir_bin()
    if not os.access(b, os.X_OK):
        raise pytest.UsageError(f"weir binary not found at {b} (set WEIR_BIN or build it)")


class WeirFactory:
    """start(config) -> Weir; every weir started is stopped with SIGTERM at teardown and
    must exit 0 (unless the test already stopped it and checked)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.started: list[Weir] = []

    def start(self, config, name: str | None = None, wrapper: list[str] | None = None,
              args: tuple[str, ...] = (), env: dict[str, str] | None = None) -> Weir:
        w = Weir(config, self.workdir, name=name or f"weir{len(self.started)}", wrapper=wrapper, args=args,
                 env=env)
        self.started.append(w)
        return w

    def routes(self, routes: list[dict], **top) -> Weir:
        return self.start(make_config(routes, **top))

    def teardown(self) -> list[str]:
        errors = []
        for w in self.started:
            if w.returncode is not None:
                continue
            if not w.alive():
                errors.append(f"weir exited on its own with {w.proc.returncode}; stderr: {w.stderr[-2000:]}")
                continue
            try:
                rc = w.terminate(timeout=20)
            except AssertionError as e:
                errors.append(str(e))
                continue
            if rc != 0:
                errors.append(f"weir exited {rc} after SIGTERM; stderr: {w.stderr[-2000:]}")
        return errors


@pytest.fixture
def weir(tmp_path):
    f = WeirFactory(tmp_path)
    yield f
    errors = f.teardown()
    assert not errors, "\n".join(errors)


@pytest.fixture(scope="module")
def module_weir(tmp_path_factory):
    f = WeirFactory(tmp_path_factory.mktemp("weir"))
    yield f
    errors = f.teardown()
    assert not errors, "\n".join(errors)


class PeerFactory:
    def __init__(self) -> None:
        self.peers = []

    def py(self, mode: str = "echo", *args: str):
        p = py_backend(mode, *args)
        self.peers.append(p)
        return p

    def node_echo(self):
        if not node_available():
            pytest.fail("node or tests/node/node_modules/ws missing: run scripts/setup test")
        p = node_echo_backend()
        self.peers.append(p)
        return p

    def raw(self, mode: str = "echo", on_open=None, tls=None) -> RawBackend:
        b = RawBackend(mode, on_open, tls)
        self.peers.append(b)
        return b

    def teardown(self) -> None:
        for p in self.peers:
            if isinstance(p, RawBackend):
                p.close()
            else:
                p.stop()


@pytest.fixture
def peers():
    f = PeerFactory()
    yield f
    f.teardown()


@pytest.fixture(scope="module")
def module_peers():
    f = PeerFactory()
    yield f
    f.teardown()
