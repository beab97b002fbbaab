"""13. Command line: check-config (file:line:col on error, exit 1; exit 0 when valid),
--version, `weir -c`, `weir demo`, and the JSON log format."""

import json
import re
import subprocess
import time

import pytest

from aiohelp import connect, run
from weirlib import REPO, EventLog, free_port, make_config, to_yaml, weir_bin

BAD = [
    # (id, file text, line, column, words in the message)
    ("unknown-key",
     "listeners:\n  - port: 0\nroutes:\n  - upstreams: echo\n    timout: {idle: 1s}\n",
     5, 5, ["timout"]),
    ("bad-duration",
     "listeners:\n  - port: 0\ntimeouts:\n  idle: abc\nroutes:\n  - upstreams: echo\n",
     4, 9, ["abc", "idle"]),
    ("bad-port",
     "listeners:\n  - port: 70000\nroutes:\n  - upstreams: echo\n",
     2, 11, ["port"]),
    ("bad-size",
     "listeners:\n  - port: 0\nlimits:\n  max_frame_bytes: lots\nroutes:\n  - upstreams: echo\n",
     4, 20, ["lots"]),
    ("bad-upstream",
     "listeners:\n  - port: 0\nroutes:\n  - name: r\n    upstreams: [backend]\n",
     5, 17, ["backend"]),
    ("duplicate-route-name",
     "listeners:\n  - port: 0\nroutes:\n  - name: a\n    match: {path: /a}\n    upstreams: echo\n"
     "  - name: a\n    upstreams: echo\n",
     7, 11, ["a"]),
    ("missing-routes", "listeners:\n  - port: 0\n", 1, 1, ["routes"]),
    ("per-route-handshake-timeout",
     "listeners:\n  - port: 0\nroutes:\n  - upstreams: echo\n    timeouts:\n      handshake: 1s\n",
     6, 7, ["handshake"]),
]


def check_config(path):
    return subprocess.run([weir_bin(), "check-config", "-c", str(path)],
                          capture_output=True, text=True, timeout=15)


@pytest.mark.parametrize("text,line,col,words", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_check_config_bad_file(tmp_path, text, line, col, words):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    p = check_config(path)
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    first = p.stderr.strip().splitlines()[0]
    m = re.match(rf"^{re.escape(str(path))}:(\d+):(\d+): (.+)$", first)
    assert m, f"not file:line:col: message: {first!r}"
    assert (int(m.group(1)), int(m.group(2))) == (line, col), first
    for w in words:
        assert w in m.group(3), first


def test_check_config_yaml_syntax_error(tmp_path):
    path = tmp_path / "syntax.yaml"
    path.write_text("listeners:\n  - port: 0\nroutes:\n  - upstreams: echo\n   bad: [\n")
    p = check_config(path)
    assert p.returncode == 1
    assert re.match(rf"^{re.escape(str(path))}:[1-9]\d*:\d+: YAML syntax error", p.stderr.strip()), p.stderr


def test_check_config_missing_file(tmp_path):
    path = tmp_path / "nope.yaml"
    p = check_config(path)
    assert p.returncode == 1
    assert p.stderr.strip().startswith(f"{path}:0:0: "), p.stderr


def test_check_config_good_file(tmp_path):
    path = tmp_path / "good.yaml"
    path.write_text(to_yaml(make_config(
        [{"name": "r1", "match": {"path": "/exact"}, "upstreams": ["127.0.0.1:9001", "echo"],
          "origins": ["https://ok.example"], "remask": False,
          "timeouts": {"idle": "30s"}, "limits": {"max_message_bytes": "1MiB"},
          "keepalive": {"interval": "20s"}},
         {"name": "r2", "match": {"path_prefix": "/p/", "host": "x.example.com",
                                  "headers": {"X-Tenant": "blue"}}, "upstreams": "echo"}],
        workers="auto",
        timeouts={"handshake": "10s", "connect": "5s", "upstream_handshake": "10s",
                  "idle": "300s", "max_lifetime": 0, "close": "5s"},
        limits={"max_header_bytes": "8KiB", "max_frame_bytes": "16MiB",
                "max_message_bytes": "64MiB", "buffer_bytes": "64KiB"},
        keepalive={"interval": 0, "timeout": "10s"})) + "\n")
    p = check_config(path)
    assert p.returncode == 0, p.stderr


def test_check_config_example_file():
    p = check_config(REPO / "examples" / "weir.yaml")
    assert p.returncode == 0, p.stderr


def test_run_with_bad_config_exits_nonzero(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("listeners:\n  - port: 0\nroutes:\n  - upstreams: echo\n    timout: 1s\n")
    p = subprocess.run([weir_bin(), "run", "-c", str(path)], capture_output=True, text=True, timeout=15)
    assert p.returncode != 0
    assert f"{path}:5:5:" in p.stderr
    assert "listening" not in p.stdout


def test_version():
    p = subprocess.run([weir_bin(), "--version"], capture_output=True, text=True, timeout=10)
    assert p.returncode == 0
    assert re.search(r"\d+\.\d+\.\d+", p.stdout), p.stdout


def _start(argv):
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL)
    log = EventLog()
    log.feed_from(proc.stdout)
    return proc, log


def _echo_once(url):
    async def go():
        async with connect(url) as ws:
            await ws.send("through")
            return await ws.recv()
    return run(go())


def test_dash_c_without_subcommand_runs(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(to_yaml(make_config([{"upstreams": "echo"}])) + "\n")
    proc, log = _start([weir_bin(), "-c", str(path)])
    try:
        port = log.wait("listening", timeout=10)[0]["port"]
        assert _echo_once(f"ws://127.0.0.1:{port}/x") == "through"
    finally:
        proc.terminate()
        assert proc.wait(timeout=15) == 0


def test_demo_echoes(tmp_path):
    port = free_port()
    proc, log = _start([weir_bin(), "demo", "--port", str(port)])
    try:
        ev = log.wait("listening", timeout=10)[0]
        assert ev["port"] == port
        assert _echo_once(f"ws://127.0.0.1:{port}/any/path") == "through"
    finally:
        proc.terminate()
        assert proc.wait(timeout=15) == 0


def test_stdout_is_json_lines(weir):
    w = weir.routes([{"upstreams": "echo"}])
    _echo_once(w.url("/"))
    w.log.wait("conn.close", timeout=5)
    assert w.terminate() == 0
    time.sleep(0.1)
    assert w.log.raw, "no log output"
    for line in w.log.raw:
        obj = json.loads(line)  # every line is one JSON object
        assert isinstance(obj, dict)
        assert {"ts", "level", "event"} <= obj.keys(), line
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", obj["ts"]), line
    events = [json.loads(l)["event"] for l in w.log.raw]
    assert events[0] == "listening"
    assert events[-1] == "stopped"
