"""The bytes inside Docker's streams: multiplexed frames, JSON lines, and the attach session.

**Multiplexing.**  A container has two outputs, stdout and stderr, but an HTTP reply (or a hijacked
socket) is one byte stream.  Without a TTY Docker cuts the output into *frames*, each with an
8-byte header::

    [stream, 0, 0, 0, length (4 bytes, big-endian)] + length bytes of payload

where stream is 1 for stdout and 2 for stderr, so the client can split them again.  With a TTY there
is only one stream (the terminal merges them, as a real terminal would) and the bytes go raw.

**JSON lines.**  Long operations (``pull``, ``build``) report progress as one JSON object per line;
an error that happens after the reply has started cannot change the HTTP status any more, so it
travels inside the stream as ``{"errorDetail": {"message": ...}, "error": ...}``.

**The attach session** pumps both directions of a hijacked connection at once: the container's output
to the client, and the client's input to the container's stdin.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import select
import struct
from collections.abc import AsyncIterator
from typing import Any, Protocol

from minicontainer.daemon.http import RawStream

log = logging.getLogger(__name__)

STDIN, STDOUT, STDERR = 0, 1, 2
_HEADER = struct.Struct(">BxxxI")       # stream, three padding bytes, payload length

RAW_STREAM = "application/vnd.docker.raw-stream"
MULTIPLEXED_STREAM = "application/vnd.docker.multiplexed-stream"

# How long to keep reading a client's input after the container's output has ended: the client
# answers our half-close by closing its side; closing ours while its bytes are in flight would make
# the kernel send a reset (ECONNRESET on the client) instead of a clean end.
DRAIN_INPUT_SECONDS = 2.0
HANGUP_POLL_SECONDS = 1.0  # how often an attach looks whether its client is still there
DETACHED = "detached"


def frame(stream: int, data: bytes) -> bytes:
    """One multiplexed frame: header + payload."""
    return _HEADER.pack(stream, len(data)) + data


def demultiplex(data: bytes) -> list[tuple[int, bytes]]:
    """Split a complete multiplexed byte string back into ``(stream, payload)`` frames (what clients
    do; handy in tests).  A truncated trailing frame is an error."""
    frames = []
    pos = 0
    while pos < len(data):
        if pos + _HEADER.size > len(data):
            raise ValueError("truncated frame header")
        stream, length = _HEADER.unpack_from(data, pos)
        pos += _HEADER.size
        if pos + length > len(data):
            raise ValueError("truncated frame payload")
        frames.append((stream, data[pos:pos + length]))
        pos += length
    return frames


def stream_content_type(tty: bool, api_version: tuple[int, int]) -> str:
    """Docker labels multiplexed output as such from API 1.42 on; raw (TTY) output is always "raw"."""
    return MULTIPLEXED_STREAM if not tty and api_version >= (1, 42) else RAW_STREAM


def json_line(obj: Any) -> bytes:
    return json.dumps(obj).encode() + b"\n"


def error_line(message: str) -> bytes:
    """An error inside a JSON-lines stream, in both the old and the new field (clients read either)."""
    return json_line({"errorDetail": {"message": message}, "error": message})


class Attachment(Protocol):
    """What the engine hands back for ``attach`` (see ``Engine.attach``)."""

    tty: bool
    output: AsyncIterator[tuple[int, bytes]]

    async def write_stdin(self, data: bytes) -> None: ...
    async def close_stdin(self) -> None: ...


async def attach_session(raw: RawStream, attachment: Attachment, *, forward_stdin: bool,
                         close_stdin_at_eof: bool, detach_keys: bytes = b"", framed: bool | None = None) -> bool:
    """Pump a hijacked connection until the container's output ends.

    Output: each ``(stream, bytes)`` of the attachment goes to the client, framed unless TTY.  When
    the output ends (the container exited) we *shut our write side*: the client sees end-of-file and
    knows everything arrived.

    Input: the client's bytes go to the container's stdin.  Two details from real clients:

    * the docker CLI half-closes its write side right after the 101 when it has no stdin to send --
      end-of-file on our read side is *not* a disconnect, so output keeps flowing;
    * stdin may arrive (even its end) before the container is started: ``write_stdin`` keeps it
      until the process exists, and we close the container's stdin at end-of-file only when the
      container was created with ``StdinOnce`` (as ``docker run -i`` does), like Docker.

    A client that is *gone* (killed, Ctrl-C) is told apart from one that half-closed by the kernel:
    once both directions of a unix socket are shut, ``poll`` reports ``POLLHUP`` on our end.  We
    look for it every second; a quiet container's attach would otherwise outlive its client.

    With a terminal, the input is watched for ``detach_keys`` (``engine/detach.py``): they end the
    session, and leave the program running.  Returns whether that is how it ended.

    ``framed`` overrides the framing the attachment's terminal implies (an exec started with another
    ``Tty`` than it was created with: Docker frames by the start's).
    """
    from minicontainer.engine.detach import DetachScanner

    multiplex = not attachment.tty if framed is None else framed
    output = attachment.output          # taken once: it may be a property that makes a new iterator
    scanner = DetachScanner(detach_keys if attachment.tty and forward_stdin else b"")

    async def copy_input() -> str:
        """Client -> stdin until end-of-file ("eof"), a reset connection ("reset") or the detach keys."""
        forwarding = forward_stdin
        data = raw.early
        while True:
            data, detached = scanner.feed(data)
            if data and forwarding:
                try:
                    await attachment.write_stdin(data)
                except Exception as e:  # noqa: BLE001 -- the process is gone: keep reading, drop the bytes
                    log.debug("stdin not delivered: %s", e)
                    forwarding = False
            if detached:
                return DETACHED
            try:
                data = await raw.reader.read(64 * 1024)
            except ConnectionError:
                return "reset"
            if not data:
                break
        if forward_stdin and close_stdin_at_eof:
            with contextlib.suppress(Exception):
                await attachment.close_stdin()
        return "eof"

    async def copy_output() -> None:
        """Container -> client until the container's output ends; then half-close."""
        async for stream, data in output:
            raw.writer.write(frame(stream, data) if multiplex else data)
            await raw.writer.drain()
        if raw.writer.can_write_eof():
            raw.writer.write_eof()

    input_task = asyncio.create_task(copy_input())
    output_task = asyncio.create_task(copy_output())
    hangup_task = asyncio.create_task(_hung_up(raw))
    ended = ""
    try:
        await asyncio.wait({input_task, output_task, hangup_task}, return_when=asyncio.FIRST_COMPLETED)
        ended = input_task.result() if input_task.done() else ""
        if ended == "eof" and not output_task.done():
            # End of stdin (a half-close): output goes on, until it ends or the client is gone.
            await asyncio.wait({output_task, hangup_task}, return_when=asyncio.FIRST_COMPLETED)
        if hangup_task.done() or ended in ("reset", DETACHED):
            output_task.cancel()             # a reset, a hang-up or a detach: nobody is listening any more
        if ended == DETACHED and raw.writer.can_write_eof():
            raw.writer.write_eof()           # the end of this client's stream; the program runs on
        await asyncio.gather(output_task, return_exceptions=True)
        if not output_task.cancelled() and output_task.exception() is not None:
            log.debug("attach: output ended with %r", output_task.exception())
        else:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(input_task), DRAIN_INPUT_SECONDS)
    finally:
        for task in (input_task, output_task, hangup_task):
            task.cancel()
        await asyncio.gather(input_task, output_task, hangup_task, return_exceptions=True)
        aclose = getattr(output, "aclose", None)
        if aclose is not None:
            with contextlib.suppress(Exception):
                await aclose()
    return ended == DETACHED


async def _hung_up(raw: RawStream, every: float = HANGUP_POLL_SECONDS) -> None:
    """Return once the client has closed its end entirely (POLLHUP), not merely its write side."""
    sock = raw.writer.get_extra_info("socket")
    if sock is None:
        await asyncio.Event().wait()  # nothing to watch: never
    poller = select.poll()
    poller.register(sock.fileno(), 0)  # no events asked for: poll still reports POLLHUP and POLLERR
    while not any(events & (select.POLLHUP | select.POLLERR) for _fd, events in poller.poll(0)):
        await asyncio.sleep(every)
