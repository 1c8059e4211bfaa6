"""``GET /events``: the engine's events, replayed from its ring and then streamed as they happen.

The reply is one long chunked body of JSON messages, one per line; the head goes out at once (a
client waits for it before it starts reading).  Without ``since`` or ``until`` only new events come;
with them, the remembered ones in the range are replayed first.  The stream ends at ``until`` if it
is given, else when the client hangs up (``docker events`` runs until Ctrl-C).
"""

from __future__ import annotations

import asyncio
import time

from minicontainer.daemon import streams
from minicontainer.daemon.routing import BadRequest, Call, parse_filters, route
from minicontainer.engine.events import check_filters, matches, parse_timestamp


class EventsRoutes:
    engine: object

    @route("GET", "/events")
    async def system_events(self, call: Call) -> None:
        try:
            filters = check_filters(parse_filters(call.q("filters")))
            since = parse_timestamp(call.q("since"), "since")
            until = parse_timestamp(call.q("until"), "until")
        except ValueError as e:
            raise BadRequest(str(e)) from None
        if since is not None and until is not None and until < since:
            raise BadRequest("`since` time must be before `until` time")
        log = self.engine.event_log  # type: ignore[attr-defined]
        # Listen and replay in one step of the loop: no event can fall between the two.
        queue = log.listen()
        replayed = log.replay(since or 0, until, filters) if since is not None or until is not None else []
        conn = call.conn
        try:
            await conn.start_stream(200, "application/json")

            async def pump() -> None:
                for message in replayed:
                    await conn.send(streams.json_line(message))
                while True:
                    left = None if until is None else (until - time.time_ns()) / 1e9
                    if left is not None and left <= 0:
                        return
                    try:
                        message = await asyncio.wait_for(queue.get(), left)
                    except TimeoutError:
                        return
                    if (until is None or message["timeNano"] <= until) and matches(message, filters):
                        await conn.send(streams.json_line(message))

            await conn.until_disconnect(pump())
        finally:
            log.stop_listening(queue)
        await conn.end_stream()
