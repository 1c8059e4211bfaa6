"""Blocking work in a thread, its data streamed to and from the daemon's event loop.

The registry client (requests) and the archive code (tarfile) block; the daemon must not, or one
``pull`` would freeze every other client.  So that work runs in a thread of the loop's executor,
and these three bridges carry its data:

* :func:`progress_of`: the messages it reports (pull and load progress), as an async iterator;
* :func:`output_of`: the bytes it writes to a file (``save``'s tar), as an async iterator;
* :class:`ChunkReader`: the bytes a client uploads (``load``'s and ``import``'s tar), as a file
  the thread reads.

The two byte bridges are bounded queues: a slow client slows the tar writer down, and a slow
unpacker slows the upload down, instead of either piling up in memory.
"""

from __future__ import annotations

import asyncio
import queue
from collections.abc import AsyncIterator, Callable
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
    """The file a thread writes to: each write waits for room in the loop's queue."""

    def __init__(self, chunks: asyncio.Queue, loop: asyncio.AbstractEventLoop) -> None:
        self.chunks = chunks
        self.loop = loop

    def write(self, data: bytes) -> int:
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
    done = object()

    def run() -> None:
        try:
            work(_QueueWriter(chunks, loop))
        finally:
            asyncio.run_coroutine_threadsafe(chunks.put(done), loop).result()

    task = loop.run_in_executor(None, run)
    try:
        while (chunk := await chunks.get()) is not done:
            yield chunk
    finally:
        if not task.done():  # the client left: let the writer finish into nowhere
            async def discard() -> None:
                while await chunks.get() is not done:
                    pass
            loop.create_task(discard())
    await task


class ChunkReader:
    """A file for a thread, fed with an upload's chunks by :meth:`feed` on the loop."""

    def __init__(self) -> None:
        self.chunks: queue.Queue[bytes | None] = queue.Queue(maxsize=QUEUED_CHUNKS)
        self.pending = b""
        self.ended = False
        self.closed = False  # the reader gave up (the tar was bad): what still comes is dropped

    async def feed(self, source: AsyncIterator[bytes]) -> None:
        """Copy the upload into the queue (waiting for room in a thread, not on the loop); then EOF."""
        loop = asyncio.get_running_loop()
        try:
            async for chunk in source:
                await loop.run_in_executor(None, self._put, chunk)
        finally:
            await loop.run_in_executor(None, self._put, None)

    def _put(self, chunk: bytes | None) -> None:
        while not self.closed:
            try:
                self.chunks.put(chunk, timeout=0.1)
                return
            except queue.Full:
                continue

    def close(self) -> None:
        self.closed = True

    def read(self, n: int = -1) -> bytes:
        while not self.ended and (n < 0 or len(self.pending) < n):
            chunk = self.chunks.get()
            if chunk is None:
                self.ended = True
            else:
                self.pending += chunk
        if n < 0:
            out, self.pending = self.pending, b""
        else:
            out, self.pending = self.pending[:n], self.pending[n:]
        return out
