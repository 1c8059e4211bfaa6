"""The three standard streams of a process in a container, through ``exec``: what goes in on stdin, and
stdout and stderr coming back apart.

``exec`` starts a second process in a running container's namespaces and cgroup.  Attached, the
daemon turns the HTTP connection into a raw stream (the "hijack", an HTTP 101): what the client writes
is the process's stdin; what it reads are frames of 8-byte headers, ``1`` for stdout and ``2`` for
stderr (``daemon/streams.py``), so the two streams stay apart on one connection.
"""

from __future__ import annotations

import socket
from typing import Any, NamedTuple


class Streams(NamedTuple):
    stdout: bytes
    stderr: bytes
    exit_code: int
    frames: list[tuple[int, bytes]]  # (1 stdout | 2 stderr, data), in the order they came


def exec_with_stdin(container: Any, cmd: list[str], stdin: bytes) -> Streams:
    """Run ``cmd`` in ``container`` with ``stdin`` as its input (then end of file); collect its output."""
    api = container.client.api
    exec_id = api.json("POST", f"/containers/{container.id}/exec", None, {
        "Cmd": cmd, "AttachStdin": True, "AttachStdout": True, "AttachStderr": True, "Tty": False})["Id"]
    resp = api.exec_start(exec_id, tty=False)
    try:
        resp.sock.sendall(stdin)
        resp.sock.shutdown(socket.SHUT_WR)  # end of file: a program reading stdin to its end finishes
        frames = list(api.frames(resp))
    finally:
        resp.close()
    code = api.json("GET", f"/exec/{exec_id}/json")["ExitCode"]
    return Streams(b"".join(d for k, d in frames if k == 1), b"".join(d for k, d in frames if k == 2), code, frames)
