"""HTTP/1.1 over a unix socket: the few parts of it the Engine API uses, written out.

Why not ``http.client``: it imports ``email`` and ``ssl`` (25 ms here), which a command run hundreds
of times in a course pays on every start-up; the docker CLI's equivalent costs nothing.  What the
daemon's replies need is small, and it is worth seeing once:

* a request is a line, headers, a blank line and a body::

      POST /v1.45/containers/create?name=web HTTP/1.1
      Host: localhost
      Content-Type: application/json
      Content-Length: 39

      {"Image": "busybox", "Cmd": ["true"]}

* a reply's body is framed by ``Content-Length``, or sent piece by piece with
  ``Transfer-Encoding: chunked`` (``<size in hex>\\r\\n<bytes>\\r\\n`` ... ``0\\r\\n\\r\\n``: pull progress,
  ``logs -f``, the exit code of ``wait``), or runs until the server closes the connection;
* a request body of unknown size (``load`` and ``import`` send a tar from a pipe) is chunked the
  same way;
* ``101 Switching Protocols`` (``attach``) ends HTTP on that connection: what follows is the
  container's raw output one way and its stdin the other.

Every request uses a connection of its own (``Connection: close``): connecting to a unix socket costs
tens of microseconds, and a waiting request (``wait``, ``attach``) holds its connection anyway.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable, Iterator


class ProtocolError(Exception):
    """The reply was not HTTP/1.1 as the daemon speaks it."""


class Response:
    """A reply whose head has been read; the body is read on demand (it may still be coming)."""

    def __init__(self, sock: socket.socket, method: str) -> None:
        self.sock = sock
        self.file = sock.makefile("rb")
        line = self.file.readline(65537)
        parts = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise ProtocolError(f"not an HTTP reply: {line[:80]!r}")
        self.status = int(parts[1])
        self.reason = parts[2] if len(parts) > 2 else ""
        self.headers: dict[str, str] = {}  # names in lower case (HTTP's are case-insensitive)
        while True:
            line = self.file.readline(65537)
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            self.headers[name.strip().lower()] = value.strip()
        self.chunked = self.headers.get("transfer-encoding", "").lower() == "chunked"
        # After a 101 the "body" is the raw stream, which ends when the daemon closes it.
        no_body = method == "HEAD" or self.status in (204, 304) or 100 <= self.status < 200 and self.status != 101
        self.remaining: int | None = 0 if no_body else (
            None if self.chunked or "content-length" not in self.headers else int(self.headers["content-length"]))
        self._chunk_left = 0   # bytes left in the current chunk
        self._done = no_body

    # --- the body -------------------------------------------------------------------------------------
    def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes of the body as soon as some are here (all of it if ``n`` < 0); b"" at its end."""
        if n < 0:
            return b"".join(iter(lambda: self.read(65536), b""))
        if self._done or n == 0:
            return b""
        if self.chunked:
            return self._read_chunked(n)
        if self.remaining is not None:
            data = self.file.read1(min(n, self.remaining))
            self.remaining -= len(data)
            if not data and self.remaining:
                raise ProtocolError(f"the connection closed with {self.remaining} bytes of the body unsent")
            self._done = self.remaining == 0
            return data
        data = self.file.read1(n)  # no length given: the body ends when the server closes
        self._done = not data
        return data

    def _read_chunked(self, n: int) -> bytes:
        if self._chunk_left == 0:
            line = self.file.readline(1024)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise ProtocolError(f"bad chunk size line {line[:40]!r}") from None
            if size == 0:  # the last chunk; then optional trailers, then a blank line
                while self.file.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass
                self._done = True
                return b""
            self._chunk_left = size
        data = self.file.read1(min(n, self._chunk_left))
        if not data:
            raise ProtocolError("the connection closed inside a chunk")
        self._chunk_left -= len(data)
        if self._chunk_left == 0:
            self.file.readline(3)  # the CRLF after each chunk's bytes
        return data

    def __iter__(self) -> Iterator[bytes]:
        """The body line by line, each as soon as it is complete (a stream of JSON lines)."""
        pending = b""
        while data := self.read(65536):
            pending += data
            *lines, pending = pending.split(b"\n")
            for line in lines:
                yield line + b"\n"
        if pending:
            yield pending

    # --- after a 101: the connection is a raw two-way stream -------------------------------------------
    def sendall(self, data: bytes) -> None:
        self.sock.sendall(data)

    def shutdown_write(self) -> None:
        self.sock.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def request(path: str, method: str, target: str, body: bytes | Iterable[bytes] | None = None,
            headers: dict[str, str] | None = None, *, timeout: float | None = None) -> Response:
    """Send one request to the unix socket at ``path`` and read the head of its reply.

    ``body`` is bytes, or an iterable of byte chunks (sent chunked, as they come)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(path)
        head = [f"{method} {target} HTTP/1.1", "Host: localhost"]
        head += [f"{name}: {value}" for name, value in (headers or {}).items()]
        if "Upgrade" not in (headers or {}):
            head.append("Connection: close")
        streamed = body is not None and not isinstance(body, bytes)
        if streamed:
            head.append("Transfer-Encoding: chunked")
        elif body is not None or method in ("POST", "PUT"):
            head.append(f"Content-Length: {len(body or b'')}")
        first = body if isinstance(body, bytes) else b""
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + first)
        if streamed:
            for chunk in body:  # type: ignore[union-attr]
                if chunk:
                    sock.sendall(b"%x\r\n%b\r\n" % (len(chunk), chunk))
            sock.sendall(b"0\r\n\r\n")
        return Response(sock, method)
    except BaseException:
        sock.close()
        raise
