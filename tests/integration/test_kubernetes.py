"""The Kubernetes manifests (deploy/kubernetes/) against the Kubernetes API schemas and
against the real binary.

Static, offline:
- every manifest passes the Kubernetes OpenAPI schemas and has no unknown field
  (tests/node/validate_k8s.js: npm kubernetes-models, @kubernetes-models/prometheus-operator),
  and the validator does fail on broken manifests (a string `replicas`, a misspelt field, an
  unknown kind, YAML errors, ...);
- kustomization.yaml lists every object manifest (and `kubectl kustomize` builds them, where
  kubectl exists); nothing names a namespace;
- the objects agree with each other: selectors and pod labels, named ports, the projected
  volume's sources and the paths the config reads, the HPA metric and the adapter rule, the
  ServiceMonitor and the admin Service and token Secret, the NetworkPolicy's ports, the pod's
  security settings, the termination budget (grace > preStop + drain + close timeout).

Against the real binary, with the ConfigMap's weir.yaml laid out as the kubelet does (files
in a timestamped directory behind the `..data` symlink, the Secrets under secrets/), its
/etc/weir paths pointed there, its addresses at 127.0.0.1 port 0 and chat-backend:9000
replaced by the built-in echo:
- `weir check-config` accepts it (and refuses the Secret template's placeholders);
- the probe paths answer 200 without a token, /metrics needs the token and carries the HPA's
  metric, a wss:// session with the Secret's certificate works, WEIR_WORKERS from the CPU
  limit sets the workers;
- a kubelet-style update of the volume (new config, renewed certificate) then SIGHUP reloads
  both while a live session goes on;
- pod termination: SIGTERM (after the preStop sleep) turns /readyz 503 at once while
  /healthz stays 200, new connections are refused, the live session gets Close 1001 after
  shutdown.drain, and Weir exits 0 within the pod's grace period;
- a real Prometheus scraping with the token (as the ServiceMonitor does, with namespace and
  pod labels) answers the adapter rule's query with the per-pod session count.

Skipped only without node; the Prometheus test without /usr/bin/prometheus (Debian package
prometheus), the kustomize build without kubectl.
"""

from __future__ import annotations

import copy
import json
import math
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from tlscerts import Pair, certs, client_context, subject_cn  # noqa: F401 (fixture)
from weirlib import (NODE_DIR, OP_CLOSE, OP_TEXT, REPO, RawClient, close_payload, free_port,
                     weir_bin)

K8S = REPO / "deploy" / "kubernetes"
VALIDATOR = NODE_DIR / "validate_k8s.js"
ALERTS = REPO / "deploy" / "prometheus" / "alerts.yml"
PROMETHEUS = "/usr/bin/prometheus"

# Files in deploy/kubernetes that kustomization.yaml leaves out, on purpose (its comment).
NOT_IN_KUSTOMIZATION = {"kustomization.yaml", "secret.yaml", "prometheus-adapter-rules.yaml"}
# Objects applied by hand: the Secret template, the ServiceMonitor (needs the operator's CRDs).
EXTRA_MANIFESTS = [K8S / "secret.yaml", K8S / "monitoring" / "servicemonitor.yaml"]


# --------------------------------------------------------------------------- the manifests


def load_docs(path: Path) -> list[dict]:
    # PyYAML reads YAML 1.1, as kubectl does (defaultMode: 0440 would be octal here too).
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


KUSTOMIZATION = yaml.safe_load((K8S / "kustomization.yaml").read_text())
RESOURCES = [K8S / r for r in KUSTOMIZATION["resources"]]
ALL_FILES = RESOURCES + EXTRA_MANIFESTS
OBJECTS: dict[tuple[str, str], dict] = {}
for _f in ALL_FILES:
    for _d in load_docs(_f):
        _key = (_d["kind"], _d["metadata"]["name"])
        assert _key not in OBJECTS, f"{_key} twice"
        OBJECTS[_key] = _d

DEPLOY = OBJECTS[("Deployment", "weir")]
POD = DEPLOY["spec"]["template"]["spec"]
POD_LABELS = DEPLOY["spec"]["template"]["metadata"]["labels"]
CONTAINER = next(c for c in POD["containers"] if c["name"] == "weir")
CONFIGMAP = OBJECTS[("ConfigMap", "weir")]
SVC = OBJECTS[("Service", "weir")]
ADMIN_SVC = OBJECTS[("Service", "weir-admin")]
HPA = OBJECTS[("HorizontalPodAutoscaler", "weir")]
ADAPTER = yaml.safe_load((K8S / "prometheus-adapter-rules.yaml").read_text())

# Where the container finds its config: `-c` in the args, under the volume mounted there.
CONFIG_ARG = CONTAINER["args"][CONTAINER["args"].index("-c") + 1]
MOUNT = next(m for m in CONTAINER["volumeMounts"] if CONFIG_ARG.startswith(m["mountPath"].rstrip("/") + "/"))
MOUNT_PATH = MOUNT["mountPath"].rstrip("/")
VOLUME = next(v for v in POD["volumes"] if v["name"] == MOUNT["name"])


def volume_items() -> dict[str, tuple[str, str, str]]:
    """The files of the config volume: {path in the volume: (kind, object name, key)}."""
    out: dict[str, tuple[str, str, str]] = {}
    for src in VOLUME["projected"]["sources"]:
        (kind, ref), = src.items()
        kind = {"configMap": "ConfigMap", "secret": "Secret"}[kind]
        obj = OBJECTS[(kind, ref["name"])]
        keys = list((obj.get("data") or {}) | (obj.get("stringData") or {}))
        for item in ref.get("items") or [{"key": k, "path": k} for k in keys]:
            assert item["path"] not in out, f"{item['path']} projected twice"
            out[item["path"]] = (kind, ref["name"], item["key"])
    return out


CONFIG_KEY = volume_items()[CONFIG_ARG[len(MOUNT_PATH) + 1:]]
CONFIG_TEXT = CONFIGMAP["data"][CONFIG_KEY[2]]
CONFIG = yaml.safe_load(CONFIG_TEXT)


def duration(v) -> float:
    """A Weir duration (docs/configuration.md): 10s, 250ms, 5m, 1h, or bare seconds."""
    m = re.fullmatch(r"([0-9.]+)(ms|s|m|h)?", str(v).strip())
    assert m, v
    return float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[m.group(2)]


def container_port(ref) -> int:
    """A port by name or number, as the container declares it."""
    for p in CONTAINER["ports"]:
        if ref in (p["name"], p["containerPort"]):
            return p["containerPort"]
    raise AssertionError(f"container has no port {ref!r}")


def selects(selector: dict, labels: dict) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def cpu_workers() -> int:
    """WEIR_WORKERS as the downward API gives it: the CPU limit over the divisor, rounded up."""
    env = next(e for e in CONTAINER["env"] if e["name"] == "WEIR_WORKERS")
    ref = env["valueFrom"]["resourceFieldRef"]
    assert ref["resource"] == "limits.cpu" and ref.get("containerName", "weir") == "weir"

    def cpus(q: str) -> float:
        return float(q[:-1]) / 1000 if q.endswith("m") else float(q)
    return math.ceil(cpus(str(CONTAINER["resources"]["limits"]["cpu"])) / cpus(str(ref.get("divisor", "1"))))


def prestop_seconds() -> int:
    pre = CONTAINER["lifecycle"]["preStop"]
    if "sleep" in pre:
        return int(pre["sleep"]["seconds"])
    m = re.search(r"sleep\s+(\d+)", " ".join(pre["exec"]["command"]))
    assert m, pre
    return int(m.group(1))


# --------------------------------------------------------------------------- static checks


def test_kustomization_lists_every_manifest_and_no_namespace():
    on_disk = {p.name for p in K8S.glob("*.yaml")}
    listed = set(KUSTOMIZATION["resources"])
    assert listed == on_disk - NOT_IN_KUSTOMIZATION, (listed, on_disk)
    assert "namespace" not in KUSTOMIZATION
    for (kind, name), obj in OBJECTS.items():
        assert "namespace" not in obj["metadata"], f"{kind}/{name} names a namespace"
        assert obj["metadata"]["labels"]["app.kubernetes.io/name"] == "weir", (kind, name)
    # The adapter rules are configuration for prometheus-adapter, not an object.
    assert "kind" not in ADAPTER and "rules" in ADAPTER
    # No Redis yet, and the manifests say so.
    assert "Redis" in (K8S / "kustomization.yaml").read_text()


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl missing")
def test_kustomize_builds_the_listed_objects():
    p = subprocess.run(["kubectl", "kustomize", str(K8S)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    built = {(d["kind"], d["metadata"]["name"]) for d in yaml.safe_load_all(p.stdout) if d}
    assert built == {(d["kind"], d["metadata"]["name"]) for f in RESOURCES for d in load_docs(f)}


# ------------------------------------------------------------------ the OpenAPI validation


@pytest.fixture(scope="module")
def node():
    n = shutil.which("node")
    if n is None:
        pytest.skip("node missing (scripts/setup test installs it)")
    for mod in ("kubernetes-models", "@kubernetes-models/prometheus-operator", "yaml"):
        if not (NODE_DIR / "node_modules" / mod).is_dir():
            pytest.fail(f"tests/node/node_modules/{mod} missing: cd tests/node && npm ci")
    return n


def validate(node: str, *files: Path) -> tuple[int, dict, str]:
    p = subprocess.run([node, str(VALIDATOR), *map(str, files)], capture_output=True, text=True,
                       timeout=120, cwd=str(REPO))
    lines = p.stdout.strip().splitlines()
    summary = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {}
    return p.returncode, summary, p.stdout + p.stderr


def test_manifests_pass_the_kubernetes_schemas(node):
    rc, summary, out = validate(node, *ALL_FILES)
    assert rc == 0, out
    assert summary["failed"] == 0, out
    seen = sorted((o["kind"], o["name"]) for o in summary["objects"])
    assert seen == sorted(OBJECTS), out
    assert summary["validated"] == len(OBJECTS) == 10, out
    assert sorted(k for k, _ in OBJECTS) == sorted([
        "ConfigMap", "Deployment", "HorizontalPodAutoscaler", "NetworkPolicy",
        "PodDisruptionBudget", "Secret", "Secret", "Service", "Service", "ServiceMonitor"])


def _deployment_with(change) -> dict:
    d = copy.deepcopy(DEPLOY)
    change(d)
    return d


def _container(d: dict) -> dict:
    return d["spec"]["template"]["spec"]["containers"][0]


BROKEN = {
    "replicas_string": (lambda d: d["spec"].__setitem__("replicas", "two"),
                        "/spec/replicas must be integer"),
    "misspelt_field": (lambda d: _container(d).__setitem__("readinessprobe", _container(d).pop("readinessProbe")),
                       '/spec/template/spec/containers/0/readinessprobe: unknown field "readinessprobe"'),
    "port_string": (lambda d: _container(d)["ports"][0].__setitem__("containerPort", "8080"),
                    "/spec/template/spec/containers/0/ports/0/containerPort must be integer"),
    "bad_enum": (lambda d: _container(d)["ports"][1].__setitem__("protocol", "HTTP"),
                 "/spec/template/spec/containers/0/ports/1/protocol must be equal to one of the allowed values"),
    "missing_required": (lambda d: _container(d).pop("name"),
                         "/spec/template/spec/containers/0 must have required property name"),
    "deep_unknown_field": (lambda d: d["spec"]["template"]["spec"]["volumes"][0]["projected"]["sources"][1]["secret"]
                           .__setitem__("itemz", []), 'unknown field "itemz"'),
    "unknown_kind": (lambda d: d.__setitem__("kind", "Deploymnt"), "unknown kind Deploymnt in apps/v1"),
    "no_api_version": (lambda d: d.pop("apiVersion"), "invalid apiVersion undefined"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_validator_rejects_a_broken_deployment(node, tmp_path, case):
    change, expected = BROKEN[case]
    f = tmp_path / f"{case}.yaml"
    f.write_text(yaml.safe_dump(_deployment_with(change)))
    rc, summary, out = validate(node, K8S / "configmap.yaml", f)
    assert rc == 1, out
    assert summary["failed"] == 1 and summary["validated"] == 1, out  # the ConfigMap still passes
    assert expected in out, out


def test_validator_rejects_yaml_errors_and_empty_files(node, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x\n")
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing\n")
    on = tmp_path / "on.yaml"  # YAML 1.1, as the API server reads it: `on` is a boolean
    on.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, labels: {a: on}}\n")
    for f, expected in ((bad, "YAML"), (empty, "no document"), (on, "/metadata/labels/a must be string")):
        rc, summary, out = validate(node, f)
        assert rc == 1 and summary["failed"] == 1 and expected in out, out
    rc, _, out = validate(node)
    assert rc == 2 and "usage" in out


# ------------------------------------------------------------------ the objects agree


def test_pod_security_placement_and_environment():
    sc, csc = POD["securityContext"], CONTAINER["securityContext"]
    assert sc["runAsNonRoot"] is True and sc["runAsUser"] == 10001
    assert csc.get("runAsUser", 10001) == 10001 and csc.get("runAsNonRoot", True) is True
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert csc["readOnlyRootFilesystem"] is True
    assert csc["allowPrivilegeEscalation"] is False
    assert csc["capabilities"] == {"drop": ["ALL"]}
    assert not csc.get("privileged") and not POD.get("hostNetwork")
    # The Secrets' files are 0440: readable through the pod's group only.
    assert VOLUME["projected"]["defaultMode"] == 0o440 and sc["fsGroup"] == sc["runAsGroup"]
    assert POD["automountServiceAccountToken"] is False
    # Service links would put WEIR_PORT=tcp://... (from the Service "weir") in the
    # environment, where a ${WEIR_PORT} in the config would pick it up.
    assert POD["enableServiceLinks"] is False
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(CONTAINER["resources"][kind]), kind
    anti = POD["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert [t["podAffinityTerm"]["topologyKey"] for t in anti] == ["kubernetes.io/hostname"]
    assert selects(anti[0]["podAffinityTerm"]["labelSelector"]["matchLabels"], POD_LABELS)
    assert CONTAINER["image"] == "weir:latest"
    assert [*CONTAINER["command"], *CONTAINER["args"]] == ["weir", "run", "-c", "/etc/weir/weir.yaml"]
    # Every ${VAR} of the config is set by the container, or has a default.
    env = {e["name"] for e in CONTAINER.get("env", [])}
    for var, default in re.findall(r"\$\{(?!file:)(\w+)(:-[^}]*)?\}", CONFIG_TEXT):
        assert var in env or default, f"${{{var}}} is neither set in the pod nor defaulted"
    assert "${WEIR_WORKERS" in CONFIG_TEXT and cpu_workers() >= 1
    # No replicas: the HPA owns the count.
    assert "replicas" not in DEPLOY["spec"]


def test_config_volume_provides_every_file_the_config_reads():
    items = volume_items()
    assert items[CONFIG_ARG[len(MOUNT_PATH) + 1:]] == ("ConfigMap", "weir", "weir.yaml")
    assert MOUNT_PATH == "/etc/weir" and MOUNT["readOnly"] is True
    paths = set(re.findall(re.escape(MOUNT_PATH) + r"/[\w./-]+", CONFIG_TEXT))
    assert paths >= {"/etc/weir/secrets/tls.crt", "/etc/weir/secrets/tls.key",
                     "/etc/weir/secrets/admin-token"}, paths
    for p in paths:
        kind, name, key = items[p[len(MOUNT_PATH) + 1:]]
        obj = OBJECTS[(kind, name)]
        assert key in (obj.get("data") or {}) | (obj.get("stringData") or {}), (p, kind, name, key)
    assert CONFIG["admin"]["token"] == "${file:/etc/weir/secrets/admin-token}"
    assert OBJECTS[("Secret", "weir-tls")]["type"] == "kubernetes.io/tls"


def test_probes_and_the_termination_budget():
    ready, live = CONTAINER["readinessProbe"], CONTAINER["livenessProbe"]
    assert ready["httpGet"]["path"] == "/readyz" and live["httpGet"]["path"] == "/healthz"
    for probe in (ready, live):
        assert container_port(probe["httpGet"]["port"]) == CONFIG["admin"]["port"]
        assert "httpHeaders" not in probe["httpGet"]  # no token: these paths need none
    # /healthz waits up to 1 s for every worker; the probe must wait longer.
    assert live["timeoutSeconds"] > 1
    # Pod deletion: preStop sleep (still accepting while endpoints go), then SIGTERM: drain,
    # Close 1001, the close handshake. All of it must fit in the grace period.
    budget = prestop_seconds() + duration(CONFIG["shutdown"]["drain"]) + duration(CONFIG["timeouts"]["close"])
    assert prestop_seconds() >= 3
    assert POD["terminationGracePeriodSeconds"] > budget, (POD["terminationGracePeriodSeconds"], budget)
    assert DEPLOY["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}


def test_services_policy_budget_and_autoscaler_wiring():
    listener = CONFIG["listeners"][0]
    assert (listener["address"], listener["port"]) == ("0.0.0.0", 8080)
    assert (CONFIG["admin"]["address"], CONFIG["admin"]["port"]) == ("0.0.0.0", 9901)
    # The public port: config = containerPort "ws" = the Service's target.
    assert container_port("ws") == listener["port"]
    (wss,) = SVC["spec"]["ports"]
    assert container_port(wss["targetPort"]) == listener["port"] and wss["targetPort"] == "ws"
    assert selects(SVC["spec"]["selector"], POD_LABELS)
    # The admin port likewise, on a headless Service that lists unready pods too.
    assert container_port("admin") == CONFIG["admin"]["port"]
    (adm,) = ADMIN_SVC["spec"]["ports"]
    assert container_port(adm["targetPort"]) == CONFIG["admin"]["port"] == adm["port"]
    assert selects(ADMIN_SVC["spec"]["selector"], POD_LABELS)
    assert ADMIN_SVC["spec"]["clusterIP"] == "None" and ADMIN_SVC["spec"]["publishNotReadyAddresses"] is True
    # A ServiceMonitor names the job after the Service; the alert rules select job=~"weir.*".
    assert 'job=~"weir.*"' in ALERTS.read_text() and re.fullmatch(r"weir.*", ADMIN_SVC["metadata"]["name"])

    # NetworkPolicy: the public port from anywhere, the admin port from "monitoring" only.
    np = OBJECTS[("NetworkPolicy", "weir")]
    assert selects(np["spec"]["podSelector"]["matchLabels"], POD_LABELS)
    assert np["spec"]["policyTypes"] == ["Ingress"]
    rules = {container_port(r["ports"][0]["port"]): r for r in np["spec"]["ingress"]}
    assert set(rules) == {listener["port"], CONFIG["admin"]["port"]}
    assert "from" not in rules[listener["port"]]
    assert rules[CONFIG["admin"]["port"]]["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]

    pdb = OBJECTS[("PodDisruptionBudget", "weir")]
    assert selects(pdb["spec"]["selector"]["matchLabels"], POD_LABELS)
    assert pdb["spec"].get("maxUnavailable") == 1 or pdb["spec"].get("minAvailable") == 1

    # HPA: the Deployment, CPU and sessions per pod; the adapter serves that metric.
    assert HPA["apiVersion"] == "autoscaling/v2"
    assert HPA["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "weir"}
    assert HPA["spec"]["minReplicas"] >= 2
    by_type = {m["type"]: m for m in HPA["spec"]["metrics"]}
    assert by_type["Resource"]["resource"]["name"] == "cpu"
    assert by_type["Resource"]["resource"]["target"]["type"] == "Utilization"
    pods_metric = by_type["Pods"]["pods"]
    assert pods_metric["metric"]["name"] == "weir_connections_active"
    assert pods_metric["target"]["type"] == "AverageValue"
    (rule,) = ADAPTER["rules"]
    assert rule["seriesQuery"] == 'weir_connections_active{namespace!="",pod!=""}'
    assert rule["name"]["as"] == pods_metric["metric"]["name"]
    assert re.fullmatch(rule["name"]["matches"], "weir_connections_active")
    assert rule["resources"]["overrides"] == {"namespace": {"resource": "namespace"}, "pod": {"resource": "pod"}}
    assert rule["metricsQuery"] == "sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)"

    # ServiceMonitor: the admin Service only, its named port, the token Secret the pods use.
    sm = OBJECTS[("ServiceMonitor", "weir")]
    assert selects(sm["spec"]["selector"]["matchLabels"], ADMIN_SVC["metadata"]["labels"])
    assert not selects(sm["spec"]["selector"]["matchLabels"], SVC["metadata"]["labels"])
    (ep,) = sm["spec"]["endpoints"]
    assert ep["port"] == adm["name"] and ep["path"] == "/metrics"
    cred = ep["authorization"]["credentials"]
    assert ep["authorization"]["type"] == "Bearer"
    assert volume_items()["secrets/admin-token"] == ("Secret", cred["name"], cred["key"])


# --------------------------------------------------------------------------- the binary


ECHO_ROUTE_NAME = CONFIG["routes"][0]["name"]


class Volume:
    """The config volume as the kubelet lays it out (its AtomicWriter): the files in a
    timestamped directory, `..data` pointing at it, a symlink per top-level entry
    (weir.yaml -> ..data/weir.yaml, secrets -> ..data/secrets). update() swaps `..data` in
    one rename, as the kubelet does when a ConfigMap or Secret changes."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.generation = 0
        root.mkdir(parents=True)

    def write(self, files: dict[str, bytes]) -> None:
        self.generation += 1
        ts = self.root / f"..2026_01_01_00_00_{self.generation:02d}.000000001"
        for rel, data in files.items():
            (ts / rel).parent.mkdir(parents=True, exist_ok=True)
            (ts / rel).write_bytes(data)
            (ts / rel).chmod(0o440)
        tmp = self.root / "..data_tmp"
        tmp.symlink_to(ts.name)
        old = (self.root / "..data").resolve() if (self.root / "..data").is_symlink() else None
        os.rename(tmp, self.root / "..data")
        for top in {rel.split("/")[0] for rel in files}:
            link = self.root / top
            if not link.is_symlink():
                link.symlink_to(f"..data/{top}")
        if old is not None:
            shutil.rmtree(old)

    def path(self, in_container: str) -> str:
        assert in_container.startswith(MOUNT_PATH + "/"), in_container
        return str(self.root / in_container[len(MOUNT_PATH) + 1:])


TOKEN = "k8s-test-admin-token-0123456789abcdef"


def for_test(cfg_text: str, vol: Volume, *, loopback: bool = True, extra_routes: tuple = ()) -> str:
    """The ConfigMap's weir.yaml with its /etc/weir paths in `vol`, and (loopback) its
    listeners on 127.0.0.1 port 0 and its upstream the built-in echo."""
    text = cfg_text.replace(MOUNT_PATH + "/", str(vol.root) + "/")
    if not loopback:
        return text
    cfg = yaml.safe_load(text)
    for lst in cfg["listeners"]:
        lst["address"], lst["port"] = "127.0.0.1", 0
    cfg["admin"]["address"], cfg["admin"]["port"] = "127.0.0.1", 0
    for r in cfg["routes"]:
        r["upstreams"] = "echo"
    cfg["routes"] = [*extra_routes, *cfg["routes"]]
    return yaml.safe_dump(cfg, sort_keys=False)


def volume_files(config_text: str, cert: Pair, token: str = TOKEN) -> dict[str, bytes]:
    """What the projected volume holds: the ConfigMap's key and the Secrets' keys."""
    secret_values = {("weir-tls", "tls.crt"): cert.cert.read_bytes(),
                     ("weir-tls", "tls.key"): cert.key.read_bytes(),
                     ("weir-admin-token", "admin-token"): token.encode()}
    out = {}
    for rel, (kind, name, key) in volume_items().items():
        out[rel] = config_text.encode() if kind == "ConfigMap" else secret_values[(name, key)]
    return out


def start_in_volume(weir, vol: Volume, text: str, cert: Pair, env: dict | None = None):
    """Lay out the volume and run weir as the container does: `-c <mount>/weir.yaml`, through
    the kubelet's symlinks, with WEIR_WORKERS as the downward API sets it."""
    vol.write(volume_files(text, cert))
    config_path = vol.path(CONFIG_ARG)
    env = {"WEIR_WORKERS": str(cpu_workers()), **(env or {})}
    # The factory runs `weir run -c <its own copy>`; the wrapper execs weir on the
    # volume's path instead (same pid, so the factory's SIGTERM and checks still apply).
    return weir.start(text, env=env, wrapper=["/bin/sh", "-c", 'exec "$1" run -c "$0"', config_path])


def wait_for(pred, timeout: float = 10.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def echo_once(c: RawClient, text: bytes) -> None:
    c.send(OP_TEXT, text)
    assert c.recv_message() == (OP_TEXT, text)


def check_config(path: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([weir_bin(), "check-config", "-c", path], capture_output=True, text=True,
                          timeout=30, env={**os.environ, **(env or {})})


def test_check_config_accepts_the_configmap(certs, tmp_path):
    vol = Volume(tmp_path / "etc-weir")
    # Only the file paths change: addresses, ports and chat-backend:9000 stay as shipped.
    vol.write(volume_files(for_test(CONFIG_TEXT, vol, loopback=False), certs.one))
    for env in ({"WEIR_WORKERS": str(cpu_workers())}, {}):  # with the downward API's value, and "auto"
        p = check_config(vol.path(CONFIG_ARG), env)
        assert p.returncode == 0, p.stderr
        assert p.stdout.strip().endswith(": ok (1 listener(s), 1 route(s))"), p.stdout


def test_secret_template_placeholders_are_refused(certs, tmp_path):
    """Applied unedited, the Secret template must stop Weir, not serve with a known token."""
    secrets = {(d["metadata"]["name"], k): v.encode()
               for d in load_docs(K8S / "secret.yaml") for k, v in d["stringData"].items()}
    vol = Volume(tmp_path / "etc-weir")
    text = for_test(CONFIG_TEXT, vol, loopback=False)
    files = volume_files(text, certs.one)
    # The template's token, a real certificate: refused for the token.
    files["secrets/admin-token"] = secrets[("weir-admin-token", "admin-token")]
    vol.write(files)
    p = check_config(vol.path(CONFIG_ARG))
    assert p.returncode == 1 and "'admin.token' must be at least 16 characters long" in p.stderr, p.stderr
    # The template's certificate and key: refused at the listener's cert.
    files = volume_files(text, certs.one)
    files["secrets/tls.crt"] = secrets[("weir-tls", "tls.crt")]
    files["secrets/tls.key"] = secrets[("weir-tls", "tls.key")]
    vol.write(files)
    p = check_config(vol.path(CONFIG_ARG))
    assert p.returncode == 1 and "tls.crt" in p.stderr, p.stderr


def test_the_binary_serves_what_the_manifests_use(weir, certs, tmp_path):
    vol = Volume(tmp_path / "etc-weir")
    w = start_in_volume(weir, vol, for_test(CONFIG_TEXT, vol), certs.one)
    # The workers follow the CPU limit (WEIR_WORKERS from the downward API), not the host.
    assert w.log.find("started")[0]["workers"] == cpu_workers()
    admin_listening = w.log.find("admin_listening")[0]
    assert admin_listening["auth"] != "none (loopback only)", admin_listening

    # The kubelet's probes, without a token, on the paths the Deployment names.
    ready_path = CONTAINER["readinessProbe"]["httpGet"]["path"]
    live_path = CONTAINER["livenessProbe"]["httpGet"]["path"]
    wait_for(lambda: w.admin(ready_path)[0] == 200, what=f"{ready_path} 200")
    assert w.admin(live_path)[0] == 200

    # /metrics: refused without the token, served with the Secret's token.
    status, headers, _ = w.admin("/metrics")
    assert status == 401 and headers.get("www-authenticate", "").startswith("Bearer")
    assert w.admin("/metrics", token="not-" + TOKEN)[0] == 401

    # A wss:// session with the Secret's certificate, through the public listener.
    c = RawClient(w.port, "/chat", tls=client_context(certs))
    try:
        echo_once(c, b"through the ConfigMap's route")
        metric = HPA["spec"]["metrics"][1]["pods"]["metric"]["name"]
        assert metric == ADAPTER["rules"][0]["name"]["as"] == "weir_connections_active"
        m = w.metrics(token=TOKEN)
        assert m[f'{metric}{{route="{ECHO_ROUTE_NAME}"}}'] == 1, {k: v for k, v in m.items() if metric in k}
        assert m["weir_draining"] == 0
    finally:
        c.send(OP_CLOSE, close_payload(1000))
        c.sock.close()
    wait_for(lambda: w.metrics(token=TOKEN)[f'weir_connections_active{{route="{ECHO_ROUTE_NAME}"}}'] == 0,
             what="the session gone from weir_connections_active")

    # What the pod's ports map to: the config's own ports (before the test moved them).
    assert container_port("ws") == CONFIG["listeners"][0]["port"]
    assert container_port("admin") == CONFIG["admin"]["port"]
    assert container_port(SVC["spec"]["ports"][0]["targetPort"]) == CONFIG["listeners"][0]["port"]
    assert container_port(ADMIN_SVC["spec"]["ports"][0]["targetPort"]) == CONFIG["admin"]["port"]


def peer_cn(port: int, ctx: ssl.SSLContext) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            return subject_cn(s.getpeercert(binary_form=True))


def test_volume_update_then_sighup_reloads_and_keeps_sessions(weir, certs, tmp_path):
    """A ConfigMap edit and a renewed certificate reach the pod as one volume swap; SIGHUP
    (kubectl exec ... kill -HUP 1) applies both, and the live session goes on."""
    vol = Volume(tmp_path / "etc-weir")
    w = start_in_volume(weir, vol, for_test(CONFIG_TEXT, vol), certs.one)
    ctx = client_context(certs)
    assert peer_cn(w.port, ctx) == "CN=weir-one"
    c = RawClient(w.port, "/chat", tls=ctx)
    echo_once(c, b"before")

    # The ConfigMap gains a route, the Secret a new certificate: one swap of ..data.
    extra = {"name": "k8s-added", "match": {"path": "/added"}, "upstreams": "echo"}
    vol.write(volume_files(for_test(CONFIG_TEXT, vol, extra_routes=(extra,)), certs.two))
    mark = w.log.mark()
    os.kill(w.pid, signal.SIGHUP)
    ev = w.log.wait("config.reload", since=mark, timeout=10)[0]  # docs/logging.md
    assert ev["generation"] == 2 and "k8s-added" in str(ev["added"]), ev
    assert w.log.find("tls.reload", since=mark), "the renewed certificate was not loaded"
    assert not w.log.find("config.reload_failed", since=mark)

    echo_once(c, b"after the reload, same session")
    assert peer_cn(w.port, ctx) == "CN=weir-two"
    c2 = RawClient(w.port, "/added", tls=ctx)
    echo_once(c2, b"new route")
    for s in (c, c2):
        s.send(OP_CLOSE, close_payload(1000))
        s.sock.close()


def test_pod_termination_drains_then_closes_1001_within_the_grace_period(weir, certs, tmp_path):
    """What the kubelet does after the preStop sleep: SIGTERM. With the ConfigMap's own
    shutdown.drain and timeouts.close."""
    vol = Volume(tmp_path / "etc-weir")
    w = start_in_volume(weir, vol, for_test(CONFIG_TEXT, vol), certs.one)
    ctx = client_context(certs)
    wait_for(lambda: w.admin("/readyz")[0] == 200, what="ready")
    c = RawClient(w.port, "/chat", tls=ctx)
    echo_once(c, b"before")
    drain = duration(CONFIG["shutdown"]["drain"])
    close_timeout = duration(CONFIG["timeouts"]["close"])

    t0 = time.monotonic()
    w.proc.send_signal(signal.SIGTERM)
    # Readiness fails at once (the pod is already out of the endpoints; this keeps it out),
    # liveness does not (the kubelet must not restart a draining pod).
    status, _, body = wait_for(lambda: (r := w.admin("/readyz"))[0] == 503 and r, timeout=2,
                               what="/readyz 503")
    # The kubelet gets no reasons (they name upstreams); the token holder does.
    assert json.loads(body) == {"status": "not_ready"}, body
    status, _, body = w.admin("/readyz", token=TOKEN)
    assert status == 503 and json.loads(body)["reasons"] == ["draining"], body
    assert w.admin("/healthz")[0] == 200
    assert w.metrics(token=TOKEN)["weir_draining"] == 1
    # New connections are refused: clients retry and reach a pod that is ready.
    wait_for(lambda: _refused(w.port), timeout=2, what="new connections refused")
    # The live session goes on during the drain...
    echo_once(c, b"during the drain")
    # ...then gets Close 1001 (going away) once shutdown.drain is over, and answers it.
    f = c.recv_frame(timeout=drain + 5)
    waited = time.monotonic() - t0
    assert f.opcode == OP_CLOSE and f.close_code == 1001, f
    assert drain - 0.5 <= waited <= drain + 2, waited
    c.send(OP_CLOSE, close_payload(1001))
    rc = w.proc.wait(timeout=close_timeout + 5)
    w.returncode = rc
    w.log.wait_eof(timeout=5)
    total = time.monotonic() - t0
    assert rc == 0, w.stderr
    # SIGTERM comes after the preStop sleep; both must fit in the grace period.
    assert prestop_seconds() + total < POD["terminationGracePeriodSeconds"], total
    c.sock.close()


def _refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.settimeout(1)
            return s.recv(1) == b""  # accepted then closed also counts as "not served"
    except (ConnectionRefusedError, ConnectionResetError):
        return True
    except OSError:
        return False


# ------------------------------------------------------------------ the adapter's query


class Prometheus:
    def __init__(self, workdir: Path, scrape: dict) -> None:
        self.workdir = workdir
        self.config = workdir / "prometheus.yml"
        self.config.write_text(yaml.safe_dump({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [scrape]}))
        self.proc = None
        self.log = open(workdir / "prometheus.log", "wb")
        for attempt in range(3):  # the free port may be taken meanwhile
            self.port = free_port()
            self.proc = subprocess.Popen(
                [PROMETHEUS, f"--config.file={self.config}",
                 f"--storage.tsdb.path={workdir / f'data{attempt}'}",
                 f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
                stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=1) as r:
                        if r.status == 200:
                            return
                except OSError:
                    pass
                time.sleep(0.2)
            self.stop()
        raise AssertionError("prometheus did not start: " + (workdir / "prometheus.log").read_text()[-2000:])

    def api(self, path: str, **params) -> dict:
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=5) as r:
            body = json.loads(r.read())
        assert body["status"] == "success", body
        return body["data"]

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


def expand(template: str, series: str, matchers: str, group_by: str) -> str:
    """prometheus-adapter's metricsQuery template, filled in as for an HPA's Pods metric."""
    return (template.replace("<<.Series>>", series).replace("<<.LabelMatchers>>", matchers)
            .replace("<<.GroupBy>>", group_by))


@pytest.mark.skipif(not os.access(PROMETHEUS, os.X_OK), reason=f"{PROMETHEUS} missing (Debian package prometheus)")
def test_adapter_rule_on_a_real_prometheus_scrape(weir, certs, tmp_path):
    """Prometheus scrapes with the admin token (as the ServiceMonitor does) and the
    namespace/pod labels Kubernetes discovery gives; the adapter's series query finds the
    gauge and its metrics query yields the pod's sessions summed over routes."""
    vol = Volume(tmp_path / "etc-weir")
    extra = {"name": "k8s-second", "match": {"path": "/second"}, "upstreams": "echo"}
    w = start_in_volume(weir, vol, for_test(CONFIG_TEXT, vol, extra_routes=(extra,)), certs.one)
    ctx = client_context(certs)
    sessions = [RawClient(w.port, "/chat", tls=ctx), RawClient(w.port, "/second", tls=ctx),
                RawClient(w.port, "/second", tls=ctx)]
    for s in sessions:
        echo_once(s, b"x")
    pod, ns = "weir-5d8f7c9b6-x2x7q", "chat"
    prom = Prometheus(tmp_path, {
        "job_name": ADMIN_SVC["metadata"]["name"],  # what the ServiceMonitor's job is called
        "scrape_interval": "1s",
        "metrics_path": OBJECTS[("ServiceMonitor", "weir")]["spec"]["endpoints"][0]["path"],
        "authorization": {"type": "Bearer", "credentials_file": vol.path("/etc/weir/secrets/admin-token")},
        "static_configs": [{"targets": [f"127.0.0.1:{w.admin_port}"], "labels": {"namespace": ns, "pod": pod}}],
    })
    try:
        rule = ADAPTER["rules"][0]
        query = expand(rule["metricsQuery"], "weir_connections_active", f'namespace="{ns}",pod=~"{pod}"', "pod")

        def per_pod():
            res = prom.api("query", query=query)["result"]
            return res if res and float(res[0]["value"][1]) == len(sessions) else None
        res = wait_for(per_pod, timeout=20, what=f"{query} = {len(sessions)}")
        assert [r["metric"] for r in res] == [{"pod": pod}], res
        series = prom.api("series", **{"match[]": rule["seriesQuery"]})
        assert {s["route"] for s in series} == {ECHO_ROUTE_NAME, "k8s-second"}, series
        assert all(s["namespace"] == ns and s["pod"] == pod for s in series), series
        up = prom.api("query", query='up{job=~"weir.*"}')["result"]
        assert [float(u["value"][1]) for u in up] == [1.0], up  # the token was accepted
    finally:
        prom.stop()
        for s in sessions:
            s.send(OP_CLOSE, close_payload(1000))
            s.sock.close()
