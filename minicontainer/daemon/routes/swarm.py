"""Swarm mode, as a daemon that is not part of a swarm answers it: 503 on every route.

minicontainer is one engine on one host; Docker's orchestration of many (``docker swarm``,
services, nodes, secrets) is not part of the course.  A Docker daemon outside a swarm answers its
swarm routes with 503 and these words, and clients rely on it: docker-py's ``client.swarm`` asks
``GET /swarm`` and takes 503 to mean "no swarm" (a 404 would make it raise), and
``leave_swarm(force=True)`` counts a 503 as done.
"""

from __future__ import annotations

from minicontainer.daemon.routing import Call, route

NOT_A_MANAGER = ('This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" to connect '
                 'this node to swarm and try again.')


class NotInASwarm(Exception):
    status = 503


# Everything swarm mode adds to the API; each of them, with any method, answers the same.
_SWARM_PATHS = ("/swarm", "/swarm/{rest*}", "/nodes", "/nodes/{rest*}", "/services", "/services/{rest*}",
                "/tasks", "/tasks/{rest*}", "/secrets", "/secrets/{rest*}", "/configs", "/configs/{rest*}")


class SwarmRoutes:
    @route("POST", "/swarm/leave")
    async def swarm_leave(self, call: Call) -> None:
        raise NotInASwarm("This node is not part of a swarm")

    @route("POST", "/swarm/init")
    @route("POST", "/swarm/join")
    async def swarm_init(self, call: Call) -> None:
        raise NotInASwarm("minicontainer does not support swarm mode: it is one engine on one host")

    async def not_a_manager(self, call: Call, rest: str = "") -> None:
        raise NotInASwarm(NOT_A_MANAGER)

    for _path in _SWARM_PATHS:
        for _method in ("GET", "POST", "DELETE", "PUT"):
            not_a_manager = route(_method, _path)(not_a_manager)
    del _path, _method
