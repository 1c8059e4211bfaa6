"""HTTP/1.1 on one client connection: requests in, replies out, then maybe a raw pipe.

The Docker Engine API is plain HTTP/1.1 over a unix socket, with three habits a toy server gets wrong:

* **keep-alive**: clients send many requests on one connection (docker-py does it all the time);
* **streaming replies**: ``pull`` progress, ``logs --follow`` and ``wait`` send their headers at once
  and the body bit by bit, framed with ``Transfer-Encoding: chunked``;
* **streamed uploads**: ``load`` and ``import`` send a tar of any size (``Content-Type:
  application/x-tar``, usually chunked): its bytes are handed to the handler as they arrive
  (:meth:`Connection.body_chunks`), never held whole in memory;
* **hijacking**: ``attach`` asks ``Connection: Upgrade`` / ``Upgrade: tcp``; the server answers
  ``101 UPGRADED`` and from then on the socket carries the container's raw stdin/stdout, not HTTP.

We let `h11 <https://h11.readthedocs.io>`_ do the parsing and framing: it is a small, well-tested
state machine with no I/O of its own, so the asyncio reading and writing stays visible here.  After
a 101 it hands back the bytes it had read past the request (``trailing_data``): stdin that the
client sent right behind its request, which must not be lost.
"""

from __future__ import annotations

import asyncio
import email.utils
import http
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, unquote, urlsplit

import h11

# Request bodies are JSON documents of a few KiB (a container's config); refuse absurd ones rather
# than let one client fill the daemon's memory.
MAX_BODY = 16 * 1024 * 1024
READ_SIZE = 64 * 1024
# The bodies of the requests the API layer names as uploads (``is_upload``: load, import) are
# streamed to the handler instead, with no size limit.


class ClientGone(Exception):
    """The client closed or reset the connection: stop working for it."""


class BadHTTP(Exception):
    """The bytes on the wire were not HTTP/1.1 we can understand."""


class Request(NamedTuple):
    method: str                # "GET", "HEAD", "POST", "DELETE"
    path: str                  # percent-decoded, without the query: "/v1.45/containers/json"
    query: dict[str, str]      # the last value wins when a parameter repeats
    headers: dict[str, str]    # names in lower case
    body: bytes                # empty for a streamed body: see Connection.body_chunks
    wants_upgrade: bool        # "Connection: Upgrade": the client is ready to be hijacked
    query_lists: dict[str, list[str]] | None = None  # every value of each parameter (?names=a&names=b)

    def json(self) -> Any:
        """The body as JSON; an empty body is ``{}`` (docker-py omits bodies it has nothing for)."""
        if not self.body.strip():
            return {}
        return json.loads(self.body)


class RawStream(NamedTuple):
    """A hijacked connection: no more HTTP, just bytes both ways."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    early: bytes               # what the client sent after its request, before we took over


def _reason(status: int) -> bytes:
    try:
        return http.HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""


class Connection:
    """One client connection, request after request (keep-alive), each answered exactly once.

    A handler answers with :meth:`reply` (a whole body), or :meth:`start_stream` + :meth:`send` +
    :meth:`end_stream` (chunked), or takes the connection over with :meth:`hijack`.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 common_headers: Iterable[tuple[str, str]] = (),
                 is_upload: Callable[[str, str, dict[str, str]], bool] | None = None) -> None:
        self.reader = reader
        self.is_upload = is_upload or (lambda method, path, query: False)  # (method, path, query)
        self.writer = writer
        self.common_headers = list(common_headers)
        self._h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=64 * 1024)
        self._method = b"GET"
        self.hijacked = False
        self.idle = True           # between requests: safe to close at shutdown
        self.body_pending = False  # a streamed request body not read to its end yet
        self.expects_continue = False  # the client sent Expect: 100-continue, and no 100 went out yet

    # --- reading ----------------------------------------------------------------------------------

    async def _event(self) -> Any:
        """The next h11 event, reading from the socket as long as h11 needs more bytes."""
        while True:
            try:
                event = self._h11.next_event()
            except h11.RemoteProtocolError as e:
                raise BadHTTP(str(e)) from None
            if event is not h11.NEED_DATA:
                return event
            try:
                data = await self.reader.read(READ_SIZE)
            except ConnectionError:
                data = b""
            self._h11.receive_data(data)          # b"" tells h11 the client closed its side

    async def next_request(self) -> Request | None:
        """Read one whole request (head and body); None when the client closed the connection."""
        event = await self._event()
        if isinstance(event, h11.ConnectionClosed):
            return None
        if not isinstance(event, h11.Request):
            raise BadHTTP(f"expected a request, got {type(event).__name__}")
        self.idle = False
        self._method = event.method
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in event.headers}
        url = urlsplit(event.target.decode("latin-1"))
        pairs = parse_qsl(url.query, keep_blank_values=True)
        method, path = event.method.decode("ascii"), unquote(url.path)
        body = bytearray()
        self.body_pending = self.is_upload(method, path, dict(pairs))
        # Remembered here: h11 forgets that the client waits once any reply (even a 400) is sent.
        self.expects_continue = self._h11.they_are_waiting_for_100_continue
        if self.expects_continue and not self.body_pending:
            await self._continue()
        while not self.body_pending:
            part = await self._event()
            if isinstance(part, h11.Data):
                body += part.data
                if len(body) > MAX_BODY:
                    raise BadHTTP("request body too large")
            elif isinstance(part, h11.EndOfMessage):
                break
            elif isinstance(part, h11.ConnectionClosed):
                raise ClientGone()
        lists: dict[str, list[str]] = {}
        for name, value in pairs:
            lists.setdefault(name, []).append(value)
        return Request(
            method=method,
            path=path,
            query=dict(pairs),
            headers=headers,
            body=bytes(body),
            wants_upgrade="upgrade" in headers.get("connection", "").lower(),
            query_lists=lists,
        )

    async def _continue(self) -> None:
        """``100 Continue``: the client that asked (``Expect: 100-continue``) may send its body now."""
        self.expects_continue = False
        await self._write(self._h11.send(h11.InformationalResponse(status_code=100, headers=[])))

    async def body_chunks(self) -> AsyncIterator[bytes]:
        """A streamed request body (a tar), piece by piece as the client sends it.  A client that
        goes away before its body's end (h11 sees the connection close mid-body) raises ClientGone.

        A client that waits for ``100 Continue`` is told to go on only now, when the handler reads:
        a request refused before that never has its tar sent at all."""
        if self.body_pending and self.expects_continue:
            await self._continue()
        while self.body_pending:
            try:
                part = await self._event()
            except BadHTTP:
                self.body_pending = False
                raise ClientGone() from None
            if isinstance(part, h11.Data):
                yield bytes(part.data)
            elif isinstance(part, h11.EndOfMessage):
                self.body_pending = False
            elif isinstance(part, h11.ConnectionClosed):
                raise ClientGone()

    async def drain_body(self) -> None:
        """Read and drop what is left of a streamed body (a handler refused it early): the client is
        still sending, and must be able to finish before it reads our answer.  One still waiting for
        ``100 Continue`` sends nothing more: the connection is closed instead (``next_cycle``)."""
        if self.expects_continue:
            return
        async for _ in self.body_chunks():
            pass

    async def wait_for_disconnect(self) -> None:
        """Return when the client closes the connection.

        Used while a reply is pending with nothing to send (``wait``, a quiet ``logs --follow``):
        the only way to notice that nobody listens any more is to read.  Anything the client sends
        meanwhile (a pipelined request) is kept for h11.
        """
        while True:
            try:
                data = await self.reader.read(READ_SIZE)
            except ConnectionError:
                data = b""
            self._h11.receive_data(data)
            if not data:
                return

    async def until_disconnect(self, work: Awaitable[Any]) -> Any:
        """Await ``work``, but cancel it (and raise :class:`ClientGone`) if the client leaves first."""
        task = asyncio.ensure_future(work)
        watcher = asyncio.ensure_future(self.wait_for_disconnect())
        try:
            await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            # Wait until the watcher has really stopped reading: the next request's read must not
            # find it still waiting on the same stream.
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                raise ClientGone()
        return task.result()

    # --- writing ----------------------------------------------------------------------------------

    async def _write(self, data: bytes) -> None:
        if not data:
            return
        try:
            self.writer.write(data)
            await self.writer.drain()
        except (ConnectionError, RuntimeError) as e:   # RuntimeError: the transport is already closed
            raise ClientGone() from e

    def _head(self, status: int, headers: Iterable[tuple[str, str]]) -> h11.Response:
        all_headers = [*self.common_headers, ("Date", email.utils.formatdate(usegmt=True)), *headers]
        return h11.Response(status_code=status, headers=all_headers, reason=_reason(status))

    @property
    def responded(self) -> bool:
        """Has the status line gone out?  Then an error can no longer become an HTTP status."""
        return self._h11.our_state is not h11.SEND_RESPONSE

    async def reply(self, status: int, body: bytes = b"", content_type: str | None = None,
                    headers: Iterable[tuple[str, str]] = ()) -> None:
        """A complete reply.  204 and 304 carry no body by definition; HEAD replies carry none either
        (but keep the Content-Length the GET would have had)."""
        head = list(headers)
        if status not in (204, 304):
            if content_type:
                head.append(("Content-Type", content_type))
            head.append(("Content-Length", str(len(body))))
        out = self._h11.send(self._head(status, head))
        if self._method != b"HEAD" and status not in (204, 304):
            out += self._h11.send(h11.Data(data=body))
        out += self._h11.send(h11.EndOfMessage())
        await self._write(out)

    async def reply_json(self, obj: Any, status: int = 200) -> None:
        # Exactly "application/json": the docker CLI prints the raw body of errors that say
        # "application/json; charset=utf-8" instead of their message.
        await self.reply(status, json.dumps(obj).encode() + b"\n", "application/json")

    async def start_stream(self, status: int, content_type: str, headers: Iterable[tuple[str, str]] = ()) -> None:
        """Send the head now, the body later: no Content-Length, so h11 frames it chunked."""
        await self._write(self._h11.send(self._head(status, [("Content-Type", content_type), *headers])))

    async def send(self, data: bytes) -> None:
        """One chunk of a streaming reply (written at once: the client may be waiting for it)."""
        if data and self._method != b"HEAD":
            await self._write(self._h11.send(h11.Data(data=data)))

    async def end_stream(self) -> None:
        await self._write(self._h11.send(h11.EndOfMessage()))

    async def hijack(self, content_type: str) -> RawStream:
        """Stop speaking HTTP: answer 101 (or, to a client that did not ask to upgrade, a bare 200 as
        Docker does) and return the raw socket with the bytes already read past the request."""
        early, _closed = self._h11.trailing_data
        head = [("Content-Type", content_type)]
        if self._h11.their_state is h11.MIGHT_SWITCH_PROTOCOL:
            upgrade = [("Connection", "Upgrade"), ("Upgrade", "tcp")]
            response = h11.InformationalResponse(status_code=101, reason=b"UPGRADED",
                                                 headers=[*self.common_headers, *head, *upgrade])
            await self._write(self._h11.send(response))
        else:
            # No upgrade offered: write the head ourselves and never hand the connection back to h11.
            lines = [b"HTTP/1.1 200 OK"] + [f"{k}: {v}".encode("latin-1")
                                            for k, v in [*self.common_headers, *head]]
            await self._write(b"\r\n".join(lines) + b"\r\n\r\n")
        self.hijacked = True
        return RawStream(self.reader, self.writer, bytes(early))

    # --- between requests -------------------------------------------------------------------------

    def next_cycle(self) -> bool:
        """After a reply: get ready for the next request on the same connection, if both sides may."""
        self.idle = True
        if self.hijacked:
            return False
        if self._h11.our_state is h11.DONE and self._h11.their_state is h11.DONE:
            self._h11.start_next_cycle()
            return True
        return False

    async def reply_bad_request(self, message: str) -> None:
        """Best effort, for a request h11 could not parse: then the connection is closed."""
        if self._h11.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            try:
                body = json.dumps({"message": message}).encode()
                response = self._head(400, [("Content-Type", "application/json"),
                                            ("Content-Length", str(len(body))), ("Connection", "close")])
                await self._write(self._h11.send(response) + self._h11.send(h11.Data(data=body))
                                  + self._h11.send(h11.EndOfMessage()))
            except (h11.LocalProtocolError, ClientGone):
                pass

    async def close(self) -> None:
        try:
            self.writer.close()
            await self.writer.wait_closed()
        except (ConnectionError, RuntimeError):
            pass
