"""``docker attach`` (and ``run`` without ``-d``): a client joined to a container's streams.

An attached client gets the container's output as it comes (from the tail that follows its log
files, or from its terminal's master side with ``-t``) and, with ``-i``, writes its stdin: a pipe
the daemon holds the writing end of, or the terminal's master side.  ``docker run`` attaches
*before* it starts the container, so that no first line is lost: such a client waits in
``waiting_readers`` until the start gives it the tail, and what it typed meanwhile is written then.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from minicontainer.engine.errors import InvalidParameter
from minicontainer.engine.logs import TerminalTail

if TYPE_CHECKING:
    from minicontainer.engine.service import Container, Engine


class Attachment:
    """A client attached to a container: its output as it comes, and (with -i) its stdin."""

    tty = False

    def __init__(self, engine: Engine, container: Container, *, stdin: bool, stdout: bool, stderr: bool,
                 logs: bool) -> None:
        self.engine = engine
        self.container = container
        self.want = {1: stdout, 2: stderr}
        self.queue: asyncio.Queue = asyncio.Queue()
        self.pending_stdin: list[bytes] = []
        self.stdin_closed = False
        self.engine_registration()
        self.output: AsyncIterator[tuple[int, bytes]] = self._output()  # one generator: read it once

    def engine_registration(self) -> None:
        """Follow the container's output from now on: through its tail if it runs, else from its start
        (``docker run`` attaches before it starts the container)."""
        tail = self.engine.tails.get(self.container.id)
        if tail is not None:
            tail.readers.append(self.queue)
        else:
            self.engine.waiting_readers.setdefault(self.container.id, []).append(self.queue)

    async def _output(self) -> AsyncIterator[tuple[int, bytes]]:
        self.flush_stdin()
        try:
            while True:
                item = await self.queue.get()
                if item is None:
                    return
                stream, data, _stamp = item
                if self.want[stream]:
                    yield stream, data
        finally:
            attached = self.engine.attachments.get(self.container.id, [])
            if self in attached:
                attached.remove(self)

    async def write_stdin(self, data: bytes) -> None:
        self.pending_stdin.append(data)
        self.flush_stdin()

    def flush_stdin(self) -> None:
        """Write what is waiting into the container's stdin (a pipe, or its terminal's master side;
        there is none before the start).  Both are non-blocking: what does not fit now is written
        when the program has read some (the loop tells us: add_writer), never dropped."""
        fd = self.engine.stdin_pipes.get(self.container.id)
        if fd is None:
            return
        while self.pending_stdin:
            chunk = self.pending_stdin[0]
            try:
                written = os.write(fd, chunk)
            except BlockingIOError:
                written = 0
            except OSError:  # the program is gone
                self.pending_stdin.clear()
                return
            if written < len(chunk):
                self.pending_stdin[0] = chunk[written:]
                # One callback per stdin, for every attachment waiting on it (a second add_writer
                # on the same descriptor would replace the first).
                asyncio.get_running_loop().add_writer(fd, self.engine._stdin_has_room, self.container.id, fd)
                return
            self.pending_stdin.pop(0)
        if self.stdin_closed and self.container.record["Config"].get("StdinOnce"):
            self.engine._close_stdin_pipe(self.container.id)

    async def close_stdin(self) -> None:
        self.stdin_closed = True
        self.flush_stdin()


class Attaching:
    """The attach requests, for :class:`~minicontainer.engine.service.Engine` (which inherits this)."""

    tails: dict
    stdin_pipes: dict[str, int]
    attachments: dict[str, list[Attachment]]
    event_log: Any
    get: Callable

    async def attach(self, cid: str, *, stdin: bool, stdout: bool, stderr: bool, logs: bool) -> Attachment:
        container = self.get(cid)
        attachment = Attachment(self, container, stdin=stdin, stdout=stdout, stderr=stderr, logs=logs)
        attachment.tty = bool(container.record["Config"].get("Tty"))  # one raw stream, as a terminal has
        self.attachments.setdefault(container.id, []).append(attachment)
        self.event_log.container(container, "attach")
        return attachment

    def _stdin_has_room(self, cid: str, fd: int) -> None:
        """A container's stdin can take more: every attachment with input waiting writes it now."""
        asyncio.get_running_loop().remove_writer(fd)
        for attachment in list(self.attachments.get(cid, [])):
            if attachment.pending_stdin:
                attachment.flush_stdin()

    def _close_stdin_pipe(self, cid: str) -> None:
        fd = self.stdin_pipes.pop(cid, None)
        if fd is not None:
            asyncio.get_running_loop().remove_writer(fd)  # stdin that was waiting for room
            os.close(fd)

    def resize(self, cid: str, rows: int, columns: int) -> None:
        """``docker run -t`` sends the terminal's size, and again whenever it changes (SIGWINCH)."""
        container = self.get(cid)
        if not (0 < rows < 65536 and 0 < columns < 65536):
            raise InvalidParameter(f"a terminal of {rows} rows and {columns} columns? (1 to 65535 each)")
        tail = self.tails.get(container.id)
        if isinstance(tail, TerminalTail):
            tail.resize(rows, columns)
