"""``docker ps`` and ``container prune``: the containers a filter selects, and how ``ps`` shows each.

``ps`` lists the running containers, newest first (``-a``: every one); its ``Status`` column is
worded by the daemon, not the CLI (``Up 3 seconds``, ``Exited (0) 2 minutes ago``), which is why
the words are made here.  ``container prune`` removes the stopped containers the same filters
select (``label``, ``until``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from minicontainer.engine import images as image_service
from minicontainer.engine.filters import checked_filters, has_label, until
from minicontainer.engine.system import disk_used
from minicontainer.units import human_duration, parse_time

# What `ps --filter` and `container prune --filter` understand; docker refuses the others.
LIST_FILTERS = ("id", "name", "status", "ancestor", "exited", "label")
PRUNE_FILTERS = ("label", "label!", "until")


class ContainerListing:
    """``GET /containers/json`` and ``POST /containers/prune``, for
    :class:`~minicontainer.engine.service.Engine` (which inherits this)."""

    containers: dict
    store: Any
    networks: Any
    event_log: Any
    remove: Callable

    def list(self, all: bool = False, filters: dict | None = None, limit: int | None = None) -> list[dict]:
        filters = checked_filters(filters, LIST_FILTERS)
        out = []
        for c in sorted(self.containers.values(), key=lambda c: c.record["Created"], reverse=True):
            if not all and not c.state["Running"] and not filters.get("status"):  # restarting ones too
                continue
            if not self._matches(c, filters):
                continue
            out.append(self._summary(c))
        return out[:limit] if limit and limit > 0 else out

    def _matches(self, c: Any, filters: dict) -> bool:
        for key, values in filters.items():
            if key == "status" and c.state["Status"] not in values:
                return False
            if key == "exited" and (c.running or c.state.get("StartedAt", "").startswith("0001")
                                    or str(c.state.get("ExitCode")) not in values):
                return False  # only containers that ran and ended: a created one has no exit code
            if key == "label" and not all(has_label(c.record["Config"].get("Labels") or {}, v) for v in values):
                return False
            if key == "label!" and any(has_label(c.record["Config"].get("Labels") or {}, v) for v in values):
                return False
            if key == "until" and not all(parse_time(c.record["Created"]) < until(v) for v in values):
                return False
            # name=: a regular expression, matched against the name with and without its "/"
            if key == "name" and not any(re.search(v, "/" + c.name) or re.search(v, c.name) for v in values):
                return False
            if key == "id" and not any(c.id.startswith(v) for v in values):
                return False
            if key == "ancestor":
                wanted = set()
                for v in values:
                    try:
                        wanted.add(image_service.find(self.store, v).id)
                    except LookupError:
                        continue
                if c.record["Image"] not in wanted:
                    return False
        return True

    def _summary(self, c: Any) -> dict:
        command = " ".join([c.record["Path"], *c.record["Args"]])
        return {"Id": c.id, "Names": ["/" + c.name], "Image": c.record["Config"]["Image"],
                "ImageID": c.record["Image"], "Command": command, "Created": int(parse_time(c.record["Created"])),
                "Ports": self.networks.summary_ports(c), "Labels": c.record["Config"].get("Labels") or {},
                "State": c.state["Status"], "Status": self._status_text(c),
                "HostConfig": {"NetworkMode": c.record["HostConfig"]["NetworkMode"]},
                "NetworkSettings": {"Networks": c.record["NetworkSettings"]["Networks"]}, "Mounts": c.record["Mounts"]}

    @staticmethod
    def _status_text(c: Any) -> str:
        s = c.state
        if s.get("Restarting"):  # waiting to start again (engine/restart.py)
            return f"Restarting ({s['ExitCode']}) {human_duration(time.time() - parse_time(s['FinishedAt']))} ago"
        if s["Running"]:
            return "Up " + human_duration(time.time() - parse_time(s["StartedAt"])) + \
                (" (Paused)" if s.get("Paused") else "")
        if s["Status"] == "created":
            return "Created"
        return f"Exited ({s['ExitCode']}) {human_duration(time.time() - parse_time(s['FinishedAt']))} ago"

    async def prune(self, filters: dict | None = None) -> dict:
        """``container prune``: every stopped container (with ``label`` filters: those that match)."""
        filters = checked_filters(filters, PRUNE_FILTERS)
        deleted, freed = [], 0
        for container in list(self.containers.values()):
            if not container.state["Running"] and self._matches(container, filters):  # not a restarting one
                freed += disk_used(container.path("upper"))
                await self.remove(container.id)
                deleted.append(container.id)
        self.event_log.emit("container", "prune", "", {"reclaimed": freed})
        return {"ContainersDeleted": deleted or None, "SpaceReclaimed": freed}

