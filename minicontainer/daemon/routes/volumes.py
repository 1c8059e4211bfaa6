"""The ``/volumes`` routes: create, list, inspect, remove, prune (and update, which is swarm's).

The work is :class:`minicontainer.engine.volumes.VolumeStore`'s (``engine.volumes``); these methods
read the request, and shape the reply as dockerd does: 201 for create, 204 for remove, the list as
``{"Volumes": [...], "Warnings": []}``.
"""

from __future__ import annotations

from minicontainer.daemon.routes.swarm import NOT_A_MANAGER, NotInASwarm
from minicontainer.daemon.routing import BadRequest, Call, Reply, json_object, parse_filters, route

# VolumeCreateRequest's fields: every one is read (ClusterVolumeSpec only to refuse it).
CREATE_FIELDS = ("Name", "Driver", "DriverOpts", "Labels", "ClusterVolumeSpec")


def _create_request(call: Call) -> dict:
    """The create body, checked: names and types as the API's VolumeCreateRequest has them; a field
    it does not have is refused rather than ignored."""
    body = json_object(call)
    for key, value in body.items():
        if key not in CREATE_FIELDS:
            raise BadRequest(f"unknown field {key!r} in the volume create request (it has {', '.join(CREATE_FIELDS)})")
        if key in ("Name", "Driver") and value is not None and not isinstance(value, str):
            raise BadRequest(f"{key} must be a string")
        if key in ("DriverOpts", "Labels") and value is not None and not (
                isinstance(value, dict) and all(isinstance(v, str) for v in value.values())):
            raise BadRequest(f"{key} must be an object of strings")
    return body


class VolumeRoutes:
    engine: object  # the DockerAPI's

    @route("GET", "/volumes")
    async def volume_list(self, call: Call) -> Reply:
        volumes = self.engine.volumes.list(parse_filters(call.q("filters")))
        return Reply(200, {"Volumes": [v.inspect() for v in volumes], "Warnings": []})

    @route("POST", "/volumes/create")
    async def volume_create(self, call: Call) -> Reply:
        body = _create_request(call)
        if body.get("ClusterVolumeSpec"):
            raise NotInASwarm(f"cluster volumes are swarm's: {NOT_A_MANAGER}")
        volume = self.engine.volumes.create(body.get("Name") or None, driver=body.get("Driver") or "local",
                                            driver_opts=body.get("DriverOpts"), labels=body.get("Labels"))
        return Reply(201, volume.inspect())

    @route("POST", "/volumes/prune")
    async def volume_prune(self, call: Call) -> Reply:
        filters = parse_filters(call.q("filters"))
        if call.version < (1, 42) and "all" not in filters:
            filters["all"] = ["true"]  # before API 1.42, prune took every unused volume, named ones too
        return Reply(200, self.engine.volumes.prune(filters))

    @route("GET", "/volumes/{name*}")
    async def volume_inspect(self, call: Call, name: str) -> Reply:
        return Reply(200, self.engine.volumes.get(name).inspect())

    @route("DELETE", "/volumes/{name*}")
    async def volume_remove(self, call: Call, name: str) -> Reply:
        self.engine.volumes.remove(name, force=call.flag("force"))
        return Reply(204)

    @route("PUT", "/volumes/{name*}")
    async def volume_update(self, call: Call, name: str) -> Reply:
        raise NotInASwarm(f"volume update only valid for cluster volumes, but swarm unavailable: {NOT_A_MANAGER}")
