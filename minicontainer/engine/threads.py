"""Blocking work in a thread, its data streamed to and from the daemon's event loop.

The registry client (requests) and the archive code (tarfile) block; the daemon must not, or one
``pull`` would freeze every other client.  So that work runs in a thread of the loop's executor,
and these three bridges carry its data:

* :func:`progress_of`: the messages it reports (pull and load progress), as an async iterator;
* :func:`output_of`: the bytes it writes to a file (``save``'s tar), as an async iterator;
* :class:`ChunkReader`: the bytes a client uploads (``load``'s and ``import``'s tar), as a file
  the thread reads.

The two byte bridges are bounded queues on the loop: a slow client slows the tar writer down, and a
slow unpacker slows the upload down, instead of either piling up in memory; a client that leaves
stops the work (a save's next write fails, an import or load sees its upload cut, never a short
but "complete" tar).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

QUEUED_CHUNKS = 16  # at most this many chunks (of 64 KiB to 1 MiB) wait between the two sides


async def progress_of(work: Callable[[Callable[[dict], None]], Any]) -> AsyncIterator[dict]:
    """Run ``work(progress)`` in a thread; yield each ``progress(msg)`` as it comes.  A failure is
    the last message, ``{"error": ...}``, as the Engine API streams it."""
    messages: asyncio.Queue = asyncio.Queue()
    loop = asyncio.get_running_loop()

    def progress(msg: dict) -> None:
        loop.call_soon_threadsafe(messages.put_nowait, msg)

    def run() -> None:
        try:
            work(progress)
        except Exception as e:  # noqa: BLE001 - reported inside the stream
            progress({"error": str(e), "errorDetail": {"message": str(e)}})
        finally:
            loop.call_soon_threadsafe(messages.put_nowait, None)

    task = loop.run_in_executor(None, run)
    while (msg := await messages.get()) is not None:
        yield msg
    await task


class _QueueWriter:
    """The file a thread writes to: each write waits for room in the loop's queue.  Once the reader
    is gone (the client left), a write fails, and the work stops instead of writing into nowhere."""

    def __init__(self, chunks: asyncio.Queue, loop: asyncio.AbstractEventLoop) -> None:
        self.chunks = chunks
        self.loop = loop
        self.gone = False

    def write(self, data: bytes) -> int:
        if self.gone:
            raise BrokenPipeError("the client stopped reading")
        if data:
            asyncio.run_coroutine_threadsafe(self.chunks.put(bytes(data)), self.loop).result()
        return len(data)

    def flush(self) -> None:
        pass


async def output_of(work: Callable[[Any], Any]) -> AsyncIterator[bytes]:
    """Run ``work(file)`` in a thread; yield what it writes to ``file``.  Its exception, if any, is
    raised after the last chunk (the client then sees a cut stream, as with docker)."""
    chunks: asyncio.Queue = asyncio.Queue(maxsize=QUEUED_CHUNKS)
    loop = asyncio.get_running_loop()
    writer = _QueueWriter(chunks, loop)
    done = object()

    def run() -> None:
        try:
            work(writer)
        finally:
            asyncio.run_coroutine_threadsafe(chunks.put(done), loop).result()

    task = loop.run_in_executor(None, run)
    finished = False
    try:
        while (chunk := await chunks.get()) is not done:
            yield chunk
        finished = True
    finally:
        if not finished:  # the client left: the next write fails; unblock the one waiting now
            writer.gone = True

            async def discard() -> None:
                while await chunks.get() is not done:
                    pass
                await asyncio.gather(task, return_exceptions=True)

            _DISCARDING.add(cleanup := loop.create_task(discard()))  # held: the loop keeps weak refs only
            cleanup.add_done_callback(_DISCARDING.discard)
    await task


_DISCARDING: set[asyncio.Task] = set()


class UploadCut(ConnectionError):
    """The client's upload ended before its end: the tar must not be taken for a whole one."""


_CUT = object()  # in the queue: the upload was cut off


class ChunkReader:
    """A file for a thread, fed on the loop with an upload's chunks (:meth:`feed`).

    The queue lives on the loop: the feeding side awaits room there and takes no thread, so any
    number of uploads at once cannot starve the executor whose threads read them."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.chunks: asyncio.Queue = asyncio.Queue(maxsize=QUEUED_CHUNKS)
        self.pending = b""
        self.ended = False
        self.cut = False     # the upload stopped short: the reader raises UploadCut
        self.closed = False  # the reader is done (or gave up): what still comes is dropped

    async def feed(self, source: AsyncIterator[bytes]) -> None:
        """Copy the upload into the queue, then its end.  An upload that fails midway is marked
        cut, so that the reader raises instead of seeing a clean end of file."""
        try:
            async for chunk in source:
                if not self.closed:
                    await self.chunks.put(chunk)
        except BaseException:
            self.abort()
            raise
        if not self.closed:
            await self.chunks.put(None)

    def abort(self) -> None:
        """(On the loop.)  The upload will not complete: wake the reader, which raises."""
        self.cut = True
        try:
            self.chunks.put_nowait(_CUT)
        except asyncio.QueueFull:
            pass  # the reader is not waiting: it sees ``cut`` before its next wait

    def close(self) -> None:
        """(From the reader.)  No more reading: the rest of the upload is dropped as it comes."""
        self.closed = True
        self.loop.call_soon_threadsafe(self._empty)  # a feeder waiting for room must not wait forever

    def _empty(self) -> None:
        while not self.chunks.empty():
            self.chunks.get_nowait()

    def _next(self) -> bytes | None:
        if self.cut:
            raise UploadCut("the upload was cut off before its end")
        chunk = asyncio.run_coroutine_threadsafe(self.chunks.get(), self.loop).result()
        if chunk is _CUT:
            raise UploadCut("the upload was cut off before its end")
        return chunk

    def read(self, n: int = -1) -> bytes:
        while not self.ended and (n < 0 or len(self.pending) < n):
            chunk = self._next()
            if chunk is None:
                self.ended = True
            else:
                self.pending += chunk
        if n < 0:
            out, self.pending = self.pending, b""
        else:
            out, self.pending = self.pending[:n], self.pending[n:]
        return out


@asynccontextmanager
async def fed(reader: ChunkReader, upload: AsyncIterator[bytes]) -> AsyncIterator[None]:
    """While the block runs, ``upload`` is fed into ``reader`` (for the thread reading it).  When the
    block ends early (the client left, the daemon stops, the work failed), the reader must not hang,
    nor we wait for the rest of the upload (the server drains it or closes the connection)."""
    feeding = asyncio.ensure_future(reader.feed(upload))
    try:
        yield
    finally:
        if not feeding.done():
            reader.abort()
            feeding.cancel()
        await asyncio.gather(feeding, return_exceptions=True)
