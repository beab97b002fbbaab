"""Observability deployment artefacts against the real binary: the Prometheus alert rules
(deploy/prometheus/alerts.yml), the Grafana dashboard (deploy/grafana/weir-dashboard.json)
and Weir's /metrics on the admin listener (docs/metrics.md, docs/admin.md).

- the rules pass `promtool check rules`, and promtool unit tests (generated here) show each
  alert firing, with its labels and expanded annotations, exactly when it should;
- the dashboard's variables, panels and layout are sound, and every query is valid PromQL
  (checked by promtool as recording rules);
- Weir's exposition, after known traffic (echo, a protocol error, a filter refusal and a
  filter close, a refused upstream, an unknown path, backpressure), passes
  `promtool check metrics` with no lint finding, matches docs/metrics.md family by family
  (type, HELP, labels, buckets), carries the exact counts of that traffic, and has every
  metric the dashboard and the rules use;
- a real Prometheus scrapes Weir (25 messages sent = 25 counted, the open session seen as
  active), loads the rules (all healthy, WeirUpstreamDown pending for a dead upstream and
  nothing else active) and answers every dashboard query.

promtool / prometheus come from Debian's `prometheus` package (scripts/setup test); the tests
that need them are skipped without them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Callable, Optional

import pytest
import yaml

from aiohelp import connect, run
from weirlib import (OP_CLOSE, OP_TEXT, REPO, RawClient, RedisServer, build_request, close_payload,
                     encode_frame, free_port, http_exchange, make_config)

PROMTOOL = "/usr/bin/promtool"
PROMETHEUS = "/usr/bin/prometheus"
ALERTS = REPO / "deploy" / "prometheus" / "alerts.yml"
DASHBOARD = REPO / "deploy" / "grafana" / "weir-dashboard.json"
METRICS_DOC = REPO / "docs" / "metrics.md"

needs_promtool = pytest.mark.skipif(not os.access(PROMTOOL, os.X_OK),
                                    reason=f"{PROMTOOL} missing (Debian package prometheus)")
needs_prometheus = pytest.mark.skipif(not os.access(PROMETHEUS, os.X_OK),
                                      reason=f"{PROMETHEUS} missing (Debian package prometheus)")

# Documented histogram buckets (docs/metrics.md), as Prometheus prints `le`.
HANDSHAKE_BUCKETS = ["0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1",
                     "0.25", "0.5", "1", "2.5", "5", "10", "+Inf"]
CONNECTION_BUCKETS = ["1", "5", "15", "60", "300", "900", "3600", "14400", "86400", "+Inf"]

# What the dashboard must show (the task's panel list) and the rules must watch.
DASHBOARD_MUST_USE = {
    "weir_connections_active", "weir_connections_accepted_total", "weir_handshakes_failed_total",
    "weir_handshake_duration_seconds_bucket", "weir_upstream_healthy",
    "weir_upstream_connect_failures_total", "weir_messages_total", "weir_bytes_total",
    "weir_close_frames_total", "weir_protocol_errors_total", "weir_backpressure_pauses_total",
    "weir_filter_refusals_total", "weir_filter_closes_total", "process_cpu_seconds_total",
    "process_resident_memory_bytes", "process_open_fds", "process_max_fds",
    "weir_log_lines_dropped_total",
}
ALERTS_EXPECTED = {
    "WeirHandshakeFailureRatioHigh", "WeirUpstreamDown", "WeirClose1011RatioHigh",
    "WeirNearFdLimit", "WeirDown", "WeirLogLinesDropped",
}


# --------------------------------------------------------------------------- PromQL names

PROMQL_FUNCTIONS = set("""
abs absent absent_over_time ceil changes clamp clamp_max clamp_min day_of_month day_of_week
day_of_year days_in_month delta deriv exp floor histogram_count histogram_sum
histogram_fraction histogram_quantile holt_winters hour idelta increase irate label_join
label_replace ln log2 log10 minute month predict_linear rate resets round scalar sgn sort
sort_desc sqrt time timestamp vector year avg_over_time min_over_time max_over_time
sum_over_time count_over_time quantile_over_time stddev_over_time stdvar_over_time
last_over_time present_over_time mad_over_time acos acosh asin asinh atan atanh cos cosh sin
sinh tan tanh deg pi rad sum min max avg group stddev stdvar count count_values bottomk topk
quantile limitk limit_ratio
""".split())
PROMQL_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and",
                   "or", "unless", "offset", "atan2", "inf", "nan", "start", "end"}


def promql_metric_names(expr: str) -> set[str]:
    """Metric names an expression selects (functions, keywords and label names left out)."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)  # strings
    s = re.sub(r"\$\{[^}]*\}|\$\w+", " ", s)            # Grafana variables ($__rate_interval)
    s = re.sub(r"\{[^}]*\}", "{}", s)                   # label matchers
    s = re.sub(r"\[[^\]]*\]", "[]", s)                  # ranges, subqueries
    s = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)
    names = set()
    for m in re.finditer(r"(?<![\w:.])([a-zA-Z_:][a-zA-Z0-9_:]*)(?=[{\[)\s]|$)", s):
        name = m.group(1)
        if re.match(r"\s*\(", s[m.end():]):  # a function call or an aggregation
            continue
        if name.lower() in PROMQL_KEYWORDS or name in PROMQL_FUNCTIONS:
            continue
        names.add(name)
    return names


def test_promql_metric_names_extraction():
    """The extractor itself (the coverage checks below rely on it)."""
    e = ('histogram_quantile(0.99, sum by (le, route) (rate(weir_handshake_duration_seconds_bucket'
         '{instance=~"$instance", route=~"$route"}[$__rate_interval]))) / on (job) group_left '
         'max(process_max_fds) or vector(0) and up{job=~"weir.*"} == bool 1 unless '
         'increase(weir_log_lines_dropped_total[10m] offset 5m)')
    assert promql_metric_names(e) == {"weir_handshake_duration_seconds_bucket", "process_max_fds",
                                      "up", "weir_log_lines_dropped_total"}
    assert promql_metric_names("sum(rate(x_total{a=\"rate(y)\"}[5m])) > 0.05") == {"x_total"}
    assert promql_metric_names("plain_gauge") == {"plain_gauge"}


# --------------------------------------------------------------------------- artefacts


def load_alert_rules() -> list[dict]:
    doc = yaml.safe_load(ALERTS.read_text())
    groups = doc["groups"]
    assert [g["name"] for g in groups] == ["weir"]
    return groups[0]["rules"]


def load_dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def dashboard_panels(dash: dict) -> list[dict]:
    out = []

    def walk(panels):
        for p in panels:
            out.append(p)
            walk(p.get("panels", []))
    walk(dash["panels"])
    return out


def dashboard_exprs(dash: dict) -> list[tuple[str, str]]:
    """(panel title/refId, expr) for every query of every panel."""
    return [(f"{p['title']}/{t['refId']}", t["expr"])
            for p in dashboard_panels(dash) for t in p.get("targets", [])]


def dashboard_variable_metrics(dash: dict) -> set[str]:
    names = set()
    for v in dash["templating"]["list"]:
        if v["type"] != "query":
            continue
        q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
        m = re.fullmatch(r"label_values\(\s*([a-zA-Z_:][\w:]*)\s*(?:\{[^}]*\})?\s*,\s*\w+\s*\)", q)
        assert m, f"variable {v['name']}: unexpected query {q!r}"
        names.add(m.group(1))
    return names


def referenced_metrics() -> dict[str, set[str]]:
    """metric name -> where it is used (dashboard panels and variables, alert rules)."""
    used: dict[str, set[str]] = {}
    dash = load_dashboard()
    for where, expr in dashboard_exprs(dash):
        for n in promql_metric_names(expr):
            used.setdefault(n, set()).add(f"dashboard {where}")
    for n in dashboard_variable_metrics(dash):
        used.setdefault(n, set()).add("dashboard variable")
    for r in load_alert_rules():
        for n in promql_metric_names(r["expr"]):
            used.setdefault(n, set()).add(f"alert {r['alert']}")
    return used


def grafana_to_promql(expr: str, rate_interval: str = "1m") -> str:
    """A dashboard expression with Grafana's variables replaced by what "All" gives."""
    s = expr.replace("$__rate_interval", rate_interval).replace("$__interval", rate_interval)
    s = s.replace("$__range", "1h")
    s = re.sub(r"\$\{?(instance|route)\}?", ".*", s)
    assert "$" not in s, f"unhandled Grafana variable in {expr!r}"
    return s


def run_promtool(args: list[str], stdin: Optional[bytes] = None,
                 cwd: Optional[Path] = None) -> subprocess.CompletedProcess:
    return subprocess.run([PROMTOOL, *args], input=stdin, capture_output=True, timeout=60,
                          cwd=str(cwd) if cwd else None)


@needs_promtool
def test_alert_rules_pass_promtool_check():
    p = run_promtool(["check", "rules", str(ALERTS)])
    out = (p.stdout + p.stderr).decode()
    assert p.returncode == 0, out
    assert f"SUCCESS: {len(ALERTS_EXPECTED)} rules found" in out, out


def test_alert_rules_content():
    rules = load_alert_rules()
    assert {r["alert"] for r in rules} == ALERTS_EXPECTED
    assert len(rules) == len(ALERTS_EXPECTED)
    for r in rules:
        assert r["labels"]["severity"] in ("critical", "warning", "info"), r["alert"]
        assert set(r["annotations"]) >= {"summary", "description"}, r["alert"]
        assert all(v.strip() for v in r["annotations"].values()), r["alert"]
    by = {r["alert"]: r for r in rules}
    assert by["WeirHandshakeFailureRatioHigh"]["for"] == "10m"
    assert "[5m]" in by["WeirHandshakeFailureRatioHigh"]["expr"]
    assert by["WeirUpstreamDown"]["for"] == "1m"
    assert re.sub(r"\s+", "", by["WeirUpstreamDown"]["expr"]) == "weir_upstream_healthy==0"
    assert re.sub(r"\s+", "", by["WeirDown"]["expr"]) == 'up{job=~"weir.*"}==0'
    assert promql_metric_names(by["WeirNearFdLimit"]["expr"]) == {"process_open_fds", "process_max_fds"}
    assert promql_metric_names(by["WeirLogLinesDropped"]["expr"]) == {"weir_log_lines_dropped_total"}


def _expand(template: str, labels: dict[str, str], value: Optional[float]) -> str:
    """The Go templates the rules use, expanded as Prometheus does (only these forms)."""
    def sub(m):
        inner = m.group(1).strip()
        lm = re.fullmatch(r"\$labels\.(\w+)", inner)
        if lm:
            return labels.get(lm.group(1), "")
        if re.fullmatch(r"\$value\s*\|\s*humanizePercentage", inner):
            assert value is not None, f"{template!r} uses $value: give the test its value"
            return "%.4g%%" % (value * 100)
        raise AssertionError(f"template form {inner!r} not known to this test: teach _expand")
    return re.sub(r"\{\{(.*?)\}\}", sub, template)


@needs_promtool
def test_alert_rules_unit(tmp_path):
    """promtool unit tests: each alert fires for the right series at the right time, with
    the expected labels and annotations, and stays silent below its threshold."""
    rules = {r["alert"]: r for r in load_alert_rules()}

    def alert(name, eval_time, *expected):
        """expected: (labels, value for $value) of each alert firing at eval_time."""
        exp = []
        for labels, value in expected:
            lab = {**labels, **rules[name]["labels"]}
            ann = {k: _expand(v, lab, value) for k, v in rules[name]["annotations"].items()}
            exp.append({"exp_labels": lab, "exp_annotations": ann})
        return {"eval_time": eval_time, "alertname": name, "exp_alerts": exp}

    a = {"job": "weir", "instance": "a:9901"}
    b = {"job": "weir", "instance": "b:9901"}
    c = {"job": "weir-canary", "instance": "c:9901"}

    def s(name, labels, values):
        lab = ",".join(f'{k}="{v}"' for k, v in labels.items())
        return {"series": f"{name}{{{lab}}}", "values": values}

    tests = [
        {   # handshakes: a 10% failed, b 1% failed, c only failures (no 101 series at all)
            "interval": "1m",
            "input_series": [
                s("weir_handshakes_total", {**a, "route": "chat"}, "0+90x40"),
                s("weir_handshakes_failed_total", {**a, "route": "chat", "status": "502",
                                                   "reason": "upstream_failed"}, "0+6x40"),
                s("weir_handshakes_failed_total", {**a, "route": "", "status": "404",
                                                   "reason": "no_route"}, "0+4x40"),
                s("weir_handshakes_total", {**b, "route": "chat"}, "0+99x40"),
                s("weir_handshakes_failed_total", {**b, "route": "", "status": "404",
                                                   "reason": "no_route"}, "0+1x40"),
                s("weir_handshakes_failed_total", {**c, "route": "", "status": "404",
                                                   "reason": "no_route"}, "0+5x40"),
            ],
            "alert_rule_test": [
                alert("WeirHandshakeFailureRatioHigh", "9m"),  # pending, not yet 10m
                alert("WeirHandshakeFailureRatioHigh", "20m", (a, 0.1), (c, 1.0)),
            ],
        },
        {   # upstream 10.0.0.5 goes down at 2m; 10.0.0.6 stays up
            "interval": "1m",
            "input_series": [
                s("weir_upstream_healthy", {**a, "upstream": "10.0.0.5:9000"}, "1 1 0x10"),
                s("weir_upstream_healthy", {**a, "upstream": "10.0.0.6:9000"}, "1x12"),
            ],
            "alert_rule_test": [
                alert("WeirUpstreamDown", "2m"),
                alert("WeirUpstreamDown", "5m", ({**a, "upstream": "10.0.0.5:9000"}, None)),
            ],
        },
        {   # a: 30% of the Closes sent are 1011; b: 5%. Received ones do not count.
            "interval": "1m",
            "input_series": [
                s("weir_close_frames_total", {**a, "route": "chat", "side": "client",
                                              "event": "sent", "code": "1011"}, "0+30x40"),
                s("weir_close_frames_total", {**a, "route": "chat", "side": "client",
                                              "event": "sent", "code": "1000"}, "0+60x40"),
                s("weir_close_frames_total", {**a, "route": "chat", "side": "upstream",
                                              "event": "sent", "code": "1001"}, "0+10x40"),
                s("weir_close_frames_total", {**a, "route": "chat", "side": "upstream",
                                              "event": "received", "code": "1000"}, "0+900x40"),
                s("weir_close_frames_total", {**b, "route": "chat", "side": "client",
                                              "event": "sent", "code": "1011"}, "0+5x40"),
                s("weir_close_frames_total", {**b, "route": "chat", "side": "client",
                                              "event": "sent", "code": "1000"}, "0+95x40"),
                s("weir_close_frames_total", {**b, "route": "chat", "side": "upstream",
                                              "event": "received", "code": "1011"}, "0+500x40"),
            ],
            "alert_rule_test": [
                alert("WeirClose1011RatioHigh", "9m"),
                alert("WeirClose1011RatioHigh", "20m", (a, 0.3)),
            ],
        },
        {   # fds: a 900/1024 (87.89%), b 500/1024; a non-Weir job at 1000/1024 is not ours
            "interval": "1m",
            "input_series": [
                s("process_open_fds", a, "900x20"), s("process_max_fds", a, "1024x20"),
                s("process_open_fds", b, "500x20"), s("process_max_fds", b, "1024x20"),
                s("process_open_fds", {"job": "node", "instance": "n:9100"}, "1000x20"),
                s("process_max_fds", {"job": "node", "instance": "n:9100"}, "1024x20"),
            ],
            "alert_rule_test": [
                alert("WeirNearFdLimit", "4m"),
                alert("WeirNearFdLimit", "10m", (a, 900 / 1024)),
            ],
        },
        {   # a down from 2m, c (job weir-canary) down throughout, b and a node exporter up
            "interval": "1m",
            "input_series": [
                s("up", a, "1 1 0x10"), s("up", b, "1x12"), s("up", c, "0x12"),
                s("up", {"job": "node", "instance": "n:9100"}, "0x12"),
            ],
            "alert_rule_test": [
                alert("WeirDown", "2m", (c, None)),
                alert("WeirDown", "5m", (a, None), (c, None)),
            ],
        },
        {   # 3 lines dropped at 5m: alert at once, gone once the 10m window has passed
            "interval": "1m",
            "input_series": [
                s("weir_log_lines_dropped_total", a, "0x4 3x30"),
                s("weir_log_lines_dropped_total", b, "0x35"),
            ],
            "alert_rule_test": [
                alert("WeirLogLinesDropped", "4m"),
                alert("WeirLogLinesDropped", "6m", (a, None)),
                alert("WeirLogLinesDropped", "20m"),
            ],
        },
    ]
    spec = {"rule_files": [str(ALERTS)], "evaluation_interval": "1m", "tests": tests}
    test_file = tmp_path / "alerts_test.yml"
    test_file.write_text(yaml.safe_dump(spec, sort_keys=False))
    p = run_promtool(["test", "rules", str(test_file)])
    out = (p.stdout + p.stderr).decode()
    assert p.returncode == 0, out
    assert "SUCCESS" in out, out


def test_dashboard_structure():
    dash = load_dashboard()
    assert 36 <= dash["schemaVersion"] <= 39
    assert dash["uid"] and dash["title"]
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    ds = variables["DS_PROMETHEUS"]
    assert ds["type"] == "datasource" and ds["query"] == "prometheus"
    route = variables["route"]
    assert route["type"] == "query"
    assert route["definition"] == "label_values(weir_messages_total, route)"
    assert route["query"]["query"] == "label_values(weir_messages_total, route)"
    assert route["includeAll"] and route["multi"] and route["allValue"] == ".*"
    assert route["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}

    panels = dashboard_panels(dash)
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    boxes = []
    for p in panels:
        g = p["gridPos"]
        assert g["x"] >= 0 and g["w"] > 0 and g["x"] + g["w"] <= 24 and g["h"] > 0, p["title"]
        for q, other in boxes:
            overlap = (g["x"] < q["x"] + q["w"] and q["x"] < g["x"] + g["w"]
                       and g["y"] < q["y"] + q["h"] and q["y"] < g["y"] + g["h"])
            assert not overlap, f"panels {p['title']!r} and {other!r} overlap"
        boxes.append((g, p["title"]))
        if p["type"] == "row":
            continue
        assert p["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}, p["title"]
        assert p.get("targets"), f"panel {p['title']!r} has no query"
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs)), p["title"]
        for t in p["targets"]:
            assert t["datasource"] == p["datasource"], p["title"]
            assert t["expr"].strip(), p["title"]

    used = set()
    for _, expr in dashboard_exprs(dash):
        used |= promql_metric_names(expr)
    missing = DASHBOARD_MUST_USE - used
    assert not missing, f"the dashboard does not show {sorted(missing)}"
    exprs = [e for _, e in dashboard_exprs(dash)]
    assert any(e.startswith("histogram_quantile(0.5,") for e in exprs)
    assert any(e.startswith("histogram_quantile(0.99,") for e in exprs)
    assert any("rate(weir_connections_accepted_total" in e for e in exprs)


@needs_promtool
def test_dashboard_queries_are_valid_promql(tmp_path):
    """Every dashboard query, with Grafana's variables filled in, parses: promtool checks
    them as recording rules."""
    exprs = dashboard_exprs(load_dashboard())
    rules = [{"record": f"weir_dashboard:q{i}", "expr": grafana_to_promql(e)}
             for i, (_, e) in enumerate(exprs)]
    f = tmp_path / "dashboard_rules.yml"
    f.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    p = run_promtool(["check", "rules", str(f)])
    out = (p.stdout + p.stderr).decode()
    assert p.returncode == 0, out + "\n" + "\n".join(f"q{i}: {w}: {e}" for i, (w, e) in enumerate(exprs))
    assert f"SUCCESS: {len(rules)} rules found" in out, out


# --------------------------------------------------------------------------- exposition


class Exposition:
    """Prometheus text format 0.0.4, parsed strictly enough for these tests."""

    SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+(\S+)(?:\s+-?\d+)?$")
    LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\\n]|\\.)*)"\s*(,|\})')

    def __init__(self, text: str) -> None:
        self.text = text
        self.types: dict[str, str] = {}
        self.helps: dict[str, str] = {}
        self.samples: list[tuple[str, dict[str, str], float]] = []
        for n, line in enumerate(text.split("\n"), 1):
            if not line.strip():
                continue
            if line.startswith("#"):
                parts = line.split(None, 3)
                if len(parts) >= 3 and parts[1] == "TYPE":
                    assert parts[2] not in self.types, f"line {n}: second TYPE for {parts[2]}"
                    self.types[parts[2]] = parts[3].strip()
                elif len(parts) >= 3 and parts[1] == "HELP":
                    self.helps[parts[2]] = parts[3] if len(parts) > 3 else ""
                continue
            m = self.SAMPLE.match(line)
            assert m, f"line {n}: not a sample: {line!r}"
            labels = {}
            if m.group(2):
                body, pos = m.group(2)[1:], 0
                if body != "}":
                    while True:
                        lm = self.LABEL.match(body, pos)
                        assert lm, f"line {n}: bad labels: {line!r}"
                        labels[lm.group(1)] = (lm.group(2).replace("\\n", "\n")
                                               .replace('\\"', '"').replace("\\\\", "\\"))
                        pos = lm.end()
                        if lm.group(3) == "}":
                            break
                        if body[pos:].strip() == "}":  # trailing comma
                            break
            self.samples.append((m.group(1), labels, float(m.group(3))))

    def family_of(self, sample_name: str) -> Optional[str]:
        if sample_name in self.types:
            return sample_name
        for suffix in ("_bucket", "_sum", "_count"):
            base = sample_name[: -len(suffix)]
            if sample_name.endswith(suffix) and self.types.get(base) in ("histogram", "summary"):
                return base
        return None

    def series(self, name: str, **labels: str) -> list[tuple[dict[str, str], float]]:
        """Samples of `name` whose labels include `labels` (an empty value = no label)."""
        return [(l, v) for n, l, v in self.samples
                if n == name and all(l.get(k, "") == x for k, x in labels.items())]

    def value(self, name: str, **labels: str) -> Optional[float]:
        """The sample of `name` with exactly these labels (None when absent). As in
        Prometheus, a label with an empty value is the same as no such label."""
        want = {k: x for k, x in labels.items() if x != ""}
        found = [v for n, l, v in self.samples
                 if n == name and {k: x for k, x in l.items() if x != ""} == want]
        assert len(found) <= 1, f"{name}{labels} appears {len(found)} times"
        return found[0] if found else None

    def total(self, name: str, **labels: str) -> float:
        return sum(v for _, v in self.series(name, **labels))


def documented_families() -> dict[str, tuple[str, set[str]]]:
    """name -> (type, label names) from the table of docs/metrics.md."""
    fams = {}
    for line in METRICS_DOC.read_text().splitlines():
        cols = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cols) < 4 or not re.fullmatch(r"`[a-z_:]+`", cols[0]):
            continue
        labels_col = re.sub(r"\([^)]*\)", "", cols[2])  # drop "(`ok`, `failed`)" value lists
        fams[cols[0].strip("`")] = (cols[1], set(re.findall(r"`(\w+)`", labels_col)))
    assert len(fams) >= 35, f"docs/metrics.md table not parsed ({len(fams)} rows)"
    return fams


class Http:
    """Plain HTTP to 127.0.0.1, never through a proxy from the environment."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    @classmethod
    def get(cls, port: int, path: str, timeout: float = 5.0) -> tuple[int, dict, str]:
        try:
            with cls.opener.open(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
                return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read().decode()


def admin_port(w) -> int:
    ev = w.log.wait("admin_listening", timeout=5)[0]
    return int(ev["port"])


def scrape(port: int) -> Exposition:
    status, headers, body = Http.get(port, "/metrics")
    assert status == 200, (status, body[:500])
    return Exposition(body)


def wait_for(what: str, fn: Callable[[], object], timeout: float = 10.0, interval: float = 0.2):
    """Poll fn until it returns something truthy; fail with its last value."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


def stall_client_writes(c: RawClient, limit: int = 64 << 20, timeout: float = 8.0) -> int:
    """Write frames to a client socket until Weir stops reading it (1 s without progress)."""
    frame = encode_frame(0x2, b"\xab" * (256 << 10))
    c.sock.setblocking(False)
    sent, last_progress = 0, time.monotonic()
    deadline = time.monotonic() + timeout
    while sent < limit and time.monotonic() < deadline:
        try:
            n = c.sock.send(frame[sent % len(frame):])
            sent += n
            last_progress = time.monotonic()
        except (BlockingIOError, InterruptedError):
            if time.monotonic() - last_progress > 1.0:
                break
            time.sleep(0.01)
    c.sock.setblocking(True)
    return sent


@pytest.fixture(scope="module")
def traffic(module_weir, module_peers):
    """One Weir with an admin listener and a route of each kind, known traffic through
    it, then one scrape of /metrics (taken while the stalled session is still open)."""
    dead = free_port()

    def on_open(conn):  # a backend that answers the upgrade, then never reads
        while not conn.owner.stopped:
            time.sleep(0.1)
    stall_backend = module_peers.raw("record", on_open=on_open)
    schema_file = module_weir.workdir / "traffic-schema.json"
    schema_file.write_text('{"type": "object"}')
    # The connection limits count in a real Redis: weir_redis_up is exposed.
    redis = RedisServer()

    w = module_weir.start(make_config(
        [
            {"name": "echo", "match": {"path": "/echo"}, "upstreams": "echo"},
            {"name": "proto", "match": {"path": "/proto"}, "upstreams": "echo"},
            {"name": "guarded", "match": {"path": "/guarded"}, "upstreams": "echo",
             "origins": ["https://app.example"]},
            {"name": "small", "match": {"path": "/small"}, "upstreams": "echo",
             "max_message": "1KiB"},
            # Declares its own series (never exceeded here: they stay at 0).
            {"name": "rated", "match": {"path": "/rated"}, "upstreams": "echo",
             "message_rate": {"messages_per_second": 1000}},
            # Declares weir_jwt_tokens_total; one request without a token is refused below.
            # Its JWKS URL has nobody listening: weir_jwks_fetches_total counts failures.
            {"name": "authed", "match": {"path": "/authed"}, "upstreams": "echo",
             "jwt": {"keys": [{"secret": "observability-test-secret-0123456789"},
                              {"jwks": f"https://127.0.0.1:{free_port()}/jwks.json"}]},
             "authz": [{"claim": "roles", "any_of": ["chat"]}],
             "connection_limits": [{"per": "ip", "connections_per_second": 1000}]},
            # Declares weir_introspection_requests_total; its endpoint has nobody listening:
            # one handshake with a token below is 503 and counted as an error.
            {"name": "introspected", "match": {"path": "/introspected"}, "upstreams": "echo",
             "introspection": {"url": f"http://127.0.0.1:{free_port()}/introspect", "timeout": "2s"}},
            # Declares weir_json_schema_failures_total, weir_constraint_failures_total and
            # weir_sanitize_rewrites_total / weir_sanitize_failures_total (no message is sent on it).
            {"name": "schema", "match": {"path": "/schema"}, "upstreams": "echo",
             "json_schema": {"client_to_upstream": str(schema_file)}, "constraints": {"max_depth": 8},
             "sanitize": {"html": "strip", "pointers": ["/text"], "direction": "client"}},
            {"name": "dead", "match": {"path": "/dead"}, "upstreams": [f"127.0.0.1:{dead}"]},
            {"name": "stall", "match": {"path": "/stall"}, "upstreams": [stall_backend.addr],
             "limits": {"buffer_bytes": "4KiB"}},
            # A named group: declares the sticky, rebalancing and pre-warmed pool series.
            {"name": "pooled", "match": {"path": "/pooled"}, "upstream_group": "pool",
             "generic_upstream_handshake": True},
        ],
        upstream_groups=[{"name": "pool", "members": ["echo"],
                          "sticky": {"cookie": {"key": "observability-sticky-key"}},
                          "rebalance": {"max_ratio": 2},
                          "prewarm": {"size": 1}}],
        admin={"address": "127.0.0.1", "port": 0, "upstream_probe_interval": "1s"},
        state={"backend": "redis", "url": redis.url},
    ), name="traffic")
    t_started = time.time()
    port = admin_port(w)

    # 1. websockets client: 5 text messages of 10 bytes echoed, then Close 1000.
    async def echo5():
        async with connect(w.url("/echo")) as ws:
            for i in range(5):
                msg = f"message-{i:02d}"
                await ws.send(msg)
                assert await ws.recv() == msg
    run(echo5())

    # 2. an unmasked client frame: protocol error, Close 1002 to the client.
    c = RawClient(w.port, "/proto")
    try:
        c.send(OP_TEXT, b"unmasked", mask=False)
        assert c.expect_close().close_code == 1002
    finally:
        c.close()
    # 3. no Origin on a route that wants one: the origins filter refuses (403).
    assert http_exchange(w.port, build_request("/guarded")).status == 403
    # 4. a 2000-byte message on a 1 KiB max_message route: the filter closes with 1009.
    c = RawClient(w.port, "/small")
    try:
        c.send(OP_TEXT, b"x" * 2000)
        assert c.expect_close().close_code == 1009
    finally:
        c.close()
    # 4b. no token on a jwt route: 401.
    assert http_exchange(w.port, build_request("/authed")).status == 401
    # 4c. a token on an introspection route whose endpoint is down: 503.
    assert http_exchange(w.port, build_request("/introspected",
                                               headers=[("Authorization", "Bearer opaque")])).status == 503
    # 5. the upstream refuses: 502.   6. no route: 404.
    assert http_exchange(w.port, build_request("/dead")).status == 502
    assert http_exchange(w.port, build_request("/nope")).status == 404

    # 7. a client pushing into an upstream that does not read: backpressure.
    stall = RawClient(w.port, "/stall")
    try:
        pushed = stall_client_writes(stall)
        assert pushed < 64 << 20, "Weir kept reading from the client: no backpressure"

        def settled():
            m = scrape(port)
            ok = (m.total("weir_backpressure_pauses_total", route="stall") >= 1
                  and m.value("weir_connection_duration_seconds_count", route="echo") == 1
                  and m.value("weir_connection_duration_seconds_count", route="proto") == 1
                  and m.value("weir_connection_duration_seconds_count", route="small") == 1
                  and m.value("weir_upstream_healthy", upstream=f"127.0.0.1:{dead}") is not None
                  and m.value("weir_upstream_healthy", upstream=stall_backend.addr) is not None
                  and m.value("weir_redis_up") == 1)
            return m if ok else None
        try:
            wait_for("backpressure, sessions ended, upstreams probed", settled, timeout=15)
        except AssertionError:
            raise AssertionError(scrape(port).text) from None
        status, headers, body = Http.get(port, "/metrics")
        assert status == 200, (status, body[:500])
    finally:
        stall.close()
    yield {"weir": w, "headers": headers, "body": body, "m": Exposition(body),
           "dead": f"127.0.0.1:{dead}", "stall": stall_backend.addr, "t_started": t_started}
    redis.kill()


def test_metrics_content_type(traffic):
    ctype = [x.strip().lower() for x in traffic["headers"].get("content-type", "").split(";")]
    # docs/admin.md: text/plain; version=0.0.4 (a charset=utf-8 parameter is harmless)
    assert ctype[0] == "text/plain" and "version=0.0.4" in ctype[1:], traffic["headers"]
    assert set(ctype[1:]) <= {"version=0.0.4", "charset=utf-8"}, traffic["headers"]


@needs_promtool
def test_metrics_pass_promtool_check_metrics(traffic):
    """No error and no lint finding (naming, suffixes, HELP texts)."""
    p = run_promtool(["check", "metrics"], stdin=traffic["body"].encode())
    out = (p.stdout + p.stderr).decode()
    assert p.returncode == 0 and out.strip() == "", f"promtool check metrics: rc={p.returncode}\n{out}"


def test_metrics_match_docs(traffic):
    """Every family of docs/metrics.md with its type and HELP, every series with exactly
    the documented labels, and no family the docs do not list."""
    m = traffic["m"]
    docs = documented_families()
    problems = []
    for name, (typ, labels) in docs.items():
        if m.types.get(name) != typ:
            problems.append(f"{name}: TYPE {m.types.get(name)!r}, documented {typ!r}")
    for fam in m.types:
        if fam not in docs:
            problems.append(f"{fam}: {m.types[fam]} {sorted(set(k for n, l, _ in m.samples if m.family_of(n) == fam for k in l))}"
                            " is exposed but not in docs/metrics.md")
        if not m.helps.get(fam, "").strip():
            problems.append(f"{fam}: no HELP text")
    for name, labels, _ in m.samples:
        fam = m.family_of(name)
        if fam is None:
            problems.append(f"sample {name} without a TYPE line")
            continue
        if fam not in docs:
            continue
        want = set(docs[fam][1]) | ({"le"} if name.endswith("_bucket") else set())
        # an empty value may be left out (Prometheus treats both the same)
        if not set(k for k, x in labels.items() if x != "") <= want or not want <= (
                set(labels) | ({"route"} if fam == "weir_handshakes_failed_total" else set())):
            problems.append(f"{name}{labels}: labels {sorted(labels)}, documented {sorted(want)}")
    assert not problems, "\n".join(sorted(set(problems)))


def test_metrics_cover_dashboard_and_alerts(traffic):
    """Every metric the dashboard and the alert rules use is in Weir's /metrics."""
    m = traffic["m"]
    used = referenced_metrics()
    used.pop("up", None)  # Prometheus's own
    absent = {n: sorted(w_) for n, w_ in used.items() if m.family_of(n) is None}
    assert not absent, f"used but not in Weir's /metrics: {absent}"
    assert DASHBOARD_MUST_USE <= set(used), sorted(DASHBOARD_MUST_USE - set(used))


def test_metrics_traffic_counts(traffic):
    """Exact values for the traffic the fixture sent."""
    m, v = traffic["m"], traffic["m"].value
    dead, stall = traffic["dead"], traffic["stall"]
    build = m.series("weir_build_info")
    assert len(build) == 1 and build[0][1] == 1 and build[0][0]["version"], build
    assert v("weir_config_generation") == 1
    assert v("weir_draining") == 0
    assert v("weir_workers") == 2
    assert m.total("weir_config_reloads_total") == 0
    assert v("weir_accept_errors_total") == 0
    assert v("weir_log_lines_dropped_total") == 0
    assert m.total("weir_connections_accepted_total") == 9  # 9 TCP connections
    assert len(m.series("weir_connections_accepted_total")) == 1  # one listener
    assert v("weir_connections_open") == 1  # the stalled session
    assert v("weir_connections_active", route="stall") == 1
    for r in ("echo", "proto", "small"):
        assert v("weir_connections_active", route=r) == 0, r

    for r, n in (("echo", 1), ("proto", 1), ("small", 1), ("stall", 1)):
        assert v("weir_handshakes_total", route=r) == n, r
    assert m.total("weir_handshakes_total") == 4
    assert v("weir_handshakes_failed_total", route="", status="404", reason="no_route") == 1
    assert v("weir_handshakes_failed_total", route="guarded", status="403", reason="origins") == 1
    assert v("weir_handshakes_failed_total", route="dead", status="502", reason="upstream_failed") == 1
    assert v("weir_handshakes_failed_total", route="authed", status="401", reason="jwt") == 1
    assert v("weir_handshakes_failed_total", route="introspected", status="503", reason="introspection") == 1
    assert m.total("weir_handshakes_failed_total") == 5
    assert v("weir_filter_refusals_total", route="guarded", filter="origins") == 1
    assert v("weir_filter_refusals_total", route="authed", filter="jwt") == 1
    assert v("weir_filter_refusals_total", route="introspected", filter="introspection") == 1
    assert m.total("weir_filter_refusals_total") == 3
    assert v("weir_filter_closes_total", route="small", filter="max_message") == 1
    assert v("weir_max_message_exceeded_total", route="small", direction="client_to_upstream") == 1
    assert v("weir_message_rate_exceeded_total", route="rated", direction="client_to_upstream", action="close") == 0
    assert v("weir_jwt_tokens_total", route="authed", result="rejected") == 1
    assert v("weir_jwt_tokens_total", route="authed", result="accepted") == 0
    assert v("weir_authz_denied_total", route="authed") == 0  # the jwt filter refused first
    assert v("weir_limit_hits_total", route="authed", limit="connection_rate", per="ip") == 0
    assert v("weir_json_schema_failures_total", route="schema", direction="client_to_upstream", reason="invalid") == 0
    assert v("weir_constraint_failures_total", route="schema", direction="client_to_upstream", reason="depth") == 0
    assert v("weir_sanitize_rewrites_total", route="schema", direction="client_to_upstream") == 0
    assert v("weir_sanitize_failures_total", route="schema", direction="client_to_upstream") == 0
    assert v("weir_jwks_fetches_total", route="authed", result="failed") >= 1  # at start; retried every 30s
    assert v("weir_jwks_fetches_total", route="authed", result="ok") == 0
    assert v("weir_jwks_fetches_total", route="authed", result="invalid") == 0
    assert v("weir_introspection_requests_total", route="introspected", result="error") == 1
    for result in ("active", "inactive", "cached"):
        assert v("weir_introspection_requests_total", route="introspected", result=result) == 0
    assert m.total("weir_filter_closes_total") == 1
    assert v("weir_upstream_connect_failures_total", route="dead", upstream=dead, reason="refused") == 1
    assert m.total("weir_upstream_connect_failures_total") == 1  # probes are not counted here
    assert v("weir_upstream_healthy", upstream=dead) == 0
    assert v("weir_upstream_healthy", upstream=stall) == 1

    c2u, u2c = "client_to_upstream", "upstream_to_client"
    assert v("weir_messages_total", route="echo", direction=c2u) == 5
    assert v("weir_messages_total", route="echo", direction=u2c) == 5
    assert m.total("weir_messages_total", route="proto") == 0  # the bad frame is not relayed
    assert m.total("weir_messages_total", route="small", direction=c2u) == 0  # refused by the filter
    # 5 masked frames of 2+4+10 bytes and the client's Close 1000 (2+4+2)
    assert v("weir_bytes_total", route="echo", direction=c2u) == 5 * 16 + 8
    # 5 unmasked frames of 2+10 bytes and the echo's Close 1000 (2+2)
    assert v("weir_bytes_total", route="echo", direction=u2c) == 5 * 12 + 4
    f = "weir_frames_total"
    assert v(f, route="echo", direction=c2u, opcode="text") == 5
    assert v(f, route="echo", direction=c2u, opcode="close") == 1
    assert v(f, route="echo", direction=u2c, opcode="text") == 5
    assert v(f, route="echo", direction=u2c, opcode="close") == 1
    assert m.total(f, route="echo") == 12
    assert m.total(f, route="proto", direction=c2u) == 0  # the unmasked frame broke RFC 6455
    assert v("weir_protocol_errors_total", route="proto", side="client") == 1
    assert m.total("weir_protocol_errors_total") == 1
    cf = "weir_close_frames_total"
    assert v(cf, route="echo", side="client", event="received", code="1000") == 1
    assert v(cf, route="echo", side="client", event="sent", code="1000") == 1
    assert v(cf, route="proto", side="client", event="sent", code="1002") == 1
    assert v(cf, route="small", side="client", event="sent", code="1009") == 1
    assert m.total(cf, side="client", event="received") == 1  # only the echo client sent one
    assert m.total(cf, side="client", event="sent") == 3
    assert m.total("weir_backpressure_pauses_total", route="stall", direction=c2u) >= 1
    assert m.total("weir_backpressure_pauses_total", route="echo") == 0


def test_metrics_histograms(traffic):
    """The documented buckets, cumulative, +Inf == _count == the sessions above."""
    m, v = traffic["m"], traffic["m"].value
    for fam, sel, count, buckets in [
        ("weir_handshake_duration_seconds", {"route": "echo"}, 1, HANDSHAKE_BUCKETS),
        ("weir_handshake_duration_seconds", {"route": "small"}, 1, HANDSHAKE_BUCKETS),
        ("weir_handshake_duration_seconds", {"route": "stall"}, 1, HANDSHAKE_BUCKETS),
        ("weir_connection_duration_seconds", {"route": "echo"}, 1, CONNECTION_BUCKETS),
        ("weir_connection_duration_seconds", {"route": "proto"}, 1, CONNECTION_BUCKETS),
        ("weir_connection_duration_seconds", {"route": "small"}, 1, CONNECTION_BUCKETS),
        ("weir_upstream_connect_duration_seconds", {"route": "stall", "upstream": traffic["stall"]},
         1, HANDSHAKE_BUCKETS),
    ]:
        rows = m.series(fam + "_bucket", **sel)
        les = [l["le"] for l, _ in rows]
        assert [float(x) for x in les] == [float(x) for x in buckets], f"{fam}{sel}: buckets {les}"
        vals = [x for _, x in rows]
        assert vals == sorted(vals), f"{fam}{sel}: buckets not cumulative: {vals}"
        assert v(fam + "_count", **sel) == count, (fam, sel)
        assert vals[-1] == count, (fam, sel)
        total = v(fam + "_sum", **sel)
        assert total is not None and 0 <= total < 60 * count, (fam, sel, total)
    # a loopback handshake takes well under 10 s: counted below the last finite bucket
    assert m.series("weir_handshake_duration_seconds_bucket", route="echo", le="10")[0][1] == 1
    assert m.series("weir_handshakes_failed_total", route="dead")  # failures are not observed
    assert v("weir_handshake_duration_seconds_count", route="dead") in (None, 0)


def test_metrics_process(traffic):
    """process_* against /proc of the running Weir."""
    w, v = traffic["weir"], traffic["m"].value
    with open(f"/proc/{w.pid}/limits") as f:
        soft = next(line.split()[3] for line in f if line.startswith("Max open files"))
    assert v("process_max_fds") == int(soft)
    nfds = len(os.listdir(f"/proc/{w.pid}/fd"))
    assert 0 < v("process_open_fds") <= v("process_max_fds")
    assert abs(v("process_open_fds") - nfds) <= 16, (v("process_open_fds"), nfds)
    rss = w.rss_kib() * 1024
    assert rss / 2 <= v("process_resident_memory_bytes") <= rss * 2, (v("process_resident_memory_bytes"), rss)
    assert v("process_virtual_memory_bytes") >= v("process_resident_memory_bytes")
    assert abs(v("process_start_time_seconds") - traffic["t_started"]) < 10
    assert 0 <= v("process_cpu_seconds_total") < (time.time() - traffic["t_started"] + 5) * 4


# --------------------------------------------------------------------------- real Prometheus


class Prometheus:
    """/usr/bin/prometheus on 127.0.0.1 only, scraping every 1 s, with alerts.yml loaded."""

    def __init__(self, workdir: Path, targets: list[str]) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.config = workdir / "prometheus.yml"
        self.config.write_text(yaml.safe_dump({
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(ALERTS)],
            "scrape_configs": [{"job_name": "weir", "static_configs": [{"targets": targets}]}],
        }, sort_keys=False))
        self.log_path = workdir / "prometheus.log"
        for attempt in range(3):
            self.port = free_port()
            self.log = open(self.log_path, "wb")
            self.proc = subprocess.Popen(
                [PROMETHEUS, f"--config.file={self.config}",
                 f"--storage.tsdb.path={workdir / f'data{attempt}'}",
                 f"--web.listen-address=127.0.0.1:{self.port}"],
                stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    if Http.get(self.port, "/-/ready", timeout=1)[0] == 200:
                        return
                except OSError:
                    pass
                time.sleep(0.2)
            self.stop()
            if "address already in use" not in self.log_path.read_text(errors="replace"):
                break
        raise AssertionError(f"prometheus did not become ready:\n{self.log_path.read_text()[-3000:]}")

    def api(self, path: str, **params: str) -> dict:
        q = urllib.parse.urlencode(params)
        status, _, body = Http.get(self.port, f"/api/v1/{path}" + (f"?{q}" if q else ""))
        res = json.loads(body)
        assert status == 200 and res.get("status") == "success", (path, params, status, body[:1000])
        return res["data"]

    def query(self, expr: str) -> list[dict]:
        data = self.api("query", query=expr)
        assert data["resultType"] == "vector", data
        return data["result"]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.log.close()


@pytest.fixture(scope="module")
def prom_env(module_weir, tmp_path_factory):
    if not os.access(PROMETHEUS, os.X_OK):
        pytest.skip(f"{PROMETHEUS} missing (Debian package prometheus)")
    dead = free_port()
    w = module_weir.start(make_config(
        [
            {"name": "echo", "match": {"path": "/echo"}, "upstreams": "echo"},
            {"name": "dead", "match": {"path": "/dead"}, "upstreams": [f"127.0.0.1:{dead}"]},
        ],
        admin={"address": "127.0.0.1", "port": 0, "upstream_probe_interval": "1s"},
    ))
    port = admin_port(w)
    prom = Prometheus(tmp_path_factory.mktemp("prometheus"), [f"127.0.0.1:{port}"])
    try:
        # Prometheus listens on 127.0.0.1 only.
        out = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True).stdout \
            if shutil.which("ss") else ""
        mine = [line.split()[3] for line in out.splitlines() if f"pid={prom.proc.pid}," in line]
        if "pid=" in out:  # ss shows the owners of sockets (it does for our own processes)
            assert mine == [f"127.0.0.1:{prom.port}"], f"prometheus listens on {mine}"
        wait_for("the weir target up", lambda: any(
            t["health"] == "up" for t in prom.api("targets")["activeTargets"]), timeout=20)
        yield {"weir": w, "admin_port": port, "prom": prom, "dead": f"127.0.0.1:{dead}"}
    finally:
        prom.stop()


def test_prometheus_scrapes_weir(prom_env):
    w, prom, port = prom_env["weir"], prom_env["prom"], prom_env["admin_port"]
    target = next(t for t in prom.api("targets")["activeTargets"] if t["labels"]["job"] == "weir")
    assert target["labels"]["instance"] == f"127.0.0.1:{port}"
    assert target["scrapeUrl"] == f"http://127.0.0.1:{port}/metrics"
    assert target["health"] == "up", target

    n = 25
    c = RawClient(w.port, "/echo")
    try:
        for i in range(n):
            payload = f"msg {i}".encode()
            c.send(OP_TEXT, payload)
            assert c.recv_message() == (OP_TEXT, payload)

        def counted():
            r = prom.query('sum(weir_messages_total{direction="client_to_upstream"})')
            return r and float(r[0]["value"][1]) == n and r
        try:
            wait_for(f"Prometheus to count {n} messages", counted, timeout=30, interval=0.5)
        except AssertionError:
            raise AssertionError(f"{prom.query('weir_messages_total')}") from None
        r = prom.query('sum(weir_messages_total{direction="upstream_to_client"})')
        assert float(r[0]["value"][1]) == n
        # the session is still open: one active connection on route echo, seen by Prometheus
        active = wait_for("weir_connections_active{route=echo} == 1", lambda: [
            s for s in prom.query('weir_connections_active{job="weir"}')
            if s["metric"].get("route") == "echo" and float(s["value"][1]) == 1], timeout=10)
        assert active[0]["metric"]["instance"] == f"127.0.0.1:{port}"
        assert float(prom.query('up{job="weir"}')[0]["value"][1]) == 1
        c.send(OP_CLOSE, close_payload(1000))
        assert c.expect_close().close_code == 1000
    finally:
        c.close()
    wait_for("weir_connections_active{route=echo} back to 0", lambda: [
        s for s in prom.query('weir_connections_active{route="echo"}')
        if float(s["value"][1]) == 0], timeout=15, interval=0.5)
    r = prom.query('sum(weir_messages_total{direction="client_to_upstream"})')
    assert float(r[0]["value"][1]) == n


def test_prometheus_loads_and_evaluates_alert_rules(prom_env):
    prom, dead = prom_env["prom"], prom_env["dead"]

    def healthy_rules():
        groups = prom.api("rules")["groups"]
        rules = [r for g in groups if g["name"] == "weir" for r in g["rules"]]
        return rules if rules and all(r["health"] == "ok" for r in rules) else None
    try:
        rules = wait_for("every rule evaluated without error", healthy_rules, timeout=20)
    except AssertionError:
        raise AssertionError(json.dumps(prom.api("rules"), indent=1)[:4000]) from None
    assert {r["name"] for r in rules} == ALERTS_EXPECTED
    assert all(r["type"] == "alerting" for r in rules)

    # The probe of the dead upstream fails: WeirUpstreamDown goes pending (for: 1m) for it,
    # and only for it; Weir itself is up, so WeirDown is not active.
    def upstream_alert():
        alerts = prom.api("alerts")["alerts"]
        return [a for a in alerts if a["labels"]["alertname"] == "WeirUpstreamDown"] or None
    alerts = wait_for("WeirUpstreamDown pending", upstream_alert, timeout=20)
    assert [a["labels"]["upstream"] for a in alerts] == [dead], alerts
    assert alerts[0]["state"] in ("pending", "firing")
    assert alerts[0]["labels"]["severity"] == "critical"
    assert alerts[0]["annotations"]["summary"] == \
        f"Weir 127.0.0.1:{prom_env['admin_port']}: upstream {dead} is down"
    active = {a["labels"]["alertname"] for a in prom.api("alerts")["alerts"]}
    assert active == {"WeirUpstreamDown"}, active


def test_dashboard_queries_in_prometheus(prom_env):
    """Every dashboard query runs against real data; one whose metrics all have series
    returns something."""
    prom = prom_env["prom"]
    wait_for("10 s of scrapes", lambda: (r := prom.query('count_over_time(up{job="weir"}[15s])'))
             and float(r[0]["value"][1]) >= 10, timeout=30, interval=0.5)
    present = {s["metric"]["__name__"] for s in prom.query(
        'group by (__name__) ({job="weir", __name__=~"weir_.+|process_.+"})')}
    assert "weir_messages_total" in present and "process_open_fds" in present, present
    empty = []
    for where, expr in dashboard_exprs(load_dashboard()):
        q = grafana_to_promql(expr, rate_interval="10s")
        result = prom.query(q)
        if promql_metric_names(expr) <= present and not result:
            empty.append(f"{where}: {q}")
    assert not empty, "queries with data that returned nothing:\n" + "\n".join(empty)
    for v in load_dashboard()["templating"]["list"]:
        if v["type"] == "query":
            q = v["query"]["query"]
            metric, label = re.fullmatch(r"label_values\((\w+), (\w+)\)", q).groups()
            values = prom.api(f"label/{label}/values", **{"match[]": metric})
            if metric in present:
                assert values, f"variable {v['name']}: {q} has no values"
