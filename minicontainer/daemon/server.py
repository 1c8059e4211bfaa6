"""The daemon's socket: who may connect, one task per connection, and a clean stop.

Docker listens on ``/run/docker.sock``, a *unix socket*: a file that processes connect to instead of
a TCP port.  Being a file, it has an owner and permissions, and they are the daemon's whole access
control -- whoever can open the socket can run containers, i.e. is root in all but name.  So the
socket is ``0660``, owned by root and by a group (``docker`` for Docker, ``minicontainer`` here):
adding a user to the group is what grants access.

Shutdown (SIGTERM from systemd, Ctrl-C in a terminal): stop accepting, close idle keep-alive
connections, give requests in flight a moment to finish, then let the engine save its state.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import logging
import os
import signal
import socket
import stat
import threading

from minicontainer.daemon.api import DockerAPI
from minicontainer.daemon.http import BadHTTP, ClientGone, Connection

log = logging.getLogger(__name__)

SOCKET_MODE = 0o660
# How long requests in flight (a pull, a `wait`, an attach) may go on after a stop was asked for.
SHUTDOWN_GRACE_SECONDS = 5.0


def _remove_stale_socket(path: str) -> None:
    """A socket file left by a daemon that died is in the way of bind(); one that answers belongs to a
    daemon still running, and taking it over would cut that daemon off from its clients."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise RuntimeError(f"{path} exists and is not a socket; not removing it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError:
        os.unlink(path)                     # nobody listening: stale
        log.info("removed stale socket %s", path)
        return
    finally:
        probe.close()
    raise RuntimeError(f"another daemon is already listening on {path}")


def _set_permissions(path: str, group: str | None) -> None:
    """``group`` is a name or a numeric GID (as for dockerd's ``--group``)."""
    if group:
        try:
            gid = int(group) if group.isdigit() else grp.getgrnam(group).gr_gid
        except KeyError:
            raise RuntimeError(f"group {group!r} does not exist (create it with: groupadd {group})") from None
        os.chown(path, -1, gid)
    os.chmod(path, SOCKET_MODE)


class Daemon:
    """The listening socket and the connections it accepted."""

    def __init__(self, engine, socket_path: str, group: str | None = None) -> None:
        self.engine = engine
        self.api = DockerAPI(engine)
        self.socket_path = socket_path
        self.group = group
        self._server: asyncio.AbstractServer | None = None
        self._connections: dict[asyncio.Task, Connection] = {}

    async def start(self) -> None:
        os.makedirs(os.path.dirname(self.socket_path) or ".", mode=0o755, exist_ok=True)
        _remove_stale_socket(self.socket_path)
        # bind() creates the file with the umask's permissions: a restrictive umask for that moment
        # means nobody else can connect before we have set the group and mode.
        old_umask = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(self._serve_connection, path=self.socket_path)
        finally:
            os.umask(old_umask)
        _set_permissions(self.socket_path, self.group)
        log.info("API listening on %s", self.socket_path)

    async def _serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = Connection(reader, writer, self.api.common_headers(), is_upload=self.api.is_upload)
        task = asyncio.current_task()
        assert task is not None
        self._connections[task] = conn
        try:
            while True:
                request = await conn.next_request()
                if request is None:
                    break
                log.debug("%s %s", request.method, request.path)
                await self.api.handle(request, conn)
                if conn.body_pending and not conn.hijacked:
                    await conn.drain_body()
                if not conn.next_cycle():
                    break
        except BadHTTP as e:
            log.info("bad request: %s", e)
            await conn.reply_bad_request(str(e))
        except (ClientGone, ConnectionError):
            pass
        except asyncio.CancelledError:
            pass                                 # shutdown
        except Exception:
            log.exception("connection failed")
        finally:
            self._connections.pop(task, None)
            await conn.close()

    async def stop(self, grace: float = SHUTDOWN_GRACE_SECONDS) -> None:
        """Stop listening, finish (briefly) what is in flight, close the engine, remove the socket."""
        if self._server is not None:
            self._server.close()
        for task, conn in list(self._connections.items()):
            if conn.idle:
                task.cancel()
        busy = list(self._connections)
        if busy:
            log.info("waiting up to %.0fs for %d request(s) in flight", grace, len(busy))
            _done, pending = await asyncio.wait(busy, timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
        try:
            await self.engine.close()
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.socket_path)
            log.info("stopped")


async def serve(engine, socket_path: str, *, group: str | None = None,
                stop: asyncio.Event | None = None, grace: float = SHUTDOWN_GRACE_SECONDS) -> None:
    """Serve the Docker Engine API on ``socket_path`` until SIGTERM/SIGINT (or ``stop`` is set).

    ``engine`` must already be open; it is closed here on the way out.  ``stop`` lets a program
    that embeds the daemon (the tests) end it without a signal.
    """
    stop = stop or asyncio.Event()
    daemon = Daemon(engine, socket_path, group)
    loop = asyncio.get_running_loop()
    # Signal handlers can only be set from the main thread; embedded in a thread, ``stop`` is the way.
    signals = [signal.SIGTERM, signal.SIGINT] if threading.current_thread() is threading.main_thread() else []
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    try:
        try:
            await daemon.start()
        except BaseException:
            await engine.close()
            raise
        try:
            await stop.wait()
            log.info("shutting down")
        finally:
            await daemon.stop(grace)
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
