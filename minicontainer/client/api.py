"""Talking to ``minicontainerd``: HTTP/1.1 over a unix socket, with the standard library only.

This is what docker's client library does for the docker CLI: every command is one or more requests
to the Engine API (``POST /containers/create``, ``POST /containers/{id}/start``...).  The HTTP is
:mod:`minicontainer.client.http`'s, over ``socket``; with ``json`` and ``os`` that is all this module
imports, so the CLI starts fast.

If the daemon is not running, :func:`connect` starts it (as root) and says so, as Docker Desktop
starts dockerd.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections.abc import Iterator

from minicontainer.client import http
from minicontainer.config import socket_path

API_PREFIX = "/v1.45"


class APIError(Exception):
    """The daemon answered with an error status; ``message`` is its ``{"message": ...}``."""

    prefix = "Error response from daemon: "  # how the CLI prints it, as docker does

    def __init__(self, status: int, message: str, *, from_daemon: bool = True) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        if not from_daemon:
            self.prefix = ""  # our own words (the daemon could not be reached)


class APIClient:
    #: While a list (``--explain``), every request is noted in it: (method, target, status, reason,
    #: milliseconds to the reply's head).  The Engine API calls behind a command are part of its story.
    record: list[tuple[str, str, int, str, float]] | None = None

    def __init__(self, path: str | None = None, *, autostart: bool = True) -> None:
        self.path = path or socket_path()
        if autostart:
            ensure_daemon(self.path)

    def request(self, method: str, path: str, params: dict | None = None, body=None, *,
                timeout: float | None = None, headers: dict[str, str] | None = None) -> http.Response:
        query = {k: v for k, v in (params or {}).items() if v is not None}
        url = API_PREFIX + path + ("?" + _urlencode(query) if query else "")
        headers = dict(headers or {})
        data = None
        if isinstance(body, bytes) or hasattr(body, "__next__"):  # bytes, or chunks to stream (a tar)
            data = body
        elif body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        resp = self._send(method, url, data, headers, timeout)
        if resp.status >= 400:
            raise _error(resp)
        return resp

    def _send(self, method: str, url: str, data, headers: dict[str, str], timeout: float | None) -> http.Response:
        start = time.monotonic()
        try:
            resp = http.request(self.path, method, url, data, headers, timeout=timeout)
        except PermissionError:
            raise permission_denied(self.path) from None
        except (BrokenPipeError, ConnectionResetError) as e:  # not our stdout: the daemon's end
            raise APIError(502, f"the daemon closed the connection ({e.strerror}): is it still running?",
                           from_daemon=False) from None
        if APIClient.record is not None:
            APIClient.record.append((method, url, resp.status, resp.reason, (time.monotonic() - start) * 1000))
        return resp

    def json(self, method: str, path: str, params: dict | None = None, body=None):
        resp = self.request(method, path, params, body)
        raw = resp.read()
        return json.loads(raw) if raw else None

    def stream_json(self, method: str, path: str, params: dict | None = None, body=None, *,
                    headers: dict[str, str] | None = None) -> Iterator[dict]:
        """A chunked reply of JSON lines (pull progress)."""
        resp = self.request(method, path, params, body, headers=headers)
        for line in resp:
            if line.strip():
                yield json.loads(line)

    def frames(self, resp) -> Iterator[tuple[int, bytes]]:
        """Demultiplex a stream: 8-byte headers ``[stream, 0, 0, 0, length (big-endian)]`` then the
        bytes.  A container with a terminal (``-t``) has one stream, not framed: the daemon says so
        with ``Content-Type: application/vnd.docker.raw-stream`` (at API 1.42 and later, which we speak)."""
        if getattr(resp, "headers", {}).get("content-type") == "application/vnd.docker.raw-stream":
            while data := resp.read(65536):
                yield 1, data
            return
        while True:
            header = _read_exactly(resp, 8)
            if len(header) < 8:
                return
            size = int.from_bytes(header[4:], "big")
            yield header[0], _read_exactly(resp, size)

    def attach(self, cid: str, *, stdin: bool = False, detach_keys: str | None = None) -> http.Response:
        """``POST /containers/{id}/attach`` with ``Upgrade: tcp``: after the 101, the connection is a raw
        stream, the container's output one way (framed as :meth:`frames` reads it) and its stdin the other."""
        params = {"stream": 1, "stdout": 1, "stderr": 1, "stdin": int(stdin)}
        if detach_keys:
            params["detachKeys"] = detach_keys
        return self.hijack(f"/containers/{cid}/attach?{_urlencode(params)}")

    def exec_start(self, exec_id: str, *, tty: bool, console_size: list[int] | None = None) -> http.Response:
        """``POST /exec/{id}/start``, attached: the same kind of raw stream as :meth:`attach`, for the
        exec'd process (its stdin, and its output until it exits)."""
        body = {"Detach": False, "Tty": tty}
        if console_size and all(console_size):
            body["ConsoleSize"] = console_size
        return self.hijack(f"/exec/{exec_id}/start", json.dumps(body).encode())

    # --- volumes, with docker-py's low-level names (``client.api.create_volume(...)``) ----------------
    def create_volume(self, name: str | None = None, driver: str | None = None, driver_opts: dict | None = None,
                      labels: dict | None = None) -> dict:
        """A new volume (a random name if none is given); an existing one of that name as it is."""
        body = {"Name": name, "Driver": driver, "DriverOpts": driver_opts, "Labels": labels}
        return self.json("POST", "/volumes/create", None, {k: v for k, v in body.items() if v is not None})

    def volumes(self, filters: dict | None = None) -> dict:
        """``{"Volumes": [...], "Warnings": [...]}``; filters: name, label, driver, dangling."""
        return self.json("GET", "/volumes", {"filters": json.dumps(filters) if filters else None})

    def inspect_volume(self, name: str) -> dict:
        return self.json("GET", f"/volumes/{name}")

    def remove_volume(self, name: str, force: bool = False) -> None:
        self.request("DELETE", f"/volumes/{name}", {"force": "true" if force else None}).read()

    def prune_volumes(self, filters: dict | None = None) -> dict:
        """The unused anonymous volumes (every unused one with ``filters={"all": True}``) removed:
        ``{"VolumesDeleted": [...], "SpaceReclaimed": bytes}``."""
        return self.json("POST", "/volumes/prune", {"filters": json.dumps(filters) if filters else None})

    def hijack(self, path: str, body: bytes | None = None) -> http.Response:
        """A request that asks the daemon to turn the connection into a raw stream (the 101 answer)."""
        headers = {"Connection": "Upgrade", "Upgrade": "tcp"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        resp = self._send("POST", f"{API_PREFIX}{path}", body, headers, None)
        if resp.status != 101:
            raise _error(resp)
        return resp


def _urlencode(query: dict) -> str:
    """A query string (a list value repeats its key).  urllib.parse is imported only here: with the
    ipaddress module it pulls in, 3 ms that a request without parameters (exec's) need not pay."""
    from urllib.parse import urlencode

    return urlencode(query, doseq=True)


def filters_json(given: list[str]) -> str:
    """``--filter status=exited --filter name=web`` -> the API's JSON ``{"status": ["exited"], ...}``."""
    filters: dict[str, list[str]] = {}
    for f in given:
        key, _, value = f.partition("=")
        filters.setdefault(key, []).append(value)
    return json.dumps(filters)


def registry_auth(image: str) -> dict[str, str]:
    """The ``X-Registry-Auth`` header for a pull or push of ``image``: the credentials ``login`` stored
    (in *this user's* config) for its registry, base64url(JSON), as the docker CLI sends them.  The
    daemon keeps no logins of its own."""
    import base64

    from minicontainer.image.credentials import load_docker_credentials
    from minicontainer.image.reference import parse

    domain = parse(image).domain
    found = load_docker_credentials().get(domain)
    auth = {"username": found[0], "password": found[1], "serveraddress": domain} if found else {}
    return {"X-Registry-Auth": base64.urlsafe_b64encode(json.dumps(auth).encode()).decode()}


def permission_denied(path: str) -> APIError:
    """connect() refused with EACCES: the daemon is there, but this user may not use its socket.
    Say which group opens it (as docker's message points at the ``docker`` group)."""
    import grp

    try:
        gid = os.stat(path).st_gid
    except OSError:
        gid = -1
    if gid == 0:
        hint = ("only root may use it; to let a group's members in, start the daemon with "
                "`minicontainerd --group GROUP` (by default the group 'minicontainer', if it exists)")
    else:
        try:
            group = grp.getgrgid(gid).gr_name
        except (KeyError, OverflowError):
            group = str(gid) if gid >= 0 else "minicontainer"
        hint = (f"members of the group '{group}' may use it: sudo usermod -aG {group} $USER, then log in "
                f"again (or start a shell in the group with `newgrp {group}`)")
    return APIError(403, f"permission denied while trying to connect to the minicontainerd socket at "
                         f"unix://{path}: {hint}", from_daemon=False)


def _error(resp: http.Response) -> APIError:
    """The daemon's ``{"message": ...}`` of an error reply (or its text, if it is not JSON)."""
    raw = resp.read()
    resp.close()
    try:
        message = json.loads(raw)["message"]
    except (ValueError, KeyError, TypeError):
        message = raw.decode(errors="replace")
    return APIError(resp.status, message)


def _read_exactly(stream, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = stream.read(n - len(out))
        if not chunk:
            break
        out += chunk
    return out


def answers(path: str) -> bool:
    """Does a daemon listen on the unix socket ``path``?  PermissionError if one does, but this user
    may not use it."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(path)
            return True
        except PermissionError:
            raise
        except OSError:
            return False


def wait_for_daemon(path: str, process=None, timeout: float = 10.0) -> bool:
    """Wait until a daemon answers on ``path``: True; False after ``timeout``, or as soon as
    ``process`` (the daemon just started, a ``Popen``) has exited."""
    deadline = time.monotonic() + timeout
    while not answers(path):
        if time.monotonic() > deadline or process is not None and process.poll() is not None:
            return False
        time.sleep(0.02)
    return True


def ensure_daemon(path: str, *, timeout: float = 10.0) -> int | None:
    """Start ``minicontainerd`` if nothing answers on ``path`` (and we may: root), saying so.

    Returns the PID of the daemon it started, or None if one was already there."""
    try:
        if answers(path):
            return None
    except PermissionError:
        raise permission_denied(path) from None  # it is running: this user is not let in
    if os.geteuid() != 0 or os.environ.get("MINICONTAINER_AUTOSTART") == "0":
        raise APIError(500, f"Cannot connect to minicontainerd at unix://{path}. Is the daemon running? "
                            "(start it as root: sudo minicontainerd)", from_daemon=False)
    run_dir = os.path.dirname(path)
    os.makedirs(run_dir, exist_ok=True)
    import subprocess

    log_path = os.path.join(run_dir, "minicontainerd.log")
    print(f"minicontainerd is not running: starting it (log: {log_path})", file=sys.stderr)
    with open(log_path, "ab") as log:
        daemon = subprocess.Popen([sys.executable, "-m", "minicontainer.daemon.main", "--host", f"unix://{path}"],
                                  stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
                                  close_fds=True)
    if wait_for_daemon(path, daemon, timeout):
        return daemon.pid
    raise APIError(500, f"minicontainerd did not start (it exited, or did not answer in {timeout:.0f} s): "
                        f"see {log_path}", from_daemon=False)
