"""The CLI's own HTTP/1.1 client, against a unix-socket server that answers scripted bytes."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest

from minicontainer.client import http


class Scripted:
    """Accepts one connection, records the request's bytes, sends ``reply`` in the given pieces
    (with a pause between them, so the client sees them arrive separately), then closes."""

    def __init__(self, path: Path, *pieces: bytes, close: bool = True) -> None:
        self.path = str(path)
        self.pieces = pieces
        self.close = close
        self.received = b""
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(self.path)
        self.server.listen(1)
        self.go_on = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.server.accept()
        with conn:
            while b"\r\n\r\n" not in self.received:
                self.received += conn.recv(4096)
            for i, piece in enumerate(self.pieces):
                if i:
                    self.go_on.wait(5)  # the client asks for the next piece by reading the first
                    self.go_on.clear()
                conn.sendall(piece)
            if not self.close:
                self.extra = conn.recv(4096)
        self.server.close()


def test_a_request_is_a_line_headers_and_a_body(tmp_path):
    server = Scripted(tmp_path / "s", b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n"
                                      b"Content-Length: 11\r\n\r\n{\"Id\": \"x\"}")
    resp = http.request(server.path, "POST", "/v1.45/containers/create?name=web", b'{"Image": "busybox"}',
                        {"Content-Type": "application/json"})
    assert (resp.status, resp.reason) == (201, "Created")
    assert resp.headers["content-type"] == "application/json"
    assert resp.read() == b'{"Id": "x"}'
    assert resp.read() == b""
    server.thread.join(5)
    head, _, body = server.received.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /v1.45/containers/create?name=web HTTP/1.1"
    assert "Content-Length: 20" in lines and "Connection: close" in lines and "Host: localhost" in lines
    assert body == b'{"Image": "busybox"}'


def test_a_chunked_body_is_given_piece_by_piece_as_it_arrives(tmp_path):
    server = Scripted(tmp_path / "s",
                      b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" b"d\r\n{\"status\":1}\n\r\n",
                      b"c\r\n{\"status\":2}\r\n" b"1\r\n\n\r\n" b"0\r\nX-Trailer: y\r\n\r\n")
    resp = http.request(server.path, "POST", "/images/create", timeout=2)  # a client that waited would time out
    lines = iter(resp)
    assert next(lines) == b'{"status":1}\n'  # complete before the second piece was even sent
    server.go_on.set()
    assert list(lines) == [b'{"status":2}\n']
    assert resp.read() == b""


def test_a_body_without_a_length_ends_when_the_server_closes(tmp_path):
    server = Scripted(tmp_path / "s", b"HTTP/1.0 200 OK\r\n\r\nsome", b" more")
    resp = http.request(server.path, "GET", "/x", timeout=2)
    assert resp.read(100) == b"some"
    server.go_on.set()
    assert resp.read() == b" more"


def test_a_short_body_is_an_error_not_silence(tmp_path):
    server = Scripted(tmp_path / "s", b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
    resp = http.request(server.path, "GET", "/x")
    with pytest.raises(http.ProtocolError, match="7 bytes"):
        resp.read()


def test_after_101_the_connection_is_a_raw_two_way_stream(tmp_path):
    # The first output bytes arrive in the same segment as the head: they must not be lost.
    server = Scripted(tmp_path / "s", b"HTTP/1.1 101 UPGRADED\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n"
                                      b"\x01\x00\x00\x00\x00\x00\x00\x03hi\n", close=False)
    resp = http.request(server.path, "POST", "/containers/x/attach?stream=1",
                        headers={"Connection": "Upgrade", "Upgrade": "tcp"})
    assert resp.status == 101
    assert b"Connection: close" not in server.received
    assert resp.read(8) == b"\x01\x00\x00\x00\x00\x00\x00\x03"
    assert resp.read(3) == b"hi\n"
    resp.sendall(b"stdin bytes")
    resp.shutdown_write()
    server.thread.join(5)
    assert server.extra == b"stdin bytes"
    resp.close()


def test_what_is_not_http_is_said_so(tmp_path):
    server = Scripted(tmp_path / "s", b"SSH-2.0-OpenSSH\r\n\r\n")
    with pytest.raises(http.ProtocolError, match="not an HTTP reply"):
        http.request(server.path, "GET", "/x")
