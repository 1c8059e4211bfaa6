"""minicontainerd's HTTP side, byte by byte, against a fake engine.

The daemon is served on a temporary unix socket (in a thread with its own event loop) and spoken to
with raw HTTP, so each test shows what actually crosses the wire: headers, chunked bodies, the 101
of a hijack, multiplexed frames.

:class:`FakeEngine` implements the ``Engine`` interface in memory, with Docker's semantics (exit
codes, 304/409 cases, wait conditions, auto-remove, stdin buffered before start).  Its "containers"
understand a sliver of shell -- ``echo [>&2]``, ``cat``, ``sleep``, ``exit``, ``true``, ``false``,
``sh -c "a; b"`` -- the same commands a busybox image runs, so tests written against it hold for the
real engine too.  ``tests/integration/test_daemon_clients.py`` reuses it with the real docker CLI.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import hashlib
import http.client
import itertools
import json
import os
import shlex
import shutil
import socket
import stat
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any, NamedTuple

import pytest

from minicontainer.daemon import api, main, streams
from minicontainer.daemon.server import serve

# --- the fake engine -------------------------------------------------------------------------------
from minicontainer.engine.errors import Conflict, EngineError, InvalidParameter, NotFound, NotModified


def _now_iso(t: float | None = None) -> str:
    if t is None:
        return "0001-01-01T00:00:00Z"
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f000Z")


def normalize(ref: str) -> str:
    """"docker.io/library/busybox" -> "busybox:latest" (the fake has no registries)."""
    for prefix in ("docker.io/", "index.docker.io/"):
        ref = ref.removeprefix(prefix)
    ref = ref.removeprefix("library/")
    if ":" not in ref.rsplit("/", 1)[-1]:
        ref += ":latest"
    return ref


class LogEntry(NamedTuple):
    time: float
    stream: int
    data: bytes


class FakeContainer:
    def __init__(self, cid: str, name: str, image_ref: str, image: dict, body: dict) -> None:
        self.id = cid
        self.name = name
        self.image_ref = image_ref
        self.image = image
        self.body = body
        self.host_config = dict(body.get("HostConfig") or {})
        self.host_config.setdefault("LogConfig", {"Type": "json-file", "Config": {}})
        if not self.host_config["LogConfig"].get("Type"):
            self.host_config["LogConfig"] = {"Type": "json-file", "Config": {}}
        self.created = time.time()
        self.status = "created"            # created | running | exited
        self.exit_code = 0
        self.pid = 0
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.logs: list[LogEntry] = []
        self.subscribers: list[asyncio.Queue] = []   # attach/follow: (stream, bytes), None at exit
        self.exit_waiters: list[asyncio.Future] = []
        self.removal_waiters: list[asyncio.Future] = []
        self.process: asyncio.Task | None = None
        self.kill_code = 137
        self.stop_requested = False
        self.new_stdin()

    @property
    def tty(self) -> bool:
        return bool(self.body.get("Tty"))

    @property
    def argv(self) -> list[str]:
        entrypoint = self.body.get("Entrypoint") or self.image["Config"].get("Entrypoint") or []
        cmd = self.body.get("Cmd") or ([] if self.body.get("Entrypoint") else self.image["Config"]["Cmd"])
        return list(entrypoint) + list(cmd or [])

    def new_stdin(self) -> None:
        """Like Docker's stdin pipe: made before the process, so writes before start wait in it."""
        self.stdin = bytearray()
        self.stdin_eof = not self.body.get("OpenStdin")
        self.stdin_ready = asyncio.Event()
        if self.stdin_eof:
            self.stdin_ready.set()

    def emit(self, stream: int, data: bytes) -> None:
        now = time.time()
        for line in data.splitlines(keepends=True):
            self.logs.append(LogEntry(now, stream, line))
            for q in self.subscribers:
                q.put_nowait((stream, line))


class FakeAttachment:
    def __init__(self, engine: FakeEngine, c: FakeContainer, queue: asyncio.Queue, stdout: bool,
                 stderr: bool) -> None:
        self.tty = c.tty
        self._c = c
        self._queue = queue
        self._engine = engine
        self.output = self._output(stdout, stderr)

    async def _output(self, stdout: bool, stderr: bool) -> AsyncIterator[tuple[int, bytes]]:
        try:
            while True:
                item = await self._queue.get()
                if item is None:
                    return
                if (item[0] == 1 and stdout) or (item[0] == 2 and stderr):
                    yield item
        finally:
            with contextlib.suppress(ValueError):
                self._c.subscribers.remove(self._queue)

    async def write_stdin(self, data: bytes) -> None:
        if self._c.stdin_eof:
            raise EngineError("stdin is closed")
        self._c.stdin += data
        self._c.stdin_ready.set()

    async def close_stdin(self) -> None:
        self._c.stdin_eof = True
        self._c.stdin_ready.set()


class FakeNetworks:
    """No networks but the three predefined ones (``docker inspect NAME`` asks for a network last)."""

    def inspect(self, ref: str) -> dict:
        if ref in ("bridge", "host", "none"):
            return {"Name": ref, "Id": ref * 8, "Driver": {"none": "null"}.get(ref, ref), "Containers": {}}
        raise NotFound(f"network {ref} not found")


class FakeVolumes:
    """No volumes (``docker inspect NAME`` asks for a volume after the network)."""

    def get(self, name: str) -> dict:
        raise NotFound(f"get {name}: no such volume")


class FakeEngine:
    """In memory, Docker's semantics; see the module docstring."""

    networks = FakeNetworks()
    volumes = FakeVolumes()

    def __init__(self) -> None:
        self.containers: dict[str, FakeContainer] = {}
        self.images_by_id: dict[str, dict] = {}
        self.tags: dict[str, str] = {}
        self.pids = itertools.count(4000)
        self.names = itertools.count(1)
        self.opened = False
        self.closed = False
        self.pulls: list[tuple[str, str | None, dict | None]] = []
        self.add_image("busybox:latest")

    # --- life of the engine
    async def open(self) -> None:
        self.opened = True

    async def close(self) -> None:
        for c in self.containers.values():
            if c.process is not None and not c.process.done():
                c.process.cancel()
        await asyncio.gather(*(c.process for c in self.containers.values() if c.process),
                             return_exceptions=True)
        self.closed = True

    def version(self) -> dict:
        return {"Version": "0.1.0-fake", "ApiVersion": "1.45", "MinAPIVersion": "1.24", "Os": "linux",
                "Arch": "amd64", "KernelVersion": os.uname().release, "GitCommit": "fake", "GoVersion": "n/a",
                "BuildTime": "2025-01-01T00:00:00Z",
                "Components": [{"Name": "Engine", "Version": "0.1.0-fake", "Details": {}}]}

    def info(self) -> dict:
        states = [c.status for c in self.containers.values()]
        return {"ID": "fake", "Containers": len(states), "ContainersRunning": states.count("running"),
                "ContainersPaused": 0, "ContainersStopped": len(states) - states.count("running"),
                "Images": len(self.images_by_id), "Driver": "overlay2", "MemoryLimit": True,
                "CgroupDriver": "cgroupfs", "CgroupVersion": "2", "KernelVersion": os.uname().release,
                "OperatingSystem": "fake", "OSType": "linux", "Architecture": "x86_64", "NCPU": 2,
                "MemTotal": 1 << 30, "Name": "fakehost", "ServerVersion": "0.1.0-fake",
                "DockerRootDir": "/var/lib/minicontainer"}

    # --- images
    def add_image(self, ref: str) -> dict:
        ref = normalize(ref)
        iid = "sha256:" + hashlib.sha256(ref.encode()).hexdigest()
        image = self.images_by_id.setdefault(iid, {
            "Id": iid, "RepoTags": [], "RepoDigests": [], "Created": "2025-01-01T00:00:00Z",
            "Size": 4_000_000, "Os": "linux", "Architecture": "amd64", "Parent": "",
            "Config": {"Cmd": ["sh"], "Entrypoint": None, "Env": ["PATH=/bin"], "WorkingDir": "",
                       "Labels": None},
            "RootFS": {"Type": "layers", "Layers": ["sha256:" + "1" * 64]}})
        if ref not in image["RepoTags"]:
            image["RepoTags"].append(ref)
        self.tags[ref] = iid
        return image

    def _image(self, name: str) -> dict:
        if name in self.images_by_id:
            return self.images_by_id[name]
        if normalize(name) in self.tags:
            return self.images_by_id[self.tags[normalize(name)]]
        hexpart = name.removeprefix("sha256:")
        if len(hexpart) >= 4 and all(ch in "0123456789abcdef" for ch in hexpart):
            found = [i for i in self.images_by_id if i[7:].startswith(hexpart)]
            if len(found) == 1:
                return self.images_by_id[found[0]]
        raise NotFound(f"No such image: {normalize(name) if ':' not in name[-8:] else name}")

    async def load(self, upload: AsyncIterator[bytes], quiet: bool = False) -> AsyncIterator[dict]:
        """Counts what was uploaded (and how many pieces it came in), instead of unpacking it."""
        size = pieces = 0
        async for chunk in upload:
            size, pieces = size + len(chunk), pieces + 1
        yield {"stream": f"Loaded {size} bytes in {pieces} pieces\n"}

    async def pull(self, image: str, tag: str | None, platform: str | None,
                   auth: dict | None) -> AsyncIterator[dict]:
        self.pulls.append((image, tag, auth))
        ref = normalize(f"{image}:{tag}" if tag else image)
        repo = ref.rsplit(":", 1)[0]
        if "doesnotexist" in ref:
            raise NotFound(f"pull access denied for {repo}, repository does not exist or may require "
                           "'docker login'")
        layer = hashlib.sha256(ref.encode()).hexdigest()[:12]
        yield {"status": f"Pulling from library/{repo}", "id": ref.rsplit(":", 1)[1]}
        yield {"status": "Pulling fs layer", "progressDetail": {}, "id": layer}
        if "failmidway" in ref:
            raise EngineError("unexpected EOF while downloading a layer")
        for done in (50, 100):
            await asyncio.sleep(0)
            yield {"status": "Downloading", "progressDetail": {"current": done, "total": 100},
                   "progress": f"[{'=' * (done // 10)}>] {done}B/100B", "id": layer}
        yield {"status": "Pull complete", "progressDetail": {}, "id": layer}
        self.add_image(ref)
        yield {"status": "Digest: sha256:" + hashlib.sha256(repo.encode()).hexdigest()}
        yield {"status": f"Status: Downloaded newer image for {ref}"}

    def images(self, all: bool = False) -> list[dict]:
        return [{"Id": i["Id"], "ParentId": "", "RepoTags": i["RepoTags"], "RepoDigests": [],
                 "Created": 1735689600, "Size": i["Size"], "SharedSize": -1, "VirtualSize": i["Size"],
                 "Labels": {}, "Containers": -1} for i in self.images_by_id.values()]

    def image_inspect(self, name: str) -> dict:
        return self._image(name)

    def image_history(self, name: str) -> list[dict]:
        image = self._image(name)
        return [{"Id": image["Id"], "Created": 1735689600, "CreatedBy": "/bin/sh", "Tags": image["RepoTags"],
                 "Size": image["Size"], "Comment": ""}]

    def remove_image(self, name: str, force: bool, noprune: bool = False) -> list[dict]:
        image = self._image(name)
        users = [c for c in self.containers.values() if c.image["Id"] == image["Id"]]
        if users and not force:
            raise Conflict(f"conflict: unable to remove repository reference \"{name}\" (must force) - "
                           f"container {users[0].id[:12]} is using its referenced image {image['Id'][7:19]}")
        out = [{"Untagged": t} for t in image["RepoTags"]]
        for t in image["RepoTags"]:
            self.tags.pop(t, None)
        del self.images_by_id[image["Id"]]
        return out + [{"Deleted": image["Id"]}]

    def tag_image(self, name: str, repo: str, tag: str | None) -> None:
        image = self._image(name)
        ref = normalize(f"{repo}:{tag}" if tag else repo)
        self.tags[ref] = image["Id"]
        image["RepoTags"].append(ref)

    def prune_images(self, filters: dict) -> dict:
        return {"ImagesDeleted": None, "SpaceReclaimed": 0}

    # --- containers
    def _get(self, ref: str) -> FakeContainer:
        if ref in self.containers:
            return self.containers[ref]
        for c in self.containers.values():
            if c.name == ref.lstrip("/"):
                return c
        found = [c for c in self.containers.values() if c.id.startswith(ref)]
        if len(found) == 1:
            return found[0]
        raise NotFound(f"No such container: {ref}")

    async def create(self, body: dict, name: str | None) -> dict:
        if not body.get("Image"):
            raise InvalidParameter("config cannot be empty in order to create a container")
        image = self._image(body["Image"])
        name = (name or f"fake_container{next(self.names)}").lstrip("/")
        for c in self.containers.values():
            if c.name == name:
                raise Conflict(f'Conflict. The container name "/{name}" is already in use by container '
                               f'"{c.id}". You have to remove (or rename) that container to be able to '
                               "reuse that name.")
        cid = hashlib.sha256(f"{name}{time.time()}{os.urandom(8).hex()}".encode()).hexdigest()
        self.containers[cid] = FakeContainer(cid, name, body["Image"], image, body)
        return {"Id": cid, "Warnings": []}

    async def start(self, cid: str) -> None:
        c = self._get(cid)
        if c.status == "running":
            raise NotModified("container already started")
        c.status = "running"
        c.pid = next(self.pids)
        c.started_at = time.time()
        c.finished_at = None
        c.stop_requested = False
        c.process = asyncio.create_task(self._supervise(c))

    async def _supervise(self, c: FakeContainer) -> None:
        try:
            code = await self._interpret(c)
        except asyncio.CancelledError:
            code = c.kill_code
        c.status = "exited"
        c.exit_code = code
        c.pid = 0
        c.finished_at = time.time()
        for q in c.subscribers:
            q.put_nowait(None)
        c.subscribers.clear()
        for f in c.exit_waiters:
            if not f.done():
                f.set_result(code)
        c.exit_waiters.clear()
        c.new_stdin()
        if c.host_config.get("AutoRemove"):
            self._forget(c)

    async def _interpret(self, c: FakeContainer) -> int:
        argv = c.argv
        if argv[:2] == ["sh", "-c"] and len(argv) > 2:
            statements = [shlex.split(s) for s in argv[2].split(";") if s.strip()]
        else:
            statements = [argv]
        status = 0
        for words in statements:
            stream = 1
            if words and words[-1] in (">&2", "1>&2"):
                words, stream = words[:-1], 2
            cmd, args = (words[0], words[1:]) if words else ("true", [])
            if cmd == "echo":
                c.emit(stream, " ".join(args).encode() + b"\n")
                status = 0
            elif cmd == "cat":
                while True:
                    await c.stdin_ready.wait()
                    if c.stdin:
                        data, c.stdin[:] = bytes(c.stdin), b""
                        c.emit(stream, data)
                    if c.stdin_eof:
                        break
                    c.stdin_ready.clear()
                status = 0
            elif cmd == "sleep":
                await asyncio.sleep(float(args[0]))
                status = 0
            elif cmd == "exit":
                return int(args[0]) if args else status
            elif cmd in ("true", "false"):
                status = 0 if cmd == "true" else 1
            else:
                c.emit(2, f"sh: {cmd}: not found\n".encode())
                status = 127
        return status

    def _forget(self, c: FakeContainer) -> None:
        self.containers.pop(c.id, None)
        for f in c.removal_waiters:
            if not f.done():
                f.set_result(c.exit_code)
        c.removal_waiters.clear()

    async def wait(self, cid: str, condition: str) -> dict:
        # Everything up to the first await runs at once: the waiter is registered when the
        # daemon sends its headers.
        c = self._get(cid)
        fut = asyncio.get_running_loop().create_future()
        if condition == "removed":
            c.removal_waiters.append(fut)
        elif condition == "not-running" and c.status != "running":
            fut.set_result(c.exit_code)
        else:
            c.exit_waiters.append(fut)
        return {"StatusCode": await fut, "Error": None}

    async def _signal(self, c: FakeContainer, sig: str | None) -> None:
        name = (sig or "KILL").upper().removeprefix("SIG")
        if name in ("KILL", "9"):
            c.kill_code = 137
            if c.process is not None:
                c.process.cancel()
                await asyncio.gather(c.process, return_exceptions=True)
        # Any other signal: PID 1 without a handler ignores it, as busybox's sh and sleep do.

    async def stop(self, cid: str, timeout: int | None) -> None:
        c = self._get(cid)
        if c.status != "running":
            raise NotModified("container already stopped")
        assert c.process is not None
        await self._signal(c, "TERM")
        grace = 10 if timeout is None or timeout < 0 else timeout
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(c.process), grace)
        if c.status == "running":
            await self._signal(c, "KILL")

    async def kill(self, cid: str, signal: str | None) -> None:
        c = self._get(cid)
        if c.status != "running":
            raise Conflict(f"Cannot kill container: {cid}: Container {c.id} is not running")
        await self._signal(c, signal)

    async def restart(self, cid: str, timeout: int | None) -> None:
        with contextlib.suppress(NotModified):
            await self.stop(cid, timeout)
        await self.start(cid)

    async def remove(self, cid: str, force: bool, volumes: bool = False) -> None:
        c = self._get(cid)
        if c.status == "running":
            if not force:
                raise Conflict(f"cannot remove container \"/{c.name}\": container is running: stop the "
                               "container before removing or force remove")
            await self._signal(c, "KILL")
        self._forget(c)

    async def prune(self, filters: dict) -> dict:
        gone = [c for c in self.containers.values() if c.status != "running"]
        for c in gone:
            self._forget(c)
        return {"ContainersDeleted": [c.id for c in gone] or None, "SpaceReclaimed": 0}

    def _status_text(self, c: FakeContainer) -> str:
        if c.status == "running":
            return "Up Less than a second"
        if c.status == "created":
            return "Created"
        return f"Exited ({c.exit_code}) Less than a second ago"

    def list(self, all: bool, filters: dict, limit: int | None) -> list[dict]:
        chosen = sorted(self.containers.values(), key=lambda c: c.created, reverse=True)
        if not all:
            chosen = [c for c in chosen if c.status == "running"]
        if "status" in filters:
            chosen = [c for c in chosen if c.status in filters["status"]]
        if "name" in filters:
            chosen = [c for c in chosen if any(n.lstrip("/") in c.name for n in filters["name"])]
        if "id" in filters:
            chosen = [c for c in chosen if any(c.id.startswith(i) for i in filters["id"])]
        if limit:
            chosen = chosen[:limit]
        return [{"Id": c.id, "Names": ["/" + c.name], "Image": c.image_ref, "ImageID": c.image["Id"],
                 "Command": shlex.join(c.argv), "Created": int(c.created), "Ports": [], "Labels": {},
                 "State": c.status, "Status": self._status_text(c),
                 "HostConfig": {"NetworkMode": "none"}, "NetworkSettings": {"Networks": {}}, "Mounts": []}
                for c in chosen]

    def resize(self, cid: str, rows: int, columns: int) -> None:
        self._get(cid)  # no terminals here: only a missing container is an error

    def inspect(self, cid: str) -> dict:
        c = self._get(cid)
        argv = c.argv
        config = {"Hostname": c.id[:12], "Domainname": "", "User": c.body.get("User", ""),
                  "AttachStdin": bool(c.body.get("AttachStdin")),
                  "AttachStdout": bool(c.body.get("AttachStdout")),
                  "AttachStderr": bool(c.body.get("AttachStderr")),
                  "Tty": c.tty, "OpenStdin": bool(c.body.get("OpenStdin")),
                  "StdinOnce": bool(c.body.get("StdinOnce")), "Env": c.body.get("Env") or ["PATH=/bin"],
                  "Cmd": c.body.get("Cmd") or c.image["Config"]["Cmd"], "Image": c.image_ref,
                  "Volumes": None, "WorkingDir": c.body.get("WorkingDir", ""),
                  "Entrypoint": c.body.get("Entrypoint"), "Labels": c.body.get("Labels") or {}}
        return {
            "Id": c.id, "Created": _now_iso(c.created), "Path": argv[0] if argv else "",
            "Args": argv[1:],
            "State": {"Status": c.status, "Running": c.status == "running", "Paused": False,
                      "Restarting": False, "OOMKilled": False, "Dead": False, "Pid": c.pid,
                      "ExitCode": c.exit_code, "Error": "", "StartedAt": _now_iso(c.started_at),
                      "FinishedAt": _now_iso(c.finished_at)},
            "Image": c.image["Id"], "Name": "/" + c.name, "RestartCount": 0, "Driver": "overlay2",
            "Platform": "linux", "MountLabel": "", "ProcessLabel": "", "AppArmorProfile": "",
            "HostConfig": c.host_config, "Mounts": [], "Config": config,
            "NetworkSettings": {"Networks": {}, "Ports": {}},
        }

    async def logs(self, cid: str, *, stdout: bool, stderr: bool, follow: bool, since: float, until: float,
                   timestamps: bool, tail: str) -> AsyncIterator[tuple[int, bytes]]:
        c = self._get(cid)
        wanted = {1} if stdout else set()
        if stderr:
            wanted.add(2)
        past = [e for e in c.logs if e.stream in wanted and (not since or e.time > since)
                and (not until or e.time < until)]
        if tail not in ("all", "") and int(tail) >= 0:
            past = past[len(past) - int(tail):] if int(tail) else []
        queue: asyncio.Queue | None = None
        if follow and c.status == "running":
            queue = asyncio.Queue()
            c.subscribers.append(queue)       # in the same step as the snapshot: no line lost

        def stamp(t: float, data: bytes) -> bytes:
            return (_now_iso(t) + " ").encode() + data if timestamps else data

        try:
            for e in past:
                yield e.stream, stamp(e.time, e.data)
            while queue is not None:
                item = await queue.get()
                if item is None:
                    break
                if item[0] in wanted:
                    yield item[0], stamp(time.time(), item[1])
        finally:
            if queue is not None:
                with contextlib.suppress(ValueError):
                    c.subscribers.remove(queue)

    async def attach(self, cid: str, *, stdin: bool, stdout: bool, stderr: bool, logs: bool) -> FakeAttachment:
        c = self._get(cid)
        queue: asyncio.Queue = asyncio.Queue()
        if logs:
            for e in c.logs:
                queue.put_nowait((e.stream, e.data))
        c.subscribers.append(queue)
        return FakeAttachment(self, c, queue, stdout, stderr)

    def top(self, cid: str, ps_args: str | None) -> dict:
        c = self._get(cid)
        if c.status != "running":
            raise Conflict(f"container {c.id} is not running")
        return {"Titles": ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"],
                "Processes": [["root", str(c.pid), "1", "0", "00:00", "?", "00:00:00", shlex.join(c.argv)]]}

    def changes(self, cid: str) -> list[dict]:
        self._get(cid)
        return [{"Path": "/tmp", "Kind": 0}]


# --- serving it -------------------------------------------------------------------------------------


class RunningDaemon(NamedTuple):
    socket_path: str
    engine: FakeEngine
    loop: asyncio.AbstractEventLoop
    thread: threading.Thread

    def call(self, coro_fn, *args, **kwargs) -> Any:
        """Run an engine coroutine on the daemon's loop (tests use it to start containers)."""
        return asyncio.run_coroutine_threadsafe(coro_fn(*args, **kwargs), self.loop).result(10)


@contextlib.contextmanager
def running_daemon(group: str | None = None, socket_path: str | None = None,
                   grace: float = 1.0) -> Iterator[RunningDaemon]:
    """Serve a FakeEngine on a fresh socket in a thread; stop it (as SIGTERM would) on the way out."""
    tmp = tempfile.mkdtemp(prefix="mcd-")            # short: unix socket paths are limited to 107 bytes
    path = socket_path or os.path.join(tmp, "run", "minicontainer.sock")
    started = threading.Event()
    box: dict[str, Any] = {}

    async def main() -> None:
        box["loop"] = asyncio.get_running_loop()
        box["engine"] = engine = FakeEngine()
        box["stop"] = stop = asyncio.Event()
        await engine.open()
        started.set()
        await serve(engine, path, group=group, stop=stop, grace=grace)

    def thread_main() -> None:
        try:
            asyncio.run(main())
        except Exception as e:  # noqa: BLE001 -- re-raised in the test thread by the fixture
            box["error"] = e
            started.set()

    thread = threading.Thread(target=thread_main, name="minicontainerd", daemon=True)
    thread.start()
    started.wait(10)
    deadline = time.monotonic() + 10
    while not _connectable(path):
        if "error" in box:
            raise box["error"]
        assert time.monotonic() < deadline, "the daemon did not start listening"
        time.sleep(0.01)
    daemon = RunningDaemon(path, box["engine"], box["loop"], thread)
    try:
        yield daemon
    finally:
        box["loop"].call_soon_threadsafe(box["stop"].set)
        thread.join(15)
        shutil.rmtree(tmp, ignore_errors=True)
        assert not thread.is_alive(), "the daemon did not stop"
        if "error" in box:
            raise box["error"]


def _connectable(path: str) -> bool:
    with socket.socket(socket.AF_UNIX) as s:
        try:
            s.connect(path)
        except OSError:
            return False
        return True


@pytest.fixture
def daemon() -> Iterator[RunningDaemon]:
    with running_daemon() as d:
        yield d
    assert d.engine.closed, "the engine was not closed at shutdown"
    assert not os.path.exists(d.socket_path), "the socket was left behind"


# --- speaking HTTP to it -----------------------------------------------------------------------------


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = 10) -> None:
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


class Reply(NamedTuple):
    status: int
    headers: dict[str, str]       # lower-case names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def request(d: RunningDaemon, method: str, path: str, body: Any = None,
            conn: UnixHTTPConnection | None = None) -> Reply:
    own = conn is None
    conn = conn or UnixHTTPConnection(d.socket_path)
    try:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if data is not None else {}
        conn.request(method, path, body=data, headers=headers)
        r = conn.getresponse()
        return Reply(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
    finally:
        if own:
            conn.close()


def create(d: RunningDaemon, cmd: list[str], **config: Any) -> str:
    r = request(d, "POST", "/v1.45/containers/create", {"Image": "busybox", "Cmd": cmd, **config})
    assert r.status == 201, r
    return r.json()["Id"]


def read_head(f) -> tuple[int, dict[str, str]]:
    """Status and headers of a response, read from a socket's file."""
    status_line = f.readline()
    assert status_line.startswith(b"HTTP/1.1 "), status_line
    headers = {}
    while (line := f.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers


def raw_request(path: str, method: str = "POST", upgrade: bool = False, extra: bytes = b"") -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: docker\r\n"
    if upgrade:
        head += "Connection: Upgrade\r\nUpgrade: tcp\r\n"
    return head.encode() + b"\r\n" + extra


# --- tests: plumbing ----------------------------------------------------------------------------------


def test_frames_round_trip():
    data = streams.frame(1, b"out\n") + streams.frame(2, b"err\n") + streams.frame(1, b"")
    assert data[:8] == bytes([1, 0, 0, 0, 0, 0, 0, 4])
    assert streams.demultiplex(data) == [(1, b"out\n"), (2, b"err\n"), (1, b"")]
    with pytest.raises(ValueError):
        streams.demultiplex(data[:-3])


def test_query_helpers():
    assert [api.flag(v) for v in ("1", "true", "True", "0", "false", "", "no", None)] == \
        [True, True, True, False, False, False, False, False]
    assert api.parse_filters('{"status":{"exited":true,"created":false}}') == {"status": ["exited"]}
    assert api.parse_filters('{"name":["web"]}') == {"name": ["web"]}
    assert api.registry_auth("eyJ1c2VybmFtZSI6ImEifQ") == {"username": "a"}   # unpadded base64url
    assert api.registry_auth("e30=") is None and api.registry_auth("!!") is None


def test_main_refuses_tcp(capsys):
    assert main.main(["--host", "tcp://0.0.0.0:2375"]) == 2
    assert "only unix://" in capsys.readouterr().err
    assert main.socket_path("unix:///run/x.sock") == "/run/x.sock"


# --- tests: HTTP -----------------------------------------------------------------------------------


def test_an_upload_streams_to_the_handler_whatever_its_size(daemon):
    """``load``'s tar is not held whole: 40 MiB (beyond the 16 MiB limit on buffered bodies) arrive
    in pieces; then the connection serves the next request (keep-alive)."""
    size = 40 << 20
    conn = UnixHTTPConnection(daemon.socket_path)
    try:
        chunks = (b"x" * (1 << 20) for _ in range(size >> 20))
        conn.request("POST", "/v1.45/images/load?quiet=1", body=chunks,
                     headers={"Content-Type": "application/x-tar", "Transfer-Encoding": "chunked"},
                     encode_chunked=True)
        r = conn.getresponse()
        said = json.loads(r.read())["stream"]
        assert r.status == 200 and said.startswith(f"Loaded {size} bytes in ")
        assert int(said.split()[4]) > 1
        # import with a URL is refused before its body is read; the body is drained, the answer read
        conn.request("POST", "/v1.45/images/create?fromSrc=http://example.invalid/x.tar", body=b"y" * 100_000)
        r = conn.getresponse()
        assert r.status == 400 and b"URL" in r.read()
        assert request(daemon, "GET", "/_ping", conn=conn).body == b"OK"
        # a bad import is refused at once (400), not inside a 200 after the whole upload
        for query in ("repo=x&tag=1&changes=FROM+scratch", "repo=x%40sha256%3A" + "a" * 64):
            conn.request("POST", f"/v1.45/images/create?fromSrc=-&{query}", body=b"z" * 10_000,
                         headers={"Content-Type": "application/x-tar"})
            r = conn.getresponse()
            assert r.status == 400, (query, r.status)
            r.read()
    finally:
        conn.close()


def test_expect_100_continue_is_answered_only_when_the_upload_is_wanted(daemon):
    """curl sends ``Expect: 100-continue`` with a big body and waits: a refused import is refused
    before its tar is sent; a load gets its 100, then its body is read."""
    def head(query: str, path: str = "/v1.45/images/create") -> bytes:
        return (f"POST {path}?{query} HTTP/1.1\r\nHost: docker\r\nContent-Type: application/x-tar\r\n"
                "Expect: 100-continue\r\nContent-Length: 3000\r\n\r\n").encode()

    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(5)
        sock.connect(daemon.socket_path)
        sock.sendall(head("fromSrc=-&repo=x&changes=FROM+scratch"))
        status, _ = read_head(sock.makefile("rb"))
        assert status == 400  # no 100 first: the client need not send its tar at all
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(5)
        sock.connect(daemon.socket_path)
        sock.sendall(head("quiet=1", "/v1.45/images/load"))
        f = sock.makefile("rb")
        assert read_head(f)[0] == 100
        sock.sendall(b"t" * 3000)
        status, _ = read_head(f)
        assert status == 200


def test_ping_get_and_head_on_one_connection(daemon):
    conn = UnixHTTPConnection(daemon.socket_path)
    try:
        r = request(daemon, "HEAD", "/_ping", conn=conn)
        assert r.status == 200 and r.body == b""
        for name, value in [("api-version", "1.45"), ("ostype", "linux"), ("docker-experimental", "false")]:
            assert r.headers[name] == value
        assert r.headers["server"].startswith("minicontainerd/")
        sock = conn.sock
        r = request(daemon, "GET", "/v1.45/_ping", conn=conn)    # keep-alive: the same socket
        assert conn.sock is sock
        assert (r.status, r.body) == (200, b"OK")
    finally:
        conn.close()


def test_keep_alive_pipelined_requests(daemon):
    """Two requests written at once on one connection get two replies, in order."""
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(daemon.socket_path)
        s.sendall(raw_request("/_ping", "GET") + raw_request("/version", "GET"))
        f = s.makefile("rb")
        status, headers = read_head(f)
        assert status == 200 and f.read(int(headers["content-length"])) == b"OK"
        status, headers = read_head(f)
        assert status == 200 and headers["content-type"] == "application/json"
        assert json.loads(f.read(int(headers["content-length"])))["ApiVersion"] == "1.45"


def test_version_prefix(daemon):
    for path in ("/version", "/v1.24/version", "/v1.45/version"):
        r = request(daemon, "GET", path)
        assert r.status == 200, path
        assert r.json()["ApiVersion"] == "1.45" and r.json()["MinAPIVersion"] == "1.24"
    too_new = request(daemon, "GET", "/v1.99/version")
    assert too_new.status == 400 and "too new" in too_new.json()["message"]
    assert request(daemon, "GET", "/v1.12/version").status == 400
    assert request(daemon, "GET", "/v1.45/info").json()["Driver"] == "overlay2"


def test_errors_are_json_with_exact_content_type(daemon):
    r = request(daemon, "GET", "/v1.45/containers/nosuch/json")
    assert r.status == 404
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {"message": "No such container: nosuch"}
    r = request(daemon, "GET", "/v1.45/no/such/route")
    assert (r.status, r.json()) == (404, {"message": "page not found"})
    r = request(daemon, "POST", "/containers/create", body=None)
    assert r.status == 400 and "config cannot be empty" in r.json()["message"]
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(daemon.socket_path)
        s.sendall(b"POST /containers/create HTTP/1.1\r\nHost: d\r\nContent-Length: 5\r\n\r\n{nope")
        status, headers = read_head(s.makefile("rb"))
        assert status == 400 and headers["content-type"] == "application/json"
    with socket.socket(socket.AF_UNIX) as s:              # not HTTP at all: 400, then closed
        s.connect(daemon.socket_path)
        s.sendall(b"HELLO THERE\r\n\r\n")
        f = s.makefile("rb")
        status, headers = read_head(f)
        assert status == 400 and headers["connection"] == "close"
        assert b"message" in f.read()


def test_pull_streams_chunked_json_lines(daemon):
    r = request(daemon, "POST", "/v1.45/images/create?fromImage=docker.io/library/alpine&tag=3.20")
    assert r.status == 200
    assert r.headers["transfer-encoding"] == "chunked"
    assert r.headers["content-type"] == "application/json"
    lines = [json.loads(line) for line in r.body.splitlines()]
    assert lines[0]["status"] == "Pulling from library/alpine"
    assert lines[-1] == {"status": "Status: Downloaded newer image for alpine:3.20"}
    assert daemon.engine.pulls[-1] == ("docker.io/library/alpine", "3.20", None)
    assert request(daemon, "GET", "/images/alpine:3.20/json").status == 200


def test_pull_errors_before_and_inside_the_stream(daemon):
    # Before any progress: still an HTTP status (the CLI shows the message).
    r = request(daemon, "POST", "/images/create?fromImage=doesnotexist&tag=latest")
    assert r.status == 404 and "pull access denied" in r.json()["message"]
    # After progress began: a 200 whose last line carries the error.
    r = request(daemon, "POST", "/images/create?fromImage=failmidway&tag=latest")
    assert r.status == 200
    last = json.loads(r.body.splitlines()[-1])
    assert last["error"] == last["errorDetail"]["message"] == "unexpected EOF while downloading a layer"


def test_image_routes(daemon):
    images = request(daemon, "GET", "/images/json").json()
    assert [i["RepoTags"] for i in images] == [["busybox:latest"]]
    short = images[0]["Id"][7:19]
    assert request(daemon, "GET", f"/images/{short}/json").json()["Id"] == images[0]["Id"]
    assert request(daemon, "POST", "/images/busybox/tag?repo=example.com/team/bb&tag=v1").status == 201
    # Image names have slashes: the route takes the whole rest of the path.
    assert request(daemon, "GET", "/images/example.com/team/bb:v1/json").status == 200
    assert request(daemon, "GET", "/images/busybox/history").json()[0]["CreatedBy"] == "/bin/sh"
    removed = request(daemon, "DELETE", "/images/example.com/team/bb:v1")
    assert removed.status == 200 and {"Untagged": "example.com/team/bb:v1"} in removed.json()


def test_wait_sends_headers_at_once(daemon):
    cid = create(daemon, ["echo", "done"])
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        s.connect(daemon.socket_path)
        s.sendall(raw_request(f"/v1.45/containers/{cid}/wait?condition=next-exit"))
        f = s.makefile("rb")
        status, headers = read_head(f)       # the container has not even started yet
        assert status == 200 and headers["content-type"] == "application/json"
        assert request(daemon, "POST", f"/containers/{cid}/start").status == 204
        size = int(f.readline(), 16)           # one chunk: the result
        assert json.loads(f.read(size)) == {"StatusCode": 0, "Error": None}


def test_wait_exit_code_and_removed(daemon):
    cid = create(daemon, ["sh", "-c", "echo x; exit 3"], HostConfig={"AutoRemove": True})
    done: dict[str, Reply] = {}
    waiter = threading.Thread(target=lambda: done.setdefault(
        "r", request(daemon, "POST", f"/containers/{cid}/wait?condition=removed")))
    waiter.start()
    time.sleep(0.1)
    request(daemon, "POST", f"/containers/{cid}/start")
    waiter.join(5)
    assert done["r"].json()["StatusCode"] == 3
    assert request(daemon, "GET", f"/containers/{cid}/json").status == 404
    assert request(daemon, "POST", "/containers/nosuch/wait").status == 404


def test_life_cycle_status_codes(daemon):
    cid = create(daemon, ["sleep", "30"])
    assert request(daemon, "POST", f"/containers/{cid}/kill").status == 409      # not running
    assert request(daemon, "POST", f"/containers/{cid}/stop").status == 304
    assert request(daemon, "POST", f"/containers/{cid}/start").status == 204
    again = request(daemon, "POST", f"/containers/{cid}/start")
    assert again.status == 304 and again.body == b""
    assert request(daemon, "GET", f"/containers/{cid}/top").json()["Processes"][0][-1] == "sleep 30"
    assert request(daemon, "POST", f"/containers/{cid}/resize?h=24&w=80").status == 200
    assert request(daemon, "DELETE", f"/containers/{cid}").status == 409         # running
    assert request(daemon, "POST", f"/containers/{cid}/stop?t=0").status == 204
    state = request(daemon, "GET", f"/containers/{cid}/json").json()["State"]
    assert (state["Status"], state["ExitCode"]) == ("exited", 137)
    listed = request(daemon, "GET", '/containers/json?all=1&filters={"status":{"exited":true}}').json()
    assert [c["Id"] for c in listed] == [cid] and listed[0]["Names"][0].startswith("/")
    assert request(daemon, "GET", "/containers/json").json() == []
    assert request(daemon, "DELETE", f"/containers/{cid}?force=1").status == 204
    assert request(daemon, "POST", "/containers/prune").json() == {"ContainersDeleted": None,
                                                                  "SpaceReclaimed": 0}


def _start_and_wait(d: RunningDaemon, cid: str) -> None:
    assert request(d, "POST", f"/containers/{cid}/start").status == 204
    assert request(d, "POST", f"/containers/{cid}/wait").json()["StatusCode"] == 0


def test_logs_multiplexed(daemon):
    cid = create(daemon, ["sh", "-c", "echo out; echo err >&2; echo more"])
    _start_and_wait(daemon, cid)
    r = request(daemon, "GET", f"/v1.45/containers/{cid}/logs?stdout=1&stderr=1&tail=all")
    assert r.status == 200 and r.headers["content-type"] == "application/vnd.docker.multiplexed-stream"
    assert streams.demultiplex(r.body) == [(1, b"out\n"), (2, b"err\n"), (1, b"more\n")]
    r = request(daemon, "GET", f"/v1.45/containers/{cid}/logs?stdout=1&tail=1")
    assert streams.demultiplex(r.body) == [(1, b"more\n")]
    r = request(daemon, "GET", f"/v1.41/containers/{cid}/logs?stderr=1&timestamps=1")
    assert r.headers["content-type"] == "application/vnd.docker.raw-stream"     # older clients
    [(stream, line)] = streams.demultiplex(r.body)
    assert stream == 2 and line.endswith(b"Z err\n")
    assert request(daemon, "GET", f"/containers/{cid}/logs").status == 400        # no stream chosen


def test_logs_of_a_tty_container_are_raw(daemon):
    cid = create(daemon, ["echo", "hi"], Tty=True)
    _start_and_wait(daemon, cid)
    r = request(daemon, "GET", f"/containers/{cid}/logs?stdout=1&stderr=1")
    assert r.headers["content-type"] == "application/vnd.docker.raw-stream" and r.body == b"hi\n"


def test_logs_follow_streams_until_exit(daemon):
    cid = create(daemon, ["sh", "-c", "echo first; sleep 0.3; echo second"])
    request(daemon, "POST", f"/containers/{cid}/start")
    r = request(daemon, "GET", f"/containers/{cid}/logs?stdout=1&follow=1")
    assert streams.demultiplex(r.body) == [(1, b"first\n"), (1, b"second\n")]


def _attach(d: RunningDaemon, cid: str, query: str, early: bytes = b"") -> tuple[socket.socket, Any]:
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(5)
    s.connect(d.socket_path)
    s.sendall(raw_request(f"/v1.45/containers/{cid}/attach?{query}", upgrade=True, extra=early))
    f = s.makefile("rb")
    status, headers = read_head(f)
    assert status == 101
    assert headers["content-type"] == "application/vnd.docker.multiplexed-stream"
    assert (headers["connection"], headers["upgrade"]) == ("Upgrade", "tcp")
    return s, f


def test_attach_stdin_sent_before_start_and_half_close(daemon):
    """What `echo hello | docker run -i busybox cat` does: stdin and its end arrive before start."""
    cid = create(daemon, ["cat"], OpenStdin=True, StdinOnce=True, AttachStdin=True)
    s, f = _attach(daemon, cid, "stream=1&stdin=1&stdout=1&stderr=1", early=b"hello\n")
    with s:
        s.sendall(b"world\n")
        s.shutdown(socket.SHUT_WR)            # end of stdin: not a disconnect
        time.sleep(0.1)
        assert request(daemon, "POST", f"/containers/{cid}/start").status == 204
        output = f.read()                      # to end-of-file: the server shut its write side
    assert b"".join(data for _, data in streams.demultiplex(output)) == b"hello\nworld\n"
    assert request(daemon, "POST", f"/containers/{cid}/wait").json()["StatusCode"] == 0


def test_attach_without_stdin_multiplexes_stdout_and_stderr(daemon):
    """The CLI half-closes right after the 101 even without -i; output must still flow."""
    cid = create(daemon, ["sh", "-c", "echo out; echo err >&2; exit 2"])
    s, f = _attach(daemon, cid, "stream=1&stdout=1&stderr=1")
    with s:
        s.shutdown(socket.SHUT_WR)
        request(daemon, "POST", f"/containers/{cid}/start")
        assert streams.demultiplex(f.read()) == [(1, b"out\n"), (2, b"err\n")]
    assert request(daemon, "POST", f"/containers/{cid}/wait").json()["StatusCode"] == 2


def test_attach_to_missing_container_is_a_plain_404(daemon):
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(daemon.socket_path)
        s.sendall(raw_request("/containers/nosuch/attach?stream=1&stdout=1", upgrade=True))
        status, headers = read_head(s.makefile("rb"))
        assert status == 404 and headers["content-type"] == "application/json"


def test_socket_permissions_group_and_stale_socket():
    group = next((g for g in ("nogroup", "daemon", "users") if _group_exists(g)), None)
    tmp = tempfile.mkdtemp(prefix="mcd-")
    path = os.path.join(tmp, "new", "d.sock")
    try:
        os.makedirs(os.path.dirname(path))
        stale = socket.socket(socket.AF_UNIX)
        stale.bind(path)                    # a socket file nobody listens on: what a crash leaves
        stale.close()
        with running_daemon(group=group, socket_path=path) as d:
            st = os.stat(d.socket_path)
            assert stat.S_IMODE(st.st_mode) == 0o660
            if group:
                assert st.st_gid == grp.getgrnam(group).gr_gid
            assert request(d, "GET", "/_ping").body == b"OK"
        assert not os.path.exists(path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _group_exists(name: str) -> bool:
    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True


def test_shutdown_ends_requests_in_flight(daemon):
    """A `wait` that would never end does not keep the daemon from stopping (the fixture checks
    that the engine was closed and the socket removed)."""
    cid = create(daemon, ["sleep", "60"])
    request(daemon, "POST", f"/containers/{cid}/start")
    s = socket.socket(socket.AF_UNIX)
    s.connect(daemon.socket_path)
    s.sendall(raw_request(f"/containers/{cid}/wait"))
    assert read_head(s.makefile("rb"))[0] == 200
    s.close()


def test_a_client_that_leaves_cancels_its_wait(daemon):
    """Nobody reads the answer any more: the engine's wait is cancelled, not left pending forever."""
    cid = create(daemon, ["sleep", "60"])
    request(daemon, "POST", f"/containers/{cid}/start")
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(daemon.socket_path)
        s.sendall(raw_request(f"/containers/{cid}/wait"))
        assert read_head(s.makefile("rb"))[0] == 200
        [waiter] = daemon.engine.containers[cid].exit_waiters
    deadline = time.monotonic() + 5
    while not waiter.cancelled():
        assert time.monotonic() < deadline, "the wait went on after the client had gone"
        time.sleep(0.01)
    assert request(daemon, "POST", f"/containers/{cid}/kill").status == 204


def test_keep_alive_after_streamed_replies(daemon):
    """A chunked reply ends cleanly: the next request on the same connection is served."""
    cid = create(daemon, ["echo", "x"])
    conn = UnixHTTPConnection(daemon.socket_path)
    try:
        request(daemon, "POST", "/images/create?fromImage=alpine&tag=latest", conn=conn)
        sock = conn.sock
        request(daemon, "POST", f"/containers/{cid}/start", conn=conn)
        assert request(daemon, "POST", f"/containers/{cid}/wait", conn=conn).json()["StatusCode"] == 0
        logs = request(daemon, "GET", f"/containers/{cid}/logs?stdout=1", conn=conn)
        assert streams.demultiplex(logs.body) == [(1, b"x\n")]
        assert request(daemon, "GET", "/_ping", conn=conn).body == b"OK"
        assert conn.sock is sock
    finally:
        conn.close()
