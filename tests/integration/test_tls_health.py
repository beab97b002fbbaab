"""Active health checks of wss:// group members speak TLS with the group's upstream_tls (CA,
SNI, name check), as the sessions do: a websocket check against a real TLS backend passes
(and the backend sees the check's TLS upgrade with SNI), the same backend checked with a CA
that did not sign it fails with the certificate error, and a killed backend goes unhealthy."""

from __future__ import annotations

import time

from test_balancing import member_state
from test_tls import tls_backend
from tlscerts import certs  # noqa: F401 (fixture)
from weirlib import make_config


def test_websocket_checks_of_wss_members_speak_tls(weir, peers, certs):
    back = tls_backend(certs.backend)  # CN=weir-backend, DNS:localhost
    peers.peers.append(back)
    member = f"wss://localhost:{back.port}"
    check = {"type": "websocket", "path": "/health", "interval": "200ms", "timeout": "1s", "rise": 1, "fall": 1}
    groups = [
        {"name": "pool", "members": [member], "health_check": check, "upstream_tls": {"ca": str(certs.ca)}},
        {"name": "wrongca", "members": [member], "health_check": check, "upstream_tls": {"ca": str(certs.ca2)}},
    ]
    w = weir.start(make_config([{"name": "a", "match": {"path": "/a"}, "upstream_group": "pool"},
                                {"name": "b", "match": {"path": "/b"}, "upstream_group": "wrongca"}],
                               upstream_groups=groups))
    ev = w.log.wait("upstream.health", timeout=5, group="wrongca", healthy=False)[0]
    assert "certificate" in ev["reason"], ev
    # The checks of "pool" reach the backend over TLS (SNI from the member's name) and pass.
    opened = back.log.wait("open", timeout=5)[0]
    assert opened["sni"] == "localhost" and opened["path"] == "/health", opened
    time.sleep(1.0)  # five more checks with fall: 1
    assert not w.log.find("upstream.health", group="pool")
    st = member_state(w, member)
    assert st["healthy"] is True and "last_check_error" not in st, st

    back.kill()
    ev = w.log.wait("upstream.health", timeout=5, group="pool", healthy=False)[0]
    assert ev["upstream"] == member
    assert member_state(w, member)["healthy"] is False
