"""Swarm routes answer as a Docker daemon outside a swarm does: 503, in Docker's words."""

from __future__ import annotations

from test_daemon_http import daemon, request  # noqa: F401 - the fixture, by name

from minicontainer.daemon.routes.swarm import NOT_A_MANAGER


def test_swarm_routes_say_this_node_is_not_a_swarm_manager(daemon):  # noqa: F811
    for method, path in (("GET", "/v1.45/swarm"), ("GET", "/v1.45/nodes"), ("GET", "/v1.45/services"),
                         ("GET", "/swarm/unlockkey"), ("POST", "/v1.45/services/create"),
                         ("DELETE", "/v1.45/secrets/abc")):
        r = request(daemon, method, path)
        assert (r.status, r.json()["message"]) == (503, NOT_A_MANAGER), (method, path)
    r = request(daemon, "POST", "/v1.45/swarm/leave?force=1")
    assert (r.status, r.json()["message"]) == (503, "This node is not part of a swarm")
    r = request(daemon, "POST", "/v1.45/swarm/init", {"ListenAddr": "0.0.0.0:2377"})
    assert r.status == 503 and "does not support swarm mode" in r.json()["message"]
