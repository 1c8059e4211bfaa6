"""``rename`` and ``system df``.

(``docker system prune`` is the client's sequence of the concepts' own prunes: ``POST
/containers/prune``, ``/networks/prune``, ``/images/prune`` and ``/build/prune``.)
"""

from __future__ import annotations

from minicontainer.daemon.routing import Call, Reply, route


class SystemRoutes:
    @route("POST", "/containers/{id}/rename")
    async def container_rename(self, call: Call, id: str) -> Reply:
        self.engine.rename(id, call.q("name") or "")
        return Reply(204)

    @route("GET", "/system/df")
    async def system_df(self, call: Call) -> Reply:
        types = (call.request.query_lists or {}).get("type") or None
        return Reply(200, self.engine.disk_usage(types))
