"""What happened to containers and images, as ``docker events`` shows it: one message per action.

Every action the engine takes on an object is *emitted* here (``create``, ``start``, ``die``,
``oom``, ``kill``, ``pull``, ``tag``...).  The log keeps the most recent messages in a ring (256, as
dockerd does), so a client asking for ``--since 5m`` gets them replayed, and hands every new one to
the clients that are listening (``GET /events`` streams them as they come).

A message, in the Engine API's shape::

    {"Type": "container", "Action": "die",
     "Actor": {"ID": "<64 hex>", "Attributes": {"image": "busybox", "name": "web", "exitCode": "137"}},
     "scope": "local", "time": 1700000000, "timeNano": 1700000000123456789,
     "status": "die", "id": "<64 hex>", "from": "busybox"}     # the legacy fields: containers, images

Other parts of the engine emit with one call, for example::

    engine.event_log.emit("network", "connect", network_id, {"name": "br0", "container": cid})
    engine.event_log.container(container, "exec_create: sh -c date", execID=exec_id)

Attributes are strings (numbers too: the API's map is ``map[string]string``).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Iterable
from typing import Any

from minicontainer.engine.filters import has_label

RING_SIZE = 256  # dockerd keeps as many for replays
# The filter keys `docker events --filter` knows; others are refused rather than ignored.
FILTERS = ("container", "image", "event", "type", "label", "network", "volume", "daemon", "plugin",
           "node", "service", "secret", "config", "scope")
TYPES = ("container", "image", "volume", "network", "daemon", "plugin", "node", "service", "secret",
         "config", "builder")


class EventLog:
    """The recent events, and the queues of the clients listening for new ones."""

    def __init__(self, size: int = RING_SIZE) -> None:
        self.recent: deque[dict] = deque(maxlen=size)
        self.listeners: set[asyncio.Queue] = set()

    def emit(self, type: str, action: str, actor_id: str, attributes: dict[str, Any] | None = None) -> dict:
        """Record one event and hand it to every listener; returns the message."""
        now = time.time_ns()
        attrs = {k: str(v) for k, v in (attributes or {}).items() if v is not None}
        message: dict[str, Any] = {"Type": type, "Action": action, "Actor": {"ID": actor_id, "Attributes": attrs},
                                   "scope": "local", "time": now // 1_000_000_000, "timeNano": now}
        if type in ("container", "image"):  # the fields clients older than API 1.22 read
            message.update(status=action, id=actor_id)
            if "image" in attrs:
                message["from"] = attrs["image"]
        self.recent.append(message)
        for queue in list(self.listeners):
            queue.put_nowait(message)
        return message

    def container(self, container: Any, action: str, **extra: Any) -> dict:
        """A container's event: its labels, image and name are the attributes, then ``extra``
        (``exitCode`` for ``die``, ``signal`` for ``kill``, ``execID`` for exec's)."""
        config = container.record["Config"]
        attrs = {**(config.get("Labels") or {}), "image": config.get("Image", ""), "name": container.name, **extra}
        return self.emit("container", action, container.id, attrs)

    def image(self, action: str, actor_id: str, name: str, labels: dict | None = None) -> dict:
        """An image's event: ``pull`` names the reference pulled, ``tag``/``untag``/``delete`` the image ID."""
        return self.emit("image", action, actor_id, {**(labels or {}), "name": name})

    def pulled(self, reference: str) -> dict:
        """``pull``'s event names what was pulled as typed: ``busybox:latest``, name ``busybox``."""
        from minicontainer.image.reference import parse

        ref = parse(reference)
        return self.image("pull", ref.familiar(), ref.familiar_name())

    def listen(self) -> asyncio.Queue:
        """A queue that receives every event from now on; give it back with :meth:`stop_listening`."""
        queue: asyncio.Queue = asyncio.Queue()
        self.listeners.add(queue)
        return queue

    def stop_listening(self, queue: asyncio.Queue) -> None:
        self.listeners.discard(queue)

    def replay(self, since_ns: int, until_ns: int | None, filters: dict[str, list[str]]) -> list[dict]:
        """The remembered events from ``since_ns`` to ``until_ns`` (None: now) that match ``filters``."""
        return [m for m in self.recent if m["timeNano"] >= since_ns and (until_ns is None or m["timeNano"] <= until_ns)
                and matches(m, filters)]


def check_filters(filters: dict[str, list[str]]) -> dict[str, list[str]]:
    """Refuse filter keys docker does not know (dockerd answers 400), rather than list everything."""
    for key in filters:
        if key not in FILTERS:
            raise ValueError(f"invalid filter '{key}'")
    for value in filters.get("type", []):
        if value not in TYPES:
            raise ValueError(f"invalid filter 'type={value}'")
    return filters


def matches(message: dict, filters: dict[str, list[str]]) -> bool:
    """docker's rules: every key given must match (AND); within a key, any value may (OR).

    ``container`` and ``image`` match an ID (or its prefix) or a name; ``event`` matches the action,
    or its prefix before ``:`` (``exec_create: sh`` is an ``exec_create``); ``label`` is ``KEY`` or
    ``KEY=VALUE`` among the attributes."""
    actor = message["Actor"]
    attrs = actor["Attributes"]
    for key, values in filters.items():
        if not values:
            continue
        if key == "type":
            ok = message["Type"] in values
        elif key == "event":
            action = message["Action"]
            ok = action in values or action.split(":", 1)[0] in values
        elif key == "label":
            ok = all(has_label(attrs, v) for v in values)
        elif key in ("container", "image"):
            if key == "image" and message["Type"] == "container":
                ok = _names_match(values, [attrs.get("image", "")])
            else:
                ok = message["Type"] == key and _names_match(values, [actor["ID"], attrs.get("name", "")])
        elif key == "scope":
            ok = message["scope"] in values
        else:  # network, volume, daemon...: the object of that type, by ID or name
            ok = message["Type"] == key and _names_match(values, [actor["ID"], attrs.get("name", "")])
        if not ok:
            return False
    return True


def _names_match(wanted: Iterable[str], have: list[str]) -> bool:
    """A full name or ID, a hex prefix of an ID, or the same image with or without ``:latest``."""
    return any(h and (h == w or _is_id_prefix(w, h) or _image_name(h) == _image_name(w))
               for w in wanted for h in have)


def _is_id_prefix(prefix: str, ident: str) -> bool:
    bare = ident.removeprefix("sha256:")
    return bool(prefix) and all(c in "0123456789abcdef" for c in prefix) and bare.startswith(prefix)


def _image_name(name: str) -> str:
    """``busybox`` and ``busybox:latest`` are the same image for a filter."""
    return name if ":" in name.rsplit("/", 1)[-1] or "@" in name else f"{name}:latest"


def parse_timestamp(text: str | None, name: str) -> int | None:
    """``since``/``until`` as the API takes them -> nanoseconds: Unix ``seconds[.nanoseconds]`` (what
    the docker CLI sends), or a duration back from now or an RFC 3339 time (see
    :func:`~minicontainer.units.point_in_time_ns`)."""
    from minicontainer.units import point_in_time_ns

    if text is None or text == "":
        return None
    try:
        return point_in_time_ns(text)
    except ValueError as e:
        raise ValueError(f"invalid value for {name}: {e}") from None
