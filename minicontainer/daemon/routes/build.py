"""``POST /build``: the classic builder (``DOCKER_BUILDKIT=0 docker build``, docker-py's ``images.build``).

The body is the build context, a tar (plain or compressed) streamed to the engine as it arrives;
the reply is the build's output, one JSON message per line.  Until the first message, an error is
an HTTP status (a bad Dockerfile is a 400, as dockerd's); after it, errors come inside the stream.
"""

from __future__ import annotations

import base64
import binascii
import json

from minicontainer.daemon.routing import BadRequest, Call, Reply, parse_filters, route

# Parameters that change how dockerd builds, which this builder does not do: refused when they ask
# for anything but their default (the clients send several of them, with the default, every time).
_DEFAULTS = {
    "cachefrom": ("", "[]", "null"), "shmsize": ("", "0"),
    "memory": ("", "0"), "memswap": ("", "0"), "cpushares": ("", "0"), "cpuquota": ("", "0"), "cpuperiod": ("", "0"),
    "cpusetcpus": ("",), "cpusetmems": ("",), "cgroupparent": ("",), "remote": ("",),
    "isolation": ("", "default"), "squash": ("", "0", "false", "False"), "ulimits": ("", "null", "[]"),
    "session": ("",), "outputs": ("", "null", "[]"), "platform": ("",), "version": ("", "1"),
    "securityopt": ("", "null", "[]"), "buildid": ("",),
}
_HANDLED = {"t", "dockerfile", "q", "nocache", "pull", "rm", "forcerm", "buildargs", "labels", "target", "explain",
            "networkmode", "extrahosts"}


def _json_param(call: Call, name: str) -> dict:
    text = call.q(name)
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError as e:
        raise BadRequest(f"invalid {name}: {e}") from None
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) or v is None for v in value.values()):
        raise BadRequest(f"invalid {name}: expected a JSON object of strings")
    return value


def _refuse_unsupported(call: Call) -> None:
    from minicontainer.image.builder import host_architecture

    for name, value in call.request.query.items():
        if name in _HANDLED:
            continue
        if name == "platform" and value in (f"linux/{host_architecture()}", "linux"):
            continue
        if name == "version" and value == "2":
            raise BadRequest("BuildKit (version=2) is not supported by minicontainerd: build with the classic builder "
                             "(DOCKER_BUILDKIT=0)")
        if name == "remote" and value:
            raise BadRequest(f"remote={value}: a build context from a URL needs the network, which this daemon's "
                             "builds do not have; send the context itself")
        if value not in _DEFAULTS.get(name, ("",)):
            raise BadRequest(f"the build option {name}={value} is not supported by minicontainerd's builder")


def _first(call: Call, name: str) -> str | None:
    """A parameter's *first* value, as Go's ``FormValue`` reads it (docker-py sends ``dockerfile``
    twice for a Dockerfile from outside the context: its name, then its text)."""
    values = (call.request.query_lists or {}).get(name)
    return values[0] if values else call.q(name)


def _registry_config(header: str | None) -> dict:
    """``X-Registry-Config``: base64url(JSON {registry: {username, password}}), for FROM's pulls."""
    if not header:
        return {}
    try:
        value = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
    except (binascii.Error, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


class BuildRoutes:
    engine: object

    @route("POST", "/build")
    async def build(self, call: Call) -> None:
        from minicontainer.engine.build import BuildOptions
        from minicontainer.image.reference import parse

        _refuse_unsupported(call)
        tags = []
        for tag in (call.request.query_lists or {}).get("t", []):
            try:
                ref = parse(tag)
            except ValueError as e:
                raise BadRequest(f"invalid tag {tag!r}: {e}") from None
            if ref.digest:
                raise BadRequest(f"invalid tag {tag!r}: a digest names existing content, give a tag")
            tags.append(str(ref.with_tag(ref.tag or "latest")))
        forcerm = call.flag("forcerm")
        options = BuildOptions(
            tags=tuple(tags), dockerfile=_first(call, "dockerfile") or "Dockerfile", quiet=call.flag("q"),
            nocache=call.flag("nocache"), pull=call.flag("pull"), rm=call.flag("rm", True) or forcerm,
            forcerm=forcerm, buildargs=_json_param(call, "buildargs"), labels=_json_param(call, "labels"),
            target=call.q("target") or "", explain=call.flag("explain"),
            network_mode=call.q("networkmode") or "default",
            # "a:1.2.3.4,b:5.6.7.8" from the docker CLI; docker-py repeats the parameter instead
            extra_hosts=tuple(h for v in (call.request.query_lists or {}).get("extrahosts", []) for h in v.split(",") if h),
            auth=_registry_config(call.request.headers.get("x-registry-config")))
        await self._stream_progress(call, "build", self.engine.build(call.conn.body_chunks(), options),  # type: ignore[attr-defined]
                                    upload=True)

    @route("POST", "/build/prune")
    async def build_prune(self, call: Call) -> Reply:
        """``docker builder prune`` (and the last request of ``docker system prune``): the classic
        builder's cache is its intermediate images; ``until`` and ``label`` filters pick among them."""
        return Reply(200, await self.engine.prune_build_cache(  # type: ignore[attr-defined]
            parse_filters(call.q("filters")), all=call.flag("all")))
