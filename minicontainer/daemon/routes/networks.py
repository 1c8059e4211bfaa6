"""The ``/networks`` routes: create, list, inspect, remove, prune, connect and disconnect.

The work is :class:`minicontainer.engine.networks.Networks`' (``engine.networks``); these methods
only read the request and shape the reply, with Docker's statuses (201 for create, 204 for remove).
"""

from __future__ import annotations

from minicontainer.daemon.routing import BadRequest, Call, Reply, json_object, parse_filters, route
from minicontainer.engine.errors import NotFound


class NetworkRoutes:
    engine: object  # the DockerAPI's

    @route("GET", "/networks")
    async def network_list(self, call: Call) -> Reply:
        return Reply(200, self.engine.networks.list(parse_filters(call.q("filters"))))

    @route("POST", "/networks/create")
    async def network_create(self, call: Call) -> Reply:
        return Reply(201, self.engine.networks.create(json_object(call)))

    @route("POST", "/networks/prune")
    async def network_prune(self, call: Call) -> Reply:
        filters = parse_filters(call.q("filters"))
        if set(filters) - {"label"}:
            raise BadRequest(f"invalid filter '{min(set(filters) - {'label'})}' (only label is supported)")
        return Reply(200, self.engine.networks.prune(filters))

    @route("GET", "/networks/{id}")
    async def network_inspect(self, call: Call, id: str) -> Reply:
        if call.flag("verbose"):
            raise BadRequest("verbose inspect is for swarm networks; this daemon has local networks only")
        network = self.engine.networks.inspect(id)
        if call.q("scope") not in (None, "", "local"):  # every network here is local: none in that scope
            raise NotFound(f"network {id} not found")
        return Reply(200, network)

    @route("DELETE", "/networks/{id}")
    async def network_remove(self, call: Call, id: str) -> Reply:
        self.engine.networks.remove(id)
        return Reply(204)

    @route("POST", "/networks/{id}/connect")
    async def network_connect(self, call: Call, id: str) -> Reply:
        self.engine.networks.connect(id, json_object(call))
        return Reply(200)

    @route("POST", "/networks/{id}/disconnect")
    async def network_disconnect(self, call: Call, id: str) -> Reply:
        self.engine.networks.disconnect(id, json_object(call))
        return Reply(200)
