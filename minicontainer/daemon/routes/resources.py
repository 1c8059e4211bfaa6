"""``POST /containers/{id}/pause``, ``/unpause`` and ``/update``: a running container's cgroup, changed.

pause and unpause answer 204; update answers 200 with ``{"Warnings": []}`` (docker-py reads it as
JSON).  The update body holds the Resources fields at its top level (``Memory``, ``NanoCpus``,
``PidsLimit``...), 0 meaning "unchanged".
"""

from __future__ import annotations

import json

from minicontainer.daemon.routing import BadRequest, Call, Reply, route


class ResourcesRoutes:
    engine: object

    @route("POST", "/containers/{id}/pause")
    async def container_pause(self, call: Call, id: str) -> Reply:
        await self.engine.pause(id)  # type: ignore[attr-defined]
        return Reply(204)

    @route("POST", "/containers/{id}/unpause")
    async def container_unpause(self, call: Call, id: str) -> Reply:
        await self.engine.unpause(id)  # type: ignore[attr-defined]
        return Reply(204)

    @route("POST", "/containers/{id}/update")
    async def container_update(self, call: Call, id: str) -> Reply:
        try:
            body = call.request.json() or {}
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise BadRequest(f"invalid JSON in the request body: {e}") from None
        if not isinstance(body, dict):
            raise BadRequest("the request body must be a JSON object (the resources to change)")
        return Reply(200, await self.engine.update(id, body))  # type: ignore[attr-defined]
