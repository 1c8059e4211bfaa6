"""``GET /containers/{id}/stats``: a container's resource use, one JSON document or a stream of them.

``stream`` (default true) sends a document every second until the client hangs up; ``stream=false``
one document, a second in the making (CPU % needs two readings); ``one-shot=true`` (with
``stream=false``) one at once.  ``interval`` is minicontainer's own: the seconds between documents,
down to 0.05, for the Python client's sampler (the docker CLI and docker-py never send it).
"""

from __future__ import annotations

from minicontainer.daemon import streams
from minicontainer.daemon.routing import BadRequest, Call, route
from minicontainer.engine.stats import DOCKER_INTERVAL


class StatsRoutes:
    engine: object

    @route("GET", "/containers/{id}/stats")
    async def container_stats(self, call: Call, id: str) -> None:
        try:
            interval = float(call.q("interval") or DOCKER_INTERVAL)
        except ValueError:
            raise BadRequest(f"invalid value for interval: {call.q('interval')!r}") from None
        documents = self.engine.meter.documents(  # type: ignore[attr-defined]
            id, stream=call.flag("stream", True), one_shot=call.flag("one-shot"), interval=interval)
        # The first document (or a 404, a 400) before the head: an error is still an HTTP status.
        first = await anext(documents)
        conn = call.conn
        await conn.start_stream(200, "application/json")

        async def pump() -> None:
            await conn.send(streams.json_line(first))
            async for document in documents:
                await conn.send(streams.json_line(document))

        try:
            await conn.until_disconnect(pump())
        finally:
            await documents.aclose()
        await conn.end_stream()
