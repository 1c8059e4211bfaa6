"""``rename``, ``system df``, and what ``docker system prune`` asks of an engine without networks
or a build cache yet.

``docker system prune`` sends, in order, ``POST /containers/prune``, ``/networks/prune``,
``/images/prune`` and ``/build/prune``, and stops at the first error: each must answer.  This
engine has no user-defined networks and its builder keeps no cache, so those two prune nothing,
truthfully; they are fallbacks (:data:`~minicontainer.daemon.routing.FALLBACK_ROUTES`): once a
module of routes for networks or builds answers them, it does instead.
"""

from __future__ import annotations

from minicontainer.daemon.routing import BadRequest, Call, Reply, parse_filters, route


class SystemRoutes:
    @route("POST", "/containers/{id}/rename")
    async def container_rename(self, call: Call, id: str) -> Reply:
        self.engine.rename(id, call.q("name") or "")
        return Reply(204)

    @route("GET", "/system/df")
    async def system_df(self, call: Call) -> Reply:
        types = (call.request.query_lists or {}).get("type") or None
        return Reply(200, self.engine.disk_usage(types))

    @route("POST", "/networks/prune", fallback=True)
    async def no_networks_to_prune(self, call: Call) -> Reply:
        _known_filters(call, ("label", "label!", "until"))
        return Reply(200, {"NetworksDeleted": None})

    @route("POST", "/build/prune", fallback=True)
    async def no_build_cache_to_prune(self, call: Call) -> Reply:
        _known_filters(call, ("label", "label!", "until", "id", "parent", "type", "description", "inuse",
                              "shared", "private"))
        return Reply(200, {"CachesDeleted": None, "SpaceReclaimed": 0})


def _known_filters(call: Call, allowed: tuple[str, ...]) -> None:
    for key in parse_filters(call.q("filters")):
        if key not in allowed:
            raise BadRequest(f"invalid filter '{key}'")
