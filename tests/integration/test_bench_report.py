"""bench/compare's report code: paired ratios and --render (no proxy is measured here)."""

import importlib.util
import json
from importlib.machinery import SourceFileLoader
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_loader = SourceFileLoader("bench_compare", str(ROOT / "bench" / "compare"))
_spec = importlib.util.spec_from_loader("bench_compare", _loader)
compare = importlib.util.module_from_spec(_spec)
_loader.exec_module(compare)


def runs(*cpus):
    return [{"cpu_us_per_msg": c} if c is not None else None for c in cpus]


def test_paired_ratios_pair_against_the_variant_with_the_lowest_median():
    # haproxy has the lowest single figure (10) but nginx the lowest median: nginx is "the better",
    # and Weir is paired with it repetition by repetition, not with the lowest of each repetition.
    derived = {"weir": runs(20, 30, 40), "nginx": runs(25, 25, 50), "haproxy": runs(10, 40, 60),
               "floor": runs(20, None, 40)}
    pr = compare.paired_ratios("throughput", derived)
    assert pr["best"] == "nginx"
    # per repetition: 20/25, 30/25, 40/50 (the lowest of each would give 20/10, 30/25, 40/50)
    assert pr["weir_vs_best"] == {"median": 0.8, "min": 0.8, "max": 1.2, "n": 3}
    assert pr["weir_vs_floor"] == {"median": 1.0, "min": 1.0, "max": 1.0, "n": 2}  # rep 2 has no floor
    assert pr["best_vs_floor"]["n"] == 2
    assert "weir-work_vs_best" not in pr
    assert "nginx has the lowest median" in compare.paired_line(pr)
    assert compare.paired_ratios("hold", {"weir": [{"kib_per_conn": 1}]}) == {}


def test_render_rebuilds_tables_from_the_runs_of_a_results_file(tmp_path):
    def run(msgs, cpu_s):
        return {"messages": msgs, "seconds": 1.0, "msgs_per_s": msgs, "proxy_cpu_s": cpu_s,
                "errors": 0, "mismatches": 0, "exit_code": 0}
    doc = {"meta": {}, "scenarios": [{
        "name": "small-1", "kind": "throughput", "table": "stale",
        "runs": {"floor": [run(1000, 0.02), run(1000, 0.02)],
                 "weir": [run(1000, 0.02), run(1000, 0.03)],
                 "nginx": [run(1000, 0.04), run(1000, 0.03)]}}]}
    path = tmp_path / "results.json"
    path.write_text(json.dumps(doc))
    meta, results, peers, tls_only = compare.rerender(str(path))
    assert peers == ["floor", "weir", "nginx"] and not tls_only
    (entry,) = results
    assert entry["table"] != "stale" and "CPU vs floor" in entry["table"]
    assert entry["summary"]["weir"]["cpu_us_per_msg"]["median"] == 25.0
    assert entry["paired"]["best"] == "nginx"
    assert entry["paired"]["weir_vs_floor"]["max"] == 1.5
