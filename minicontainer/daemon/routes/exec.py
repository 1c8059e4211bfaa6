"""The exec routes: create an exec instance, start it (detached, or on a hijacked connection),
resize its terminal, inspect it.  The work is :mod:`minicontainer.engine.exec`'s."""

from __future__ import annotations

import asyncio

from minicontainer.daemon import streams
from minicontainer.daemon.routing import HIJACK_SETTLE_SECONDS, BadRequest, Call, Reply, optional_int, route
from minicontainer.engine.detach import DEFAULT_DETACH_KEYS, parse_detach_keys

START_FIELDS = ("detach", "tty", "consolesize")


class ExecRoutes:
    engine: object

    @route("POST", "/containers/{id}/exec")
    async def exec_create(self, call: Call, id: str) -> Reply:
        return Reply(201, self.engine.execs.create(id, _body(call)))

    @route("POST", "/exec/{id}/start")
    async def exec_start(self, call: Call, id: str) -> Reply | None:
        from minicontainer.engine.exec import console_size, fields

        given = fields(_body(call), START_FIELDS, "exec start")
        execs = self.engine.execs
        instance = execs.check_startable(id)              # 404 and 409 while we can still say so
        # The process's terminal is the create's Tty; the stream's framing is the start's, as Docker's
        # (docker-py starts with Tty=False by default, whatever the create said).
        raw_stream = bool(given.get("tty", instance.tty))
        size = console_size(given.get("consolesize"))
        if given.get("detach"):
            execs.start(instance, detach=True, size=size)
            return Reply(200)
        raw = await call.conn.hijack(streams.stream_content_type(raw_stream, call.version))
        if call.request.headers.get("user-agent", "").startswith("docker-sdk-python"):
            # docker-py loses bytes that arrive together with the 101 (docker/docker-py#3332): let it
            # read the head before the process can say anything.
            await asyncio.sleep(HIJACK_SETTLE_SECONDS)
        try:
            execs.start(instance, detach=False, size=size)
        except Exception as e:  # noqa: BLE001 - after the 101 an error can only travel in the stream, as Docker's
            message = f"{e}\r\n".encode()
            raw.writer.write(message if raw_stream else streams.frame(streams.STDOUT, message))
            await raw.writer.drain()
            if raw.writer.can_write_eof():
                raw.writer.write_eof()
            return None
        keys = parse_detach_keys(instance.config["detachkeys"] or DEFAULT_DETACH_KEYS)
        if await streams.attach_session(raw, instance, forward_stdin=instance.config["attachstdin"],
                                        close_stdin_at_eof=True, detach_keys=keys, framed=not raw_stream):
            execs.detached(instance)
        return None

    @route("POST", "/exec/{id}/resize")
    async def exec_resize(self, call: Call, id: str) -> Reply:
        rows, columns = optional_int(call.q("h"), "h") or 0, optional_int(call.q("w"), "w") or 0
        await self.engine.execs.resize(id, rows, columns)
        return Reply(200)

    @route("GET", "/exec/{id}/json")
    async def exec_inspect(self, call: Call, id: str) -> Reply:
        return Reply(200, self.engine.execs.inspect(id))


def _body(call: Call) -> object:
    try:
        return call.request.json()
    except ValueError as e:
        raise BadRequest(f"invalid JSON body: {e}") from None
