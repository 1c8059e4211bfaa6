"""How a request finds its handler, and the small vocabulary every route module shares.

A handler is an ``async`` method decorated with :func:`route`; it receives a :class:`Call` (the
request, its connection, the API version asked for) and returns a :class:`Reply` (status and JSON
body), or ``None`` when it answered by itself (streams, hijacked connections).

Routes are grouped by concept, one class each: the system, image and container routes live in
:mod:`minicontainer.daemon.api` itself; newer concepts have modules of their own in
:mod:`minicontainer.daemon.routes` (exec, networks, volumes, build, events...), each a class of
route methods that :class:`~minicontainer.daemon.api.DockerAPI` inherits.  Registration order is
import order: a more specific template (``/images/json``) must be registered before a more general
one that would also match it (``/images/{name*}/json``).
"""

from __future__ import annotations

import base64
import binascii
import inspect
import json
import re
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

from minicontainer.daemon.http import Connection, Request

API_VERSION = "1.45"
MIN_API_VERSION = "1.24"
# docker-py reads the 101 head through a buffered file and then reads the raw socket *under* it:
# output that arrived together with the head is lost in that buffer.  When output is ready at once
# (replayed logs), give the client this long to read the head first, as a busy Docker daemon
# happens to.
HIJACK_SETTLE_SECONDS = 0.05
_VERSION_PREFIX = re.compile(r"/v(\d+)\.(\d+)(/.*)")


def _version_tuple(text: str) -> tuple[int, int]:
    major, minor = text.split(".")
    return int(major), int(minor)


def server_version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("minicontainer")
    except PackageNotFoundError:
        return "dev"


class BadRequest(Exception):
    """Something wrong with the request itself (a parameter, the body): 400, like the engine's
    ``InvalidParameter``."""

    status = 400


class PageNotFound(Exception):
    status = 404


# --- reading parameters -----------------------------------------------------------------------------


def flag(value: str | None, default: bool = False) -> bool:
    """Docker's reading of a boolean query parameter: empty, "0", "no", "false", "none" are false,
    anything else true (``?all=1``, ``?all=true``, ``?all=True`` all work)."""
    if value is None:
        return default
    return value.strip().lower() not in ("", "0", "no", "false", "none")


def optional_int(value: str | None, name: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise BadRequest(f"invalid value for {name}: {value!r}") from None


def parse_filters(text: str | None) -> dict[str, list[str]]:
    """``filters`` is JSON, in one of two shapes: ``{"status": ["exited"]}`` (current) or
    ``{"status": {"exited": true}}`` (what the CLI has sent for years).  Both become lists."""
    if not text:
        return {}
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as e:
        raise BadRequest(f"invalid filters: {e}") from None
    if not isinstance(raw, dict):
        raise BadRequest("invalid filters: expected a JSON object")
    filters: dict[str, list[str]] = {}
    for key, values in raw.items():
        if isinstance(values, dict):
            filters[key] = [v for v, on in values.items() if on]
        elif isinstance(values, list):
            filters[key] = [str(v) for v in values]
        else:
            filters[key] = [str(values)]
    return filters


def json_object(call: Call) -> dict:
    """The request's body, a JSON object (an empty body: ``{}``); anything else is a 400."""
    try:
        body = call.request.json() if call.request.body else {}
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BadRequest(f"invalid JSON in the request body: {e}") from None
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    return body


def registry_auth(header: str | None) -> dict | None:
    """``X-Registry-Auth``: base64url(JSON credentials), padding optional.  Unreadable = anonymous."""
    if not header:
        return None
    try:
        decoded = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
    except (binascii.Error, ValueError):
        return None
    return decoded if isinstance(decoded, dict) and decoded else None


def _check_import(reference: str | None, changes: list[str]) -> None:
    from minicontainer.image.archive import apply_changes
    from minicontainer.image.reference import parse

    try:
        if reference and parse(reference).digest:
            raise ValueError(f"cannot import to '{reference}': a digest names existing content, give a tag")
        apply_changes({}, changes)
    except ValueError as e:
        raise BadRequest(str(e)) from None


async def _as_is(work: Awaitable[Any]) -> Any:
    return await work


async def _maybe_await(value: Any) -> Any:
    """Engine streams may be async generators (call -> iterator) or coroutines returning one."""
    return await value if inspect.isawaitable(value) else value


# --- replies -------------------------------------------------------------------------------------


class Reply(NamedTuple):
    """What a simple handler returns: a status and a JSON body (None: no body)."""

    status: int = 200
    body: Any = None


class Call(NamedTuple):
    """One request as a handler sees it."""

    request: Request
    conn: Connection
    version: tuple[int, int]       # the API version the client asked for (ours if none)

    def q(self, name: str, default: str | None = None) -> str | None:
        return self.request.query.get(name, default)

    def flag(self, name: str, default: bool = False) -> bool:
        return flag(self.request.query.get(name), default)


Handler = Callable[..., Awaitable[Reply | None]]


class Route(NamedTuple):
    method: str
    pattern: re.Pattern[str]
    handler_name: str


ROUTES: list[Route] = []


def route(method: str, template: str) -> Callable[[Handler], Handler]:
    """Register a handler.  ``{id}`` matches one path segment; ``{name*}`` matches several, because
    image names have slashes in them (``/images/docker.io/library/alpine/json``)."""
    regex = re.sub(r"\{(\w+)\*\}", r"(?P<\1>.+)", template)
    regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", regex)

    def register(handler: Handler) -> Handler:
        ROUTES.append(Route(method, re.compile(regex), handler.__name__))
        return handler

    return register
