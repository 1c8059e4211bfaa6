"""``/containers/{id}/archive``: what ``docker cp`` and docker-py's ``get_archive``/``put_archive`` use.

* ``HEAD ?path=``: what is there, in the header ``X-Docker-Container-Path-Stat`` (no body);
* ``GET ?path=``: the same header, and a tar of it;
* ``PUT ?path=&noOverwriteDirNonDir=&copyUIDGID=``: a tar (compressed or not) unpacked into the
  directory ``path``; 200 with an empty body (docker-py checks for exactly 200).

The engine resolves every path inside the container's root (:mod:`minicontainer.engine.archive`).
"""

from __future__ import annotations

from minicontainer.daemon.routing import BadRequest, Call, route


def _path(call: Call) -> str:
    path = call.q("path")
    if not path:
        raise BadRequest("path is required")  # moby's words (a 400 before anything is looked up)
    return path


class ArchiveRoutes:
    # HEAD before GET: the router would otherwise answer a HEAD with the GET handler.
    @route("HEAD", "/containers/{id}/archive")
    async def archive_head(self, call: Call, id: str) -> None:
        from minicontainer.engine.archive import STAT_HEADER, stat_header

        info = await self.engine.archive_stat(id, _path(call))
        await call.conn.reply(200, headers=[(STAT_HEADER, stat_header(info))])

    @route("GET", "/containers/{id}/archive")
    async def archive_get(self, call: Call, id: str) -> None:
        from minicontainer.engine.archive import STAT_HEADER, stat_header

        path = _path(call)
        info = await self.engine.archive_stat(id, path)  # a 404 while an HTTP status still can be
        chunks = self.engine.archive(id, path)
        conn = call.conn
        await conn.start_stream(200, "application/x-tar", headers=[(STAT_HEADER, stat_header(info))])

        async def pump() -> None:
            async for chunk in chunks:
                await conn.send(chunk)

        try:
            await conn.until_disconnect(pump())
        finally:
            await chunks.aclose()
        await conn.end_stream()

    @route("PUT", "/containers/{id}/archive")
    async def archive_put(self, call: Call, id: str) -> None:
        await self.engine.put_archive(id, _path(call), call.conn.body_chunks(),
                                      no_overwrite_dir_non_dir=call.flag("noOverwriteDirNonDir"),
                                      copy_uid_gid=call.flag("copyUIDGID"))
        await call.conn.reply(200)
