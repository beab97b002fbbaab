"""Keys and tokens for bench/compare's authenticated Weir peers (weir-hs256, weir-rs256,
weir-es256): an HMAC secret, an RSA 2048 and an EC P-256 key pair made for the run with the
openssl CLI, and one token per algorithm (no exp: it stays valid for the whole run), which the
load generator sends as ?access_token= on every connect."""

import base64
import hashlib
import hmac
import json
import os
import subprocess


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def der_ecdsa_to_raw(der, half):
    """An ECDSA-Sig-Value (SEQUENCE of two INTEGERs) as JWS wants it: R || S, each `half` bytes."""
    assert der[0] == 0x30
    i = 2 if der[1] < 0x80 else 2 + (der[1] & 0x7F)
    out = b""
    for _ in range(2):
        assert der[i] == 0x02
        n = der[i + 1]
        out += der[i + 2:i + 2 + n].lstrip(b"\0").rjust(half, b"\0")
        i += 2 + n
    return out


def make(workdir):
    """Returns {"values": template placeholders, "tokens": {"HS256": ..., "RS256": ..., "ES256": ...}}."""
    d = os.path.join(workdir, "auth")
    os.makedirs(d, exist_ok=True)
    secret = b"weir-bench-secret-0123456789abcdef"
    claims = b64url(json.dumps({"sub": "bench", "iss": "https://bench"}).encode())
    tokens, values = {}, {"JWT_SECRET": secret.decode()}

    head = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    sig = hmac.new(secret, ("%s.%s" % (head, claims)).encode(), hashlib.sha256).digest()
    tokens["HS256"] = "%s.%s.%s" % (head, claims, b64url(sig))

    for alg, genkey, placeholder in (("RS256", ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"], "JWT_RS_PEM"),
                                     ("ES256", ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"], "JWT_ES_PEM")):
        key, pub = os.path.join(d, alg + ".key"), os.path.join(d, alg + ".pub.pem")
        subprocess.run(["openssl", "genpkey"] + genkey + ["-out", key], check=True, capture_output=True)
        subprocess.run(["openssl", "pkey", "-in", key, "-pubout", "-out", pub], check=True, capture_output=True)
        head = b64url(json.dumps({"alg": alg, "typ": "JWT"}).encode())
        signing_input = ("%s.%s" % (head, claims)).encode()
        sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key], input=signing_input,
                             check=True, capture_output=True).stdout
        if alg == "ES256":
            sig = der_ecdsa_to_raw(sig, 32)
        tokens[alg] = "%s.%s.%s" % (head, claims, b64url(sig))
        values[placeholder] = pub
    return {"values": values, "tokens": tokens}
