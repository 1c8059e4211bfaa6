"""The routes of the Docker Engine API that minicontainerd serves, each a thin call into the engine.

This module is the *translation* layer: URL + query + JSON body in, one ``Engine`` call, JSON (or a
stream) out.  It decides nothing about containers.  The rules it does own are HTTP's:

* **versions**: clients put the API version in the path (``/v1.45/containers/json``); we strip it,
  refuse versions we do not speak, and advertise ours in an ``Api-Version`` header on every reply
  (the CLI reads it from ``HEAD /_ping`` and then speaks min(ours, its own));
* **errors**: the engine raises exceptions carrying an HTTP ``status`` (``NotFound`` 404,
  ``Conflict`` 409, ``NotModified`` 304, ``InvalidParameter`` 400); we answer
  ``{"message": "..."}``.  The status codes matter: a 404 from ``create`` is what makes
  ``docker run`` pull the image and try again;
* **streams**: pull progress and logs go out chunked as they come; ``attach`` hijacks the
  connection; ``wait`` sends its headers at once and its body when the container exits.

The reference is Docker's own spec, ``api/swagger.yaml`` in the moby repository.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator
from typing import Any

from minicontainer.daemon import streams
from minicontainer.daemon.http import ClientGone, Connection, Request
from minicontainer.daemon.routes import route_classes
from minicontainer.daemon.routing import (  # noqa: F401 - re-exported: the vocabulary of every route
    _VERSION_PREFIX,
    API_VERSION,
    HIJACK_SETTLE_SECONDS,
    MIN_API_VERSION,
    ROUTES,
    BadRequest,
    Call,
    Handler,
    PageNotFound,
    Reply,
    Route,
    _as_is,
    _check_import,
    _maybe_await,
    _version_tuple,
    flag,
    optional_int,
    parse_filters,
    registry_auth,
    route,
    server_version,
)

log = logging.getLogger(__name__)

# --- the API ------------------------------------------------------------------------------------


class DockerAPI(*route_classes()):
    """Dispatches requests to handlers; the handlers are its methods, registered with :func:`route`.

    The system, image and container routes are defined below; each newer concept's routes are a
    class in :mod:`minicontainer.daemon.routes` that this class inherits."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.server_header = f"minicontainerd/{server_version()} (linux)"

    def common_headers(self) -> list[tuple[str, str]]:
        """On every reply: clients read these from any response, ``_ping`` above all."""
        return [("Api-Version", API_VERSION), ("Ostype", "linux"), ("Docker-Experimental", "false"),
                ("Server", self.server_header)]

    async def handle(self, request: Request, conn: Connection) -> None:
        """Answer one request, whatever happens (unless the client is gone)."""
        try:
            path, version = self._split_version(request.path)
            handler, params = self._find(request.method, path)
            reply = await handler(Call(request, conn, version), **params)
            if reply is not None:
                if reply.body is None:
                    await conn.reply(reply.status)
                else:
                    await conn.reply_json(reply.body, reply.status)
        except (ClientGone, ConnectionError):
            raise                                   # nobody to answer: the server closes the connection
        except Exception as exc:  # noqa: BLE001 -- any failure becomes an HTTP error, never a dropped connection
            await self._reply_error(exc, request, conn)

    @staticmethod
    def _split_version(path: str) -> tuple[str, tuple[int, int]]:
        m = _VERSION_PREFIX.fullmatch(path)
        if not m:
            return path, _version_tuple(API_VERSION)
        version = (int(m.group(1)), int(m.group(2)))
        if version > _version_tuple(API_VERSION):
            raise BadRequest(f"client version {m.group(1)}.{m.group(2)} is too new. "
                             f"Maximum supported API version is {API_VERSION}")
        if version < _version_tuple(MIN_API_VERSION):
            raise BadRequest(f"client version {m.group(1)}.{m.group(2)} is too old. "
                             f"Minimum supported API version is {MIN_API_VERSION}, "
                             "please upgrade your client to a newer version")
        return m.group(3), version

    def _find(self, method: str, path: str) -> tuple[Handler, dict[str, str]]:
        # HEAD is GET without the body (the http layer drops the body).
        methods = (method, "GET") if method == "HEAD" else (method,)
        for r in ROUTES:
            if r.method in methods:
                m = r.pattern.fullmatch(path)
                if m:
                    return getattr(self, r.handler_name), m.groupdict()
        raise PageNotFound("page not found")

    async def _reply_error(self, exc: Exception, request: Request, conn: Connection) -> None:
        status = getattr(exc, "status", 500)
        if not isinstance(status, int) or not 300 <= status <= 599:
            status = 500
        message = str(exc) or type(exc).__name__
        if status >= 500:
            log.error("%s %s: %s", request.method, request.path, message, exc_info=exc)
        else:
            log.info("%s %s: %d %s", request.method, request.path, status, message)
        if conn.hijacked:
            return
        if conn.responded:
            # The status line has gone out: too late for an HTTP error.  Closing the connection
            # without ending the chunked body tells the client the reply is incomplete.
            raise ClientGone() from exc
        if status == 304:
            await conn.reply(304)
        else:
            await conn.reply_json({"message": message}, status)

    @staticmethod
    def is_upload(method: str, path: str, query: dict[str, str]) -> bool:
        """Requests whose body is a tar, of any size: streamed to the handler, not buffered."""
        path = re.sub(r"^/v[0-9.]+", "", path)
        if method == "PUT":  # docker cp into a container: a tar
            return bool(re.fullmatch(r"/containers/[^/]+/archive", path))
        return method == "POST" and (path in ("/images/load", "/build") or path == "/images/create" and "fromSrc" in query)

    # --- system ---------------------------------------------------------------------------------

    @route("GET", "/_ping")
    async def ping(self, call: Call) -> None:
        await call.conn.reply(200, b"OK", "text/plain; charset=utf-8",
                              headers=[("Builder-Version", "1"), ("Swarm", "inactive"),
                                       ("Cache-Control", "no-cache, no-store, must-revalidate"),
                                       ("Pragma", "no-cache")])

    @route("GET", "/version")
    async def version(self, call: Call) -> Reply:
        info = dict(self.engine.version())
        # The API version is this layer's to say (the engine does not speak HTTP).
        info["ApiVersion"] = API_VERSION
        info["MinAPIVersion"] = MIN_API_VERSION
        # `docker version` prints the server part from the "Engine" component's Details, not from
        # the top-level fields docker-py reads: fill them in from the top level where missing.
        components = [dict(c) for c in info.get("Components") or []]
        engine = next((c for c in components if c.get("Name") == "Engine"), None)
        if engine is None:
            engine = {"Name": "Engine", "Version": info.get("Version", "")}
            components.insert(0, engine)
        details = dict(engine.get("Details") or {})
        for key in ("GitCommit", "GoVersion", "Os", "Arch", "KernelVersion", "BuildTime"):
            details.setdefault(key, str(info.get(key, "")))
        details.setdefault("Experimental", "false")
        details.update(ApiVersion=API_VERSION, MinAPIVersion=MIN_API_VERSION)
        engine["Details"] = details
        info["Components"] = components
        return Reply(200, info)

    @route("GET", "/info")
    async def info(self, call: Call) -> Reply:
        return Reply(200, self.engine.info())

    # --- images ---------------------------------------------------------------------------------

    @route("POST", "/images/create")
    async def image_pull(self, call: Call) -> None:
        if call.q("fromSrc") is not None:
            return await self._image_import(call)
        image = call.q("fromImage") or ""
        if not image:
            raise BadRequest("fromImage is required")
        auth = registry_auth(call.request.headers.get("x-registry-auth"))
        # explain=1 is ours (docker has no such thing): the registry exchanges come in the stream too.
        extra = {"explain": True} if call.flag("explain") else {}
        await self._stream_progress(call, f"pull {image}", self.engine.pull(
            image, call.q("tag") or None, call.q("platform") or None, auth, **extra))

    async def _image_import(self, call: Call) -> None:
        """``POST /images/create?fromSrc=-``: the request's body is a root filesystem's tar."""
        if call.q("fromSrc") != "-":
            raise BadRequest("importing from a URL is not supported: download the file, then import it")
        repo, tag = call.q("repo") or "", call.q("tag") or ""
        reference = f"{repo}:{tag}" if repo and tag else (repo or None)
        changes = (call.request.query_lists or {}).get("changes", [])
        _check_import(reference, changes)  # a 400 now, before the client has sent its whole tar
        await self._stream_progress(call, "import", self.engine.import_image(
            call.conn.body_chunks(), reference, changes, call.q("message") or ""), upload=True)

    @route("POST", "/images/load")
    async def image_load(self, call: Call) -> None:
        """``docker load``: the body is an archive's tar; the reply streams the progress and the
        ``Loaded image: ...`` lines."""
        await self._stream_progress(call, "load", self.engine.load(call.conn.body_chunks(), call.flag("quiet")),
                                    upload=True)

    @route("GET", "/images/get")
    async def image_save(self, call: Call) -> None:
        """``docker save``: ``?names=a&names=b``; ``format=oci-archive`` is ours (an OCI image layout)."""
        names = (call.request.query_lists or {}).get("names", [])
        if not names:
            raise BadRequest("names is required")
        await self._stream_tar(call, self.engine.save(names, call.q("format") or "docker-archive"))

    @route("GET", "/images/{name*}/get")
    async def image_save_one(self, call: Call, name: str) -> None:
        await self._stream_tar(call, self.engine.save([name], call.q("format") or "docker-archive"))

    async def _stream_tar(self, call: Call, chunks: AsyncIterator[bytes]) -> None:
        """A tar as it is written.  An error before its first byte is still an HTTP status."""
        first = await anext(chunks, b"")
        conn = call.conn
        await conn.start_stream(200, "application/x-tar")

        async def pump() -> None:
            chunk = first
            while chunk:
                await conn.send(chunk)
                chunk = await anext(chunks, b"")

        await conn.until_disconnect(pump())
        await conn.end_stream()

    @route("POST", "/images/{name*}/push")
    async def image_push(self, call: Call, name: str) -> None:
        auth = registry_auth(call.request.headers.get("x-registry-auth"))
        await self._stream_progress(call, f"push {name}", self.engine.push(name, call.q("tag") or None, auth))

    async def _stream_progress(self, call: Call, what: str, stream: Any, *, upload: bool = False) -> None:
        """A transfer's progress, one JSON object per line as it happens.

        While a client uploads (``upload``: load, import), the upload itself is read from the
        connection, so nothing else may read it to notice a disconnect; a client that leaves ends
        the upload instead."""
        progress: AsyncIterator[dict] = aiter(await _maybe_await(stream))
        conn = call.conn
        watched = _as_is if upload else conn.until_disconnect
        # Until the first progress message an error is still an HTTP status (404 for an image that
        # does not exist); after it, errors travel inside the stream.
        first = await watched(anext(progress, None))
        await conn.start_stream(200, "application/json")

        async def pump() -> None:
            item = first
            while item is not None:
                await conn.send(streams.json_line(item))
                item = await anext(progress, None)

        try:
            await watched(pump())
        except ClientGone:
            raise
        except Exception as exc:  # noqa: BLE001 -- whatever failed, the client must read why
            log.info("%s failed: %s", what, exc)
            await conn.send(streams.error_line(str(exc) or type(exc).__name__))
        await conn.end_stream()

    @route("GET", "/images/json")
    async def image_list(self, call: Call) -> Reply:
        filters = parse_filters(call.q("filters"))
        return Reply(200, self.engine.images(all=call.flag("all"), **({"filters": filters} if filters else {})))

    @route("GET", "/images/{name*}/json")
    async def image_inspect(self, call: Call, name: str) -> Reply:
        return Reply(200, self.engine.image_inspect(name))

    @route("GET", "/images/{name*}/history")
    async def image_history(self, call: Call, name: str) -> Reply:
        return Reply(200, self.engine.image_history(name))

    @route("POST", "/images/{name*}/tag")
    async def image_tag(self, call: Call, name: str) -> Reply:
        repo = call.q("repo") or ""
        if not repo:
            raise BadRequest("repo is required")
        self.engine.tag_image(name, repo, call.q("tag") or None)
        return Reply(201)

    @route("POST", "/images/prune")
    async def image_prune(self, call: Call) -> Reply:
        return Reply(200, await _maybe_await(self.engine.prune_images(parse_filters(call.q("filters")))))

    @route("DELETE", "/images/{name*}")
    async def image_remove(self, call: Call, name: str) -> Reply:
        return Reply(200, await _maybe_await(self.engine.remove_image(name, force=call.flag("force"),
                                                                   noprune=call.flag("noprune"))))

    # --- containers: life cycle ----------------------------------------------------------------

    @route("POST", "/containers/create")
    async def container_create(self, call: Call) -> Reply:
        try:
            body = call.request.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise BadRequest(f"invalid JSON in the request body: {e}") from None
        if not isinstance(body, dict):
            raise BadRequest("the request body must be a JSON object (a container config)")
        return Reply(201, await self.engine.create(body, call.q("name") or None))

    @route("POST", "/containers/prune")
    async def container_prune(self, call: Call) -> Reply:
        return Reply(200, await self.engine.prune(parse_filters(call.q("filters"))))

    @route("GET", "/containers/json")
    async def container_list(self, call: Call) -> Reply:
        limit = optional_int(call.q("limit"), "limit")
        if limit is not None and limit <= 0:        # the CLI's "no limit" is -1 (old ones sent 0)
            limit = None
        return Reply(200, self.engine.list(all=call.flag("all"), filters=parse_filters(call.q("filters")),
                                           limit=limit))

    @route("GET", "/containers/{id}/json")
    async def container_inspect(self, call: Call, id: str) -> Reply:
        return Reply(200, self.engine.inspect(id))

    @route("POST", "/containers/{id}/start")
    async def container_start(self, call: Call, id: str) -> Reply:
        await self.engine.start(id)                 # NotModified (304) if it already runs
        return Reply(204)

    @route("POST", "/containers/{id}/stop")
    async def container_stop(self, call: Call, id: str) -> Reply:
        await self.engine.stop(id, optional_int(call.q("t"), "t"))
        return Reply(204)

    @route("POST", "/containers/{id}/restart")
    async def container_restart(self, call: Call, id: str) -> Reply:
        await self.engine.restart(id, optional_int(call.q("t"), "t"))
        return Reply(204)

    @route("POST", "/containers/{id}/kill")
    async def container_kill(self, call: Call, id: str) -> Reply:
        await self.engine.kill(id, call.q("signal") or None)
        return Reply(204)

    @route("DELETE", "/containers/{id}")
    async def container_remove(self, call: Call, id: str) -> Reply:
        await self.engine.remove(id, force=call.flag("force"), volumes=call.flag("v"))
        return Reply(204)

    @route("POST", "/containers/{id}/wait")
    async def container_wait(self, call: Call, id: str) -> None:
        condition = call.q("condition") or "not-running"
        if condition not in ("not-running", "next-exit", "removed"):
            raise BadRequest(f"invalid condition: {condition!r}")
        conn = call.conn
        # Start waiting *before* answering: the CLI sends `start` as soon as it has our headers, and
        # a `next-exit` wait registered after the start could miss a quick exit.  One turn of the
        # event loop lets the engine register (or raise NotFound, which is still a 404 here).
        waiting = asyncio.ensure_future(self.engine.wait(id, condition))
        await asyncio.sleep(0)
        if waiting.done():
            waiting.result()
        try:
            await conn.start_stream(200, "application/json")
        except ClientGone:
            waiting.cancel()
            raise
        try:
            result = await conn.until_disconnect(waiting)
        except ClientGone:
            raise
        except Exception as exc:  # noqa: BLE001 -- headers are out: the error goes in the body
            result = {"StatusCode": -1, "Error": {"Message": str(exc) or type(exc).__name__}}
        await conn.send(streams.json_line(result))
        await conn.end_stream()

    # --- containers: looking inside ------------------------------------------------------------

    @route("GET", "/containers/{id}/logs")
    async def container_logs(self, call: Call, id: str) -> None:
        stdout, stderr = call.flag("stdout"), call.flag("stderr")
        if not (stdout or stderr):
            raise BadRequest("Bad parameters: you must choose at least one stream")
        tty = bool(self.engine.inspect(id).get("Config", {}).get("Tty"))
        from minicontainer.engine.events import parse_timestamp

        try:  # 0 is "from the start" and "no end", as dockerd reads it
            since, until = ((parse_timestamp(call.q(name) or "0", name) or 0) / 1e9 for name in ("since", "until"))
        except ValueError as e:
            raise BadRequest(str(e)) from None
        lines: AsyncIterator[tuple[int, bytes]] = aiter(await _maybe_await(self.engine.logs(
            id, stdout=stdout, stderr=stderr, follow=call.flag("follow"), since=since, until=until,
            timestamps=call.flag("timestamps"), tail=call.q("tail") or "all")))
        conn = call.conn
        await conn.start_stream(200, streams.stream_content_type(tty, call.version))

        async def pump() -> None:
            async for stream, data in lines:
                await conn.send(data if tty else streams.frame(stream, data))

        try:
            await conn.until_disconnect(pump())
        finally:
            aclose = getattr(lines, "aclose", None)
            if aclose is not None:
                await aclose()
        await conn.end_stream()

    @route("POST", "/containers/{id}/attach")
    async def container_attach(self, call: Call, id: str) -> None:
        config = self.engine.inspect(id).get("Config", {})       # 404 before we hijack
        from minicontainer.engine.detach import DEFAULT_DETACH_KEYS, parse_detach_keys

        try:
            detach_keys = parse_detach_keys(call.q("detachKeys") or DEFAULT_DETACH_KEYS)
        except ValueError as e:
            raise BadRequest(str(e)) from None
        stdin, stdout, stderr = call.flag("stdin"), call.flag("stdout"), call.flag("stderr")
        tty = bool(config.get("Tty"))
        content_type = streams.stream_content_type(tty, call.version)
        if not call.flag("stream"):
            # Only what was logged so far (docker-py's `attach(logs=True, stream=False)`).
            raw = await call.conn.hijack(content_type)
            await asyncio.sleep(HIJACK_SETTLE_SECONDS)
            if call.flag("logs") and (stdout or stderr):
                lines = await _maybe_await(self.engine.logs(
                    id, stdout=stdout, stderr=stderr, follow=False, since=0, until=0,
                    timestamps=False, tail="all"))
                async for stream, data in lines:
                    raw.writer.write(data if tty else streams.frame(stream, data))
                    await raw.writer.drain()
            if raw.writer.can_write_eof():
                raw.writer.write_eof()
            return
        attachment = await self.engine.attach(id, stdin=stdin, stdout=stdout, stderr=stderr,
                                              logs=call.flag("logs"))
        raw = await call.conn.hijack(content_type)
        if call.flag("logs"):
            await asyncio.sleep(HIJACK_SETTLE_SECONDS)
        if await streams.attach_session(
                raw, attachment, forward_stdin=stdin and bool(config.get("OpenStdin")),
                close_stdin_at_eof=bool(config.get("StdinOnce")), detach_keys=detach_keys):
            self.engine.event_log.container(self.engine.get(id), "detach")  # `docker events` shows it

    @route("POST", "/containers/{id}/resize")
    async def container_resize(self, call: Call, id: str) -> Reply:
        """The client's terminal size (``h`` rows, ``w`` columns), for a container with ``-t``."""
        rows, columns = optional_int(call.q("h"), "h") or 0, optional_int(call.q("w"), "w") or 0
        self.engine.resize(id, rows, columns)
        return Reply(200)

    @route("GET", "/containers/{id}/top")
    async def container_top(self, call: Call, id: str) -> Reply:
        return Reply(200, self.engine.top(id, call.q("ps_args") or None))

    @route("GET", "/containers/{id}/export")
    async def container_export(self, call: Call, id: str) -> None:
        self.engine.inspect(id)  # 404 before the stream starts
        await self._stream_tar(call, self.engine.export(id))

    @route("GET", "/containers/{id}/changes")
    async def container_changes(self, call: Call, id: str) -> Reply:
        return Reply(200, self.engine.changes(id))

    # minicontainer's own (not Docker's): the kernel steps recorded for a container, for --explain.
    @route("POST", "/minicontainer/starter/{name}")
    async def starter(self, call: Call, name: str) -> Reply:
        """Ours: build a starter image (busybox, hello-world, redis) from this host's own files."""
        return Reply(200, await _maybe_await(self.engine.install_starter(name)))

    @route("GET", "/containers/{id}/events")
    async def container_events(self, call: Call, id: str) -> Reply:
        return Reply(200, self.engine.events(id, since_ns=int(call.q("since_ns") or 0)))
