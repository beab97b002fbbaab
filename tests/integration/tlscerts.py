"""Test PKI for Weir's TLS tests, generated at test time with the `openssl` CLI.

Nothing here is committed: every key is made in a temporary directory, once per pytest
session (the `certs` fixture below; EC P-256 keys, a fraction of a second in all).

    ca              "Weir Test CA"; signs everything below except `wrong`
    ca2             "Weir Other CA": a second, unrelated CA ("wrong CA" tests)
    default         CN=weir-default     SAN DNS:localhost, IP:127.0.0.1
    a               CN=weir-a           SAN DNS:a.weir.test
    bwild           CN=weir-b-wild      SAN DNS:*.b.weir.test
    one / two       CN=weir-one / CN=weir-two, SAN DNS:localhost, IP:127.0.0.1 (reload)
    backend         CN=weir-backend     SAN DNS:localhost only (no IP: hostname checks)
    wrong           CN=weir-wrong-ca    SAN DNS:localhost, IP:127.0.0.1, signed by ca2
    client1         CN=client1,O=Weir Test   clientAuth, signed by ca
    client_wrong    CN=client-wrong     clientAuth, signed by ca2
    client_svc      CN=chat-svc         clientAuth, SAN DNS:chat.svc.weir.test,
                                        URI:spiffe://weir.test/ns/chat, email:ops@weir.test
    client_deep     CN=deep-svc         clientAuth, SAN DNS:a.chat.svc.weir.test (two labels
                                        under svc.weir.test: no *.svc.weir.test match)
    default_ocsp    a DER OCSP response from ca: `default` is good (for stapling)

Each leaf is a `Pair(cert, key)` of paths (`cert` holds the leaf only; the CA is one level).
"""

from __future__ import annotations

import base64
import hashlib
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class Pair:
    cert: Path
    key: Path
    subject: str  # as given to openssl, e.g. "/CN=weir-a"


@dataclass(frozen=True)
class Certs:
    dir: Path
    ca: Path          # CA certificate (PEM)
    ca2: Path         # the other CA's certificate
    default: Pair
    a: Pair
    bwild: Pair
    one: Pair
    two: Pair
    backend: Pair
    wrong: Pair
    client1: Pair
    client_wrong: Pair
    client_svc: Pair
    client_deep: Pair
    default_ocsp: Path


def _openssl(*args: str, cwd: Path) -> None:
    p = subprocess.run(["openssl", *args], cwd=str(cwd), capture_output=True, text=True,
                       timeout=30)
    if p.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed ({p.returncode}): {p.stderr}")


_EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]


def _make_ca(d: Path, name: str, subject: str) -> tuple[Path, Path]:
    cert, key = d / f"{name}.pem", d / f"{name}.key"
    _openssl("req", "-x509", *_EC, "-keyout", key.name, "-out", cert.name, "-subj", subject,
             "-days", "3", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    return cert, key


def _make_leaf(d: Path, name: str, subject: str, ca: tuple[Path, Path], *,
               sans: list[str] | None = None, client: bool = False) -> Pair:
    cert, key, csr, ext = (d / f"{name}.pem", d / f"{name}.key", d / f"{name}.csr",
                           d / f"{name}.ext")
    _openssl("req", "-new", *_EC, "-keyout", key.name, "-out", csr.name, "-subj", subject, cwd=d)
    lines = ["basicConstraints=critical,CA:FALSE",
             "keyUsage=critical,digitalSignature",
             f"extendedKeyUsage={'clientAuth' if client else 'serverAuth'}"]
    if sans:
        lines.append("subjectAltName=" + ",".join(sans))
    ext.write_text("\n".join(lines) + "\n")
    serial = "0x" + hashlib.sha1(f"{name}{subject}{d}".encode()).hexdigest()[:16]
    _openssl("x509", "-req", "-in", csr.name, "-CA", str(ca[0]), "-CAkey", str(ca[1]),
             "-set_serial", serial, "-days", "3", "-sha256", "-extfile", ext.name,
             "-out", cert.name, cwd=d)
    csr.unlink()
    ext.unlink()
    return Pair(cert, key, subject)


def _make_ocsp(d: Path, name: str, ca: tuple[Path, Path], leaf: Pair) -> Path:
    """A signed OCSP response saying `leaf` is good (openssl ocsp as a one-shot responder
    over a CA index with that one certificate)."""
    def field(opt: str) -> str:
        return subprocess.run(["openssl", "x509", "-in", str(leaf.cert), "-noout", opt],
                              capture_output=True, text=True, check=True,
                              timeout=10).stdout.strip().split("=", 1)[1]
    serial = field("-serial")
    end = time.strptime(field("-enddate"), "%b %d %H:%M:%S %Y GMT")
    index, req, resp = d / f"{name}.index", d / f"{name}.req", d / f"{name}.der"
    index.write_text(f"V\t{time.strftime('%y%m%d%H%M%SZ', end)}\t\t{serial}\tunknown\t{leaf.subject}\n")
    _openssl("ocsp", "-issuer", str(ca[0]), "-cert", str(leaf.cert), "-no_nonce",
             "-reqout", req.name, cwd=d)
    _openssl("ocsp", "-index", index.name, "-rsigner", str(ca[0]), "-rkey", str(ca[1]),
             "-CA", str(ca[0]), "-reqin", req.name, "-respout", resp.name, "-ndays", "2", cwd=d)
    index.unlink()
    req.unlink()
    return resp


LOCAL = ["DNS:localhost", "IP:127.0.0.1"]


def generate(d: Path) -> Certs:
    d.mkdir(parents=True, exist_ok=True)
    ca = _make_ca(d, "ca", "/CN=Weir Test CA/O=Weir Test")
    ca2 = _make_ca(d, "ca2", "/CN=Weir Other CA/O=Elsewhere")
    default = _make_leaf(d, "default", "/CN=weir-default", ca, sans=LOCAL)
    certs = Certs(
        dir=d,
        ca=ca[0],
        ca2=ca2[0],
        default=default,
        a=_make_leaf(d, "a", "/CN=weir-a", ca, sans=["DNS:a.weir.test"]),
        bwild=_make_leaf(d, "bwild", "/CN=weir-b-wild", ca, sans=["DNS:*.b.weir.test"]),
        one=_make_leaf(d, "one", "/CN=weir-one", ca, sans=LOCAL),
        two=_make_leaf(d, "two", "/CN=weir-two", ca, sans=LOCAL),
        backend=_make_leaf(d, "backend", "/CN=weir-backend", ca, sans=["DNS:localhost"]),
        wrong=_make_leaf(d, "wrong", "/CN=weir-wrong-ca", ca2, sans=LOCAL),
        client1=_make_leaf(d, "client1", "/O=Weir Test/CN=client1", ca, client=True),
        client_wrong=_make_leaf(d, "client_wrong", "/CN=client-wrong", ca2, client=True),
        client_svc=_make_leaf(d, "client_svc", "/CN=chat-svc", ca, client=True,
                              sans=["DNS:chat.svc.weir.test", "URI:spiffe://weir.test/ns/chat",
                                    "email:ops@weir.test"]),
        client_deep=_make_leaf(d, "client_deep", "/CN=deep-svc", ca, client=True,
                               sans=["DNS:a.chat.svc.weir.test"]),
        default_ocsp=_make_ocsp(d, "default-ocsp", ca, default),
    )
    for p in d.glob("*.key"):
        p.chmod(0o600)
    return certs


# --------------------------------------------------------------------------- helpers


def subject_cn(der: bytes) -> str:
    """The subject of a DER certificate, as `openssl x509 -noout -subject` prints it
    (RFC 2253 form), e.g. "CN=weir-a"."""
    p = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-subject",
                        "-nameopt", "RFC2253"], input=der, capture_output=True, timeout=10)
    if p.returncode != 0:
        raise RuntimeError(f"openssl x509 failed: {p.stderr!r}")
    out = p.stdout.decode().strip()
    assert out.startswith("subject="), out
    return out[len("subject="):].strip()


def spki_sha256_b64(cert: Path) -> str:
    """base64(sha256(SubjectPublicKeyInfo DER)): what Chromium's
    --ignore-certificate-errors-spki-list takes."""
    pub = subprocess.run(["openssl", "x509", "-in", str(cert), "-noout", "-pubkey"],
                         capture_output=True, check=True, timeout=10).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=pub,
                         capture_output=True, check=True, timeout=10).stdout
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


def client_context(certs: Certs, *, ca: Path | None = None, client: Pair | None = None,
                   check_hostname: bool = True) -> ssl.SSLContext:
    """A client SSLContext trusting the test CA (or `ca`), optionally presenting `client`."""
    ctx = ssl.create_default_context(cafile=str(ca or certs.ca))
    ctx.check_hostname = check_hostname
    if client is not None:
        ctx.load_cert_chain(str(client.cert), str(client.key))
    return ctx


_lock = threading.Lock()
_cache: dict[str, Certs] = {}


@pytest.fixture(scope="session")
def certs(tmp_path_factory) -> Certs:
    """The test PKI, generated once per pytest process (shared by every module that
    imports this fixture)."""
    with _lock:
        if "certs" not in _cache:
            _cache["certs"] = generate(tmp_path_factory.mktemp("tls-pki"))
        return _cache["certs"]
