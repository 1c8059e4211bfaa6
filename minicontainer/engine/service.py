"""The engine: containers that outlive a command, supervised by the daemon itself.

``minicontainerd`` owns one :class:`Engine`.  Every container is a directory under
``<data root>/containers/<64 hex id>``::

    container.json   the record docker's ``inspect`` shows: Config, HostConfig, State (saved on every change)
    config.json      the OCI runtime config of its next start (the bundle is this directory)
    upper/ work/     its own overlay layer (what it wrote) and overlayfs's scratch dir; merged/ while running
    stdout.raw       what the program writes, appended by the kernel itself (the daemon does not relay it)
    stderr.raw
    json.log         the same lines with a time each, in Docker's json-file format: what ``logs`` reads
    image            the image ID (while it exists, ``rmi`` refuses the image)

Why the program writes straight into files: no process has to stay between it and its output, so a
daemon restart loses nothing.  The daemon *tails* the files into json.log (recording when each line
arrived) and hands new lines to ``logs -f`` and ``attach`` readers.

Supervision: the daemon is a "child subreaper", so each container's init, orphaned when the
runtime's stage1 exits, becomes the daemon's child, and its exit status arrives as SIGCHLD.  After a
daemon restart a running container is no longer our child: we watch it through a pidfd instead,
and if it ended while we were down we say so in ``State.Error``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import platform
import re
import secrets
import shutil
import signal
import time
from collections.abc import AsyncIterator, Callable

from minicontainer import __version__
from minicontainer import config as settings
from minicontainer.engine import confinement, fields, names, namespaces, pause, resources
from minicontainer.engine import images as image_service
from minicontainer.engine.archive import ContainerArchives
from minicontainer.engine.clock import human_duration, now_rfc3339, parse_time
from minicontainer.engine.errors import Conflict, InvalidParameter, NotFound, NotModified
from minicontainer.engine.events import EventLog
from minicontainer.engine.exec import Execs
from minicontainer.engine.logs import LogTail, OutputWatcher, TerminalTail
from minicontainer.engine.names import Renaming
from minicontainer.engine.networks import Networks
from minicontainer.engine.spec import RunOptions, write_bundle
from minicontainer.engine.stats import Meter
from minicontainer.engine.system import SystemUsage, disk_used
from minicontainer.engine.threads import ChunkReader, fed, output_of, progress_of
from minicontainer.image import overlay
from minicontainer.image.store import StoreError
from minicontainer.kernel.syscalls import PR_SET_CHILD_SUBREAPER, KernelError, Syscalls
from minicontainer.runtime import lifecycle
from minicontainer.runtime.errors import RuntimeFailure

API_VERSION = "1.45"
MIN_API_VERSION = "1.24"
log = logging.getLogger(__name__)
VERSION = __version__
# What `ps --filter` and `container prune --filter` understand; docker refuses the others.
LIST_FILTERS = ("id", "name", "status", "ancestor", "exited", "label")
PRUNE_FILTERS = ("label", "label!", "until")
IMAGE_PRUNE_FILTERS = ("dangling", "label", "label!", "until")
IMAGE_FILTERS = ("dangling", "reference", "label")
STATUSES = ("created", "restarting", "running", "removing", "paused", "exited", "dead")  # the engine reports the package's version
DEFAULT_STOP_TIMEOUT = 10


def signal_number(name: str | int | None, default: int = signal.SIGKILL) -> int:
    if name in (None, ""):
        return default
    text = str(name).upper()
    if text.isdigit():
        return int(text)
    try:
        return int(signal.Signals[text if text.startswith("SIG") else "SIG" + text])
    except KeyError:
        raise InvalidParameter(f"Invalid signal: {name}") from None


class Container:
    """One container's record, as ``container.json`` holds it."""

    def __init__(self, record: dict, directory: str) -> None:
        self.record = record
        self.dir = directory

    @property
    def id(self) -> str:
        return self.record["Id"]

    @property
    def name(self) -> str:
        return self.record["Name"].lstrip("/")

    @property
    def state(self) -> dict:
        return self.record["State"]

    @property
    def running(self) -> bool:
        return self.state["Running"]

    def save(self) -> None:
        tmp = os.path.join(self.dir, ".container.json.tmp")
        with open(tmp, "w") as f:
            json.dump(self.record, f, indent=1)
        os.rename(tmp, os.path.join(self.dir, "container.json"))

    def path(self, name: str) -> str:
        return os.path.join(self.dir, name)


class Engine(ContainerArchives, Renaming, SystemUsage):
    def __init__(self, data_root: str | None = None, run_root: str | None = None) -> None:
        self.data_root = data_root or settings.data_root()
        self.run_root = run_root or settings.run_root()
        self.store = image_service.open_store(self.data_root)
        self.containers_dir = image_service.containers_dir(self.store)
        self.runtime_root = os.path.join(self.run_root, "runtime")
        self.containers: dict[str, Container] = {}
        self.tails: dict[str, LogTail] = {}
        self.exited: dict[str, asyncio.Event] = {}
        self.removed: dict[str, asyncio.Event] = {}
        self.watched_pidfds: dict[int, str] = {}
        self.stdin_pipes: dict[str, int] = {}
        self.waiting_readers: dict[str, list[asyncio.Queue]] = {}  # attached before start
        self.attachments: dict[str, list[Attachment]] = {}
        self.removed_events: dict[str, list] = {}  # the last removed containers' events, by full ID
        self.sys = Syscalls()
        self.watcher: OutputWatcher | None = None  # inotify on the containers' output files
        self.exporting: set[str] = set()  # stopped containers whose layers an export has mounted
        self.lock = asyncio.Lock()  # one create/start at a time: they fork
        self.networks = Networks(self)
        self.event_log = EventLog()  # `docker events`: what happened to containers and images
        self.meter = Meter(self)  # `docker stats`: the running containers' cgroups, read
        self.execs = Execs(self)  # docker exec's instances (engine/exec.py)

    # --- start-up and shutdown ------------------------------------------------------------------------
    async def open(self) -> None:
        """Load every container and reconcile it with what the kernel says, after a restart or a crash."""
        os.makedirs(self.containers_dir, exist_ok=True)
        # One daemon per data root: two would both supervise and tail the same containers.
        import fcntl

        self.lock_fd = os.open(os.path.join(self.data_root, "minicontainerd.lock"),
                               os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(self.lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.lock_fd)
            raise RuntimeError(f"another minicontainerd is already using {self.data_root}") from None
        self.sys.prctl(PR_SET_CHILD_SUBREAPER, 1, detail="adopt every container's init, to learn its exit status")
        try:
            self.watcher = OutputWatcher(self.sys)
        except KernelError as e:
            log.warning("%s: containers' output will be polled instead", e)
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGCHLD, self._reap)
        for cid in os.listdir(self.containers_dir):
            directory = os.path.join(self.containers_dir, cid)
            try:
                with open(os.path.join(directory, "container.json")) as f:  # noqa: ASYNC230 - a small local file: not worth a thread
                    container = Container(json.load(f), directory)
            except (OSError, ValueError):
                continue  # a half-made container directory: nothing to recover
            self.containers[container.id] = container
            self.exited[container.id] = asyncio.Event()
        running = [c for c in self.containers.values() if c.running]
        self.networks.open(running)  # bridges, rules, DNS: again, for the containers still running
        for container in running:
            self._recover(container)

    def _recover(self, container: Container) -> None:
        state = lifecycle.State.load(self.runtime_root, container.id[:12]) if os.path.exists(
            os.path.join(self.runtime_root, container.id[:12], "state.json")) else None
        if state is not None and state.alive():
            # Still running: follow its output again, and learn of its end through a pidfd.
            if container.record["Config"].get("Tty"):
                # Its terminal's master side died with the previous daemon: nothing to follow.
                log.warning("container %s: its terminal was lost with the previous daemon; it runs on "
                            "without output or input (stop it, then start it again)", container.id[:12])
            else:
                tail = self.tails[container.id] = LogTail(container)
                tail.start(self.watcher, Syscalls())
            self._watch_pidfd(container, state.pid)
            return
        self._finish(container, 255, error="the container exited while minicontainerd was down: its exit "
                                            "status is unknown")

    async def close(self) -> None:
        """Stop running containers (as dockerd does without live-restore) and the tails."""
        running = [c for c in self.containers.values() if c.running]
        await asyncio.gather(*(self.stop(c.id, 2) for c in running), return_exceptions=True)
        self.networks.close()
        for tail in self.tails.values():
            tail.finish()
        if self.watcher is not None:
            self.watcher.close()
            self.watcher = None
        loop = asyncio.get_running_loop()
        loop.remove_signal_handler(signal.SIGCHLD)
        for fd in list(self.watched_pidfds):
            loop.remove_reader(fd)
            os.close(fd)

    # --- lookups --------------------------------------------------------------------------------------
    def get(self, ref: str) -> Container:
        """By full ID, by name, then by unique ID prefix: docker's order."""
        if ref in self.containers:
            return self.containers[ref]
        name = ref.lstrip("/")
        for c in self.containers.values():
            if c.name == name:
                return c
        matches = [c for c in self.containers.values() if c.id.startswith(ref)] if ref else []
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise InvalidParameter(f"multiple IDs found with provided prefix: {ref}")
        raise NotFound(f"No such container: {ref}")

    # --- create ---------------------------------------------------------------------------------------
    async def create(self, body: dict, name: str | None) -> dict:
        body = fields.check(body)  # before the image's look-up, as Docker: a 400 is no reason to pull
        image_name = body.get("Image") or ""
        looked_up = time.monotonic_ns()
        try:
            image = image_service.find(self.store, image_name)
        except LookupError:
            raise NotFound(f"No such image: {image_service._familiar(image_name)}") from None
        taken = {c.name for c in self.containers.values()}
        if name:
            try:
                names.check(name)
            except ValueError as e:
                raise InvalidParameter(str(e)) from None
            name = name.lstrip("/")
            if name in taken:
                raise names.in_use(name, next(c for c in self.containers.values() if c.name == name).id)
        else:
            name = names.generate(taken)
        host = body["HostConfig"]
        modes = namespaces.check(host, body.get("Hostname") or "", self.get)
        image_config = image.config.get("config") or {}
        cmd = body.get("Cmd") or None
        entrypoint = body.get("Entrypoint")
        opts = self._options(body, host)
        from minicontainer.engine.spec import program_args

        try:
            args = program_args(image_config, opts)
        except ValueError as e:
            raise InvalidParameter(str(e)) from None
        cid = secrets.token_hex(32)
        directory = os.path.join(self.containers_dir, cid)
        os.makedirs(directory, mode=0o700)
        with open(os.path.join(directory, "image"), "w") as f:  # noqa: ASYNC230 - a small local file: not worth a thread
            f.write(image.id)
        config = {**fields.shown(fields.CONFIG, body),
            "Hostname": body.get("Hostname") or (os.uname().nodename if modes["UTSMode"] == "host" else cid[:12]),
            "Domainname": "", "User": body.get("User") or "",
            "AttachStdin": bool(body.get("AttachStdin")), "AttachStdout": bool(body.get("AttachStdout", True)),
            "AttachStderr": bool(body.get("AttachStderr", True)), "Tty": bool(body.get("Tty")),
            "OpenStdin": bool(body.get("OpenStdin")), "StdinOnce": bool(body.get("StdinOnce")),
            "Env": body.get("Env") or [], "Cmd": cmd if cmd is not None else image_config.get("Cmd"),
            "Image": image_name, "Volumes": None, "WorkingDir": body.get("WorkingDir") or "",
            "Entrypoint": entrypoint if entrypoint is not None else image_config.get("Entrypoint"),
            "Labels": body.get("Labels") or {}, "StopSignal": body.get("StopSignal") or
            image_config.get("StopSignal") or "SIGTERM", "StopTimeout": body.get("StopTimeout"),
        }
        host_config = {**resources.with_default_swap(fields.shown(fields.HOST_CONFIG, host)), **modes}
        record = {
            "Id": cid, "Created": now_rfc3339(), "Path": args[0], "Args": args[1:],
            "State": {"Status": "created", "Running": False, "Paused": False, "Restarting": False,
                      "OOMKilled": False, "Dead": False, "Pid": 0, "ExitCode": 0, "Error": "",
                      "StartedAt": "0001-01-01T00:00:00Z", "FinishedAt": "0001-01-01T00:00:00Z"},
            "Image": image.id, "Name": "/" + name, "RestartCount": 0, "Driver": "overlay2", "Platform": "linux",
            "Config": config, "HostConfig": host_config,
            "ResolvConfPath": "", "HostnamePath": "", "HostsPath": "", "LogPath": os.path.join(directory, "json.log"),
            "Mounts": [], "NetworkSettings": {"Networks": {}, "Ports": {}},
            "GraphDriver": {"Name": "overlay2", "Data": {"UpperDir": os.path.join(directory, "upper"),
                                                         "WorkDir": os.path.join(directory, "work"),
                                                         "MergedDir": os.path.join(directory, "merged")}},
        }
        try:
            warnings = self.networks.on_create(body, host, record, self.get)
        except BaseException:
            shutil.rmtree(directory, ignore_errors=True)
            raise
        container = Container(record, directory)
        container.save()
        self._record_look_up(container, image_name, image, looked_up)
        self.containers[cid] = container
        self.exited[cid] = asyncio.Event()
        self.event_log.container(container, "create")
        return {"Id": cid, "Warnings": warnings}

    def _pid_of(self, ref: str) -> int:
        """A running container's PID 1 on the host (0 if it is not running): what --pid container: joins."""
        container = self.get(ref)
        return container.record["State"]["Pid"] if container.running else 0

    @staticmethod
    def _options(config: dict, host: dict) -> RunOptions:
        return RunOptions(command=config.get("Cmd") or None, entrypoint=config.get("Entrypoint"),
                          env=config.get("Env") or [], workdir=config.get("WorkingDir") or None,
                          user=config.get("User") or None, hostname=config.get("Hostname") or None,
                          resources=resources.limits(host), labels=config.get("Labels") or {})

    # --- start ----------------------------------------------------------------------------------------
    async def start(self, cid: str) -> None:
        container = self.get(cid)
        if container.running:
            raise NotModified("container already started")
        if container.id in self.exporting:
            raise Conflict(f"container {container.id} is being exported: start it when the export is done")
        async with self.lock:
            sys = Syscalls()  # this start's own trace: its kernel steps are the container's story
            try:
                self._start(container, sys)
            finally:
                self._record(container, sys)

    def _record(self, container: Container, sys: Syscalls) -> None:
        from minicontainer.observe.events import write_jsonl

        if os.path.isdir(container.dir):
            write_jsonl(container.path("events.jsonl"), sys.trace.events)

    def _record_look_up(self, container: Container, name: str, image, started_ns: int) -> None:
        """The container's story starts with its image, found in the local store (no kernel call)."""
        from minicontainer.observe.events import Trace, write_jsonl

        trace = Trace("daemon")
        layers = len(image.chain_ids)
        trace.record("look up", f"{name} in the local image store", image.id.split(":")[-1][:12],
                     start_ns=started_ns, detail=f"{layers} read-only layer{'s' * (layers != 1)}, stacked under "
                                                 "the container's own writable one when it starts")
        write_jsonl(container.path("events.jsonl"), trace.events)

    def events(self, cid: str, since_ns: int = 0) -> list[dict]:
        """The kernel steps recorded for a container (its starts, stops, kills), oldest first.

        A removed container's are kept a while: `run --rm --explain` asks after the removal."""
        from minicontainer.observe.events import read_jsonl

        try:
            events = read_jsonl(self.get(cid).path("events.jsonl"))
        except NotFound:
            if cid.lstrip("/") not in self.removed_events:
                raise
            events = self.removed_events[cid.lstrip("/")]
        return [e._asdict() for e in events if e.at_ns >= since_ns]

    def _start(self, container: Container, sys: Syscalls) -> None:
        image = self.store.image(container.record["Image"])
        cfg = container.record["Config"]
        host = container.record["HostConfig"]
        opts = self._options({**cfg, "Cmd": cfg["Cmd"], "Entrypoint": cfg["Entrypoint"]}, host)
        tty = bool(cfg.get("Tty"))
        network = self.networks.prepare(container)  # addresses, host ports, /etc/hosts...: fails before anything runs
        try:
            write_bundle(sys, self.store, image, opts, container.dir, cgroups_path=f"minicontainer-{container.id[:12]}",
                         hostname=cfg["Hostname"], args=[container.record["Path"], *container.record["Args"]],
                         init=bool(host.get("Init")), terminal=tty, console_size=host.get("ConsoleSize"),
                         network=network, share=lambda config: namespaces.apply(config, host, self._pid_of),
                         confine=lambda config: confinement.apply(config, host))
        except BaseException:
            self.networks.release(container, sys)
            raise
        stdin_r = -1
        master = -1
        try:
            if cfg.get("OpenStdin") and not tty:
                stdin_r, stdin_w = os.pipe()
                os.set_blocking(stdin_w, False)  # a full pipe must not block the event loop: we wait for room
                self.stdin_pipes[container.id] = stdin_w
            else:
                stdin_r = os.open("/dev/null", os.O_RDONLY)
            if tty:  # init replaces all three with its terminal; the output is read from the master side
                out, err = os.open("/dev/null", os.O_WRONLY), os.open("/dev/null", os.O_WRONLY)
            else:
                out = os.open(container.path("stdout.raw"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
                err = os.open(container.path("stderr.raw"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                state = lifecycle.create(sys, self.runtime_root, container.id[:12], container.dir,
                                         stdio=(stdin_r, out, err))
                try:
                    self.networks.plug(sys, container, state.pid)  # its namespace exists; its program waits
                except BaseException:
                    lifecycle.delete(sys, self.runtime_root, container.id[:12], force=True)
                    raise
                master = state.console_fd
                if master >= 0:
                    os.set_blocking(master, False)
                    if cfg.get("OpenStdin"):
                        self.stdin_pipes[container.id] = os.dup(master)  # typing = writing to the master side
                lifecycle.start(sys, self.runtime_root, container.id[:12])
            finally:
                for fd in (stdin_r, out, err):
                    os.close(fd)
        except RuntimeFailure as e:
            self.networks.release(container, sys)
            if master >= 0:
                os.close(master)
            self._close_stdin_pipe(container.id)
            overlay.unmount_rootfs(sys, container.dir, remove=False)
            container.state.update({"Status": "created", "Error": str(e), "ExitCode": e.exit_code})
            container.save()
            raise _runtime_error(e) from None
        except BaseException:
            self.networks.release(container, sys)
            if master >= 0:
                os.close(master)
            self._close_stdin_pipe(container.id)
            overlay.unmount_rootfs(sys, container.dir, remove=False)
            raise
        container.state.update({"Status": "running", "Running": True, "Pid": state.pid, "ExitCode": 0,
                                "Error": "", "StartedAt": now_rfc3339(), "FinishedAt": "0001-01-01T00:00:00Z",
                                "OOMKilled": False})
        container.save()
        self.exited.setdefault(container.id, asyncio.Event()).clear()  # waiters for its next exit keep theirs
        tail = self.tails[container.id] = TerminalTail(container, master) if master >= 0 else LogTail(container)
        tail.readers += self.waiting_readers.pop(container.id, [])  # clients attached before the start
        for attachment in self.attachments.get(container.id, []):
            attachment.flush_stdin()  # what `docker run -i` sent before the start
        tail.start(self.watcher, sys)
        self.event_log.container(container, "start")
        self._reap()  # in case it already ended

    # --- exits ----------------------------------------------------------------------------------------
    def _reap(self) -> None:
        """SIGCHLD: collect every child that ended; those that are containers' inits finish them."""
        by_pid = {c.state["Pid"]: c for c in self.containers.values() if c.running}
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            container = by_pid.get(pid)
            code = os.waitstatus_to_exitcode(status)
            if container is not None:
                self._finish(container, 128 - code if code < 0 else code)
            else:
                self.execs.reaped(pid, 128 - code if code < 0 else code)  # an exec'd process, or nobody's

    def _watch_pidfd(self, container: Container, pid: int) -> None:
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            self._finish(container, 255, error="the container exited while minicontainerd was restarting")
            return
        self.watched_pidfds[fd] = container.id

        def ended() -> None:
            asyncio.get_running_loop().remove_reader(fd)
            os.close(fd)
            del self.watched_pidfds[fd]
            if container.running:
                self._finish(container, 255, error="exit status unknown: the container ended after a restart "
                                                   "of minicontainerd, which was no longer its parent")

        asyncio.get_running_loop().add_reader(fd, ended)

    def _finish(self, container: Container, code: int, *, error: str = "") -> None:
        """The container's init has exited: record how, free its cgroup, mount and runtime state."""
        oom = False
        sys = Syscalls()
        sys.trace.record("exit", f"PID 1 of {container.name}", f"code {code}",
                         detail="SIGCHLD: the daemon, as subreaper, collected its exit status" if not error else error)
        try:
            state = lifecycle.State.load(self.runtime_root, container.id[:12])
            if state.cgroup:
                from minicontainer.kernel.cgroups import cgroup_from_state

                oom = bool(cgroup_from_state(sys, state.cgroup).stats().oom_kills)
                if oom:
                    sys.trace.record("oom-kill", f"a process of {container.name}", "killed", detail=(
                        "the memory cgroup counted an OOM kill: the container reached its memory limit, the "
                        "kernel could reclaim no more, and SIGKILLed a process (so: exit code 137, OOMKilled)"))
            lifecycle.delete(sys, self.runtime_root, container.id[:12], force=True)
        except Exception as e:  # noqa: BLE001 - recorded: the container still has to be marked exited
            error = error or f"cleaning up: {e}"
        tail = self.tails.pop(container.id, None)
        if tail is not None:
            tail.finish()
        self.meter.forget(container.id)
        self._close_stdin_pipe(container.id)
        overlay.unmount_rootfs(sys, container.dir, remove=False)
        self.networks.release(container, sys)
        self._record(container, sys)
        container.state.update({"Status": "exited", "Running": False, "Paused": False, "Pid": 0, "ExitCode": code,
                                "OOMKilled": oom, "Error": error, "FinishedAt": now_rfc3339()})
        container.save()
        if oom:
            self.event_log.container(container, "oom")
        ran = parse_time(container.state["FinishedAt"]) - parse_time(container.state["StartedAt"])
        self.event_log.container(container, "die", exitCode=code, execDuration=max(0, int(ran)))
        self.exited.setdefault(container.id, asyncio.Event()).set()
        if container.record["HostConfig"].get("AutoRemove"):
            asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(self.remove(container.id, True)))

    # --- wait, stop, kill, restart, remove -------------------------------------------------------------
    async def wait(self, cid: str, condition: str = "not-running") -> dict:
        container = self.get(cid)
        if condition == "removed":
            event = self.removed.setdefault(container.id, asyncio.Event())
            if not container.running and container.state["Status"] != "created" and \
                    not container.record["HostConfig"].get("AutoRemove"):
                return {"StatusCode": container.state["ExitCode"], "Error": None}
            await event.wait()
        elif condition == "next-exit" or container.running or container.state["Status"] == "created":
            event = self.exited[container.id]
            if event.is_set():
                event.clear()
            await event.wait()
        return {"StatusCode": container.state["ExitCode"], "Error": None}

    async def stop(self, cid: str, timeout: int | None = None) -> None:
        """StopSignal, then SIGKILL after the grace period.

        A namespace's PID 1 gets no signal it has no handler for (the kernel protects init), so
        ``sleep 60`` as PID 1 ignores SIGTERM and is killed when the grace period runs out (137).
        With ``--init``, tini is PID 1: it forwards SIGTERM to the program, which dies at once (143).
        """
        container = self.get(cid)
        if not container.running:
            raise NotModified("container already stopped")
        if timeout is None:
            timeout = container.record["Config"].get("StopTimeout") or DEFAULT_STOP_TIMEOUT
        stop_signal = signal_number(container.record["Config"].get("StopSignal"), signal.SIGTERM)
        sys = Syscalls()
        pid = container.state["Pid"]
        handled = _handles(pid, stop_signal)
        self._signal(container, stop_signal, sys)
        t0 = time.monotonic_ns()
        try:
            await asyncio.wait_for(self.exited[container.id].wait(), timeout)
            sys.trace.record("wait", f"PID 1 ({pid}) to exit, up to {timeout} s", "exited", start_ns=t0,
                             detail=f"{signal.Signals(stop_signal).name} ended it")
        except TimeoutError:
            why = (f"PID 1 has a handler for {signal.Signals(stop_signal).name} but did not exit in time" if handled
                   else f"the kernel drops signals a namespace's PID 1 has no handler for: "
                        f"{signal.Signals(stop_signal).name} never reached it (--init puts tini there to forward it)")
            sys.trace.record("wait", f"PID 1 ({pid}) to exit, up to {timeout} s", "timed out", start_ns=t0,
                             detail=why)
            if container.running:
                self._signal(container, signal.SIGKILL, sys)
                await self.exited[container.id].wait()
        self._record(container, sys)
        self.event_log.container(container, "stop")

    def _signal(self, container: Container, sig: int, sys: Syscalls | None = None) -> None:
        try:
            lifecycle.kill(sys or self.sys, self.runtime_root, container.id[:12], sig)
        except RuntimeFailure:
            return  # it ended meanwhile
        self.event_log.container(container, "kill", signal=sig)
        pause.after_signal(self, container, sig, sys or self.sys)  # a paused container must thaw to die

    async def kill(self, cid: str, sig: str | None = None) -> None:
        container = self.get(cid)
        if not container.running:
            raise Conflict(f"Cannot kill container: {cid}: Container {container.id} is not running")
        sys = Syscalls()
        number = signal_number(sig, signal.SIGKILL)
        self._signal(container, number, sys)
        self._record(container, sys)
        if number == signal.SIGKILL:  # as dockerd: a KILL is answered once the container is gone (a moment)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.exited[container.id].wait(), 2)

    async def pause(self, cid: str) -> None:
        pause.pause(self, self.get(cid))

    async def unpause(self, cid: str) -> None:
        pause.unpause(self, self.get(cid))

    async def update(self, cid: str, body: dict) -> dict:
        return pause.update(self, self.get(cid), body)

    async def restart(self, cid: str, timeout: int | None = None) -> None:
        container = self.get(cid)
        if container.running:
            await self.stop(cid, timeout)
        await self.start(container.id)
        self.event_log.container(container, "restart")

    async def remove(self, cid: str, force: bool = False) -> None:
        container = self.get(cid)
        if container.id in self.exporting:
            raise Conflict(f"container {container.id} is being exported: remove it when the export is done")
        if container.running:
            if not force:
                raise Conflict(f"You cannot remove a running container {container.id}. Stop the container "
                               "before attempting removal or force remove")
            sys = Syscalls()
            self._signal(container, signal.SIGKILL, sys)
            self._record(container, sys)
            await self.exited[container.id].wait()
        overlay.unmount_rootfs(self.sys, container.dir, remove=False)
        from minicontainer.observe.events import read_jsonl

        # by ID and by name: `rm --explain NAME` asks after the removal
        self.removed_events[container.id] = self.removed_events[container.name] = \
            read_jsonl(container.path("events.jsonl"))
        while len(self.removed_events) > 200:
            self.removed_events.pop(next(iter(self.removed_events)))
        shutil.rmtree(container.dir, ignore_errors=True)
        self.containers.pop(container.id, None)
        self.removed.setdefault(container.id, asyncio.Event()).set()
        self.event_log.container(container, "destroy")

    async def prune(self, filters: dict | None = None) -> dict:
        """``container prune``: every stopped container (with ``label`` filters: those that match)."""
        filters = self._checked_filters(filters, PRUNE_FILTERS)
        deleted, freed = [], 0
        for container in list(self.containers.values()):
            if not container.running and self._matches(container, filters):
                freed += disk_used(container.path("upper"))
                await self.remove(container.id)
                deleted.append(container.id)
        self.event_log.emit("container", "prune", "", {"reclaimed": freed})
        return {"ContainersDeleted": deleted or None, "SpaceReclaimed": freed}

    # --- looking at containers -------------------------------------------------------------------------
    def inspect(self, cid: str) -> dict:
        return self.get(cid).record

    def list(self, all: bool = False, filters: dict | None = None, limit: int | None = None) -> list[dict]:
        filters = self._checked_filters(filters, LIST_FILTERS)
        out = []
        for c in sorted(self.containers.values(), key=lambda c: c.record["Created"], reverse=True):
            if not all and not c.running and not filters.get("status"):
                continue
            if not self._matches(c, filters):
                continue
            out.append(self._summary(c))
        return out[:limit] if limit and limit > 0 else out

    @staticmethod
    def _checked_filters(filters: dict | None, allowed: tuple[str, ...]) -> dict[str, list[str]]:
        """Docker refuses a filter it does not know (rather than ignore it and list everything)."""
        checked: dict[str, list[str]] = {}
        for key, values in (filters or {}).items():
            values = [str(v) for v in values] if isinstance(values, (list, dict)) else [str(values)]
            if key not in allowed:
                raise InvalidParameter(f"invalid filter '{key}'")
            for v in values:
                if key == "status" and v not in STATUSES or key == "exited" and not v.lstrip("-").isdigit():
                    raise InvalidParameter(f"invalid filter '{key}={v}'")
                if key == "until":
                    _until(v)  # refused now, even if nothing is there to compare it with
                if key == "name":
                    try:
                        re.compile(v)
                    except re.error as e:
                        raise InvalidParameter(f"invalid filter 'name={v}': {e}") from None
            checked[key] = values
        return checked

    def _matches(self, c: Container, filters: dict) -> bool:
        for key, values in filters.items():
            if key == "status" and c.state["Status"] not in values:
                return False
            if key == "exited" and (c.running or c.state.get("StartedAt", "").startswith("0001")
                                    or str(c.state.get("ExitCode")) not in values):
                return False  # only containers that ran and ended: a created one has no exit code
            if key == "label" and not all(_has_label(c.record["Config"].get("Labels") or {}, v) for v in values):
                return False
            if key == "label!" and any(_has_label(c.record["Config"].get("Labels") or {}, v) for v in values):
                return False
            if key == "until" and not all(parse_time(c.record["Created"]) < _until(v) for v in values):
                return False
            # name=: a regular expression, matched against the name with and without its "/"
            if key == "name" and not any(re.search(v, "/" + c.name) or re.search(v, c.name) for v in values):
                return False
            if key == "id" and not any(c.id.startswith(v) for v in values):
                return False
            if key == "ancestor":
                wanted = set()
                for v in values:
                    try:
                        wanted.add(image_service.find(self.store, v).id)
                    except LookupError:
                        continue
                if c.record["Image"] not in wanted:
                    return False
        return True

    def _summary(self, c: Container) -> dict:
        command = " ".join([c.record["Path"], *c.record["Args"]])
        return {"Id": c.id, "Names": ["/" + c.name], "Image": c.record["Config"]["Image"],
                "ImageID": c.record["Image"], "Command": command, "Created": int(parse_time(c.record["Created"])),
                "Ports": self.networks.summary_ports(c), "Labels": c.record["Config"].get("Labels") or {},
                "State": c.state["Status"], "Status": self._status_text(c),
                "HostConfig": {"NetworkMode": c.record["HostConfig"]["NetworkMode"]},
                "NetworkSettings": {"Networks": c.record["NetworkSettings"]["Networks"]}, "Mounts": []}

    @staticmethod
    def _status_text(c: Container) -> str:
        s = c.state
        if s["Running"]:
            return "Up " + human_duration(time.time() - parse_time(s["StartedAt"])) + \
                (" (Paused)" if s.get("Paused") else "")
        if s["Status"] == "created":
            return "Created"
        return f"Exited ({s['ExitCode']}) {human_duration(time.time() - parse_time(s['FinishedAt']))} ago"

    async def logs(self, cid: str, *, stdout: bool = True, stderr: bool = True, follow: bool = False,
                   since: float = 0, until: float = 0, timestamps: bool = False,
                   tail: str = "all") -> AsyncIterator[tuple[int, bytes]]:
        container = self.get(cid)
        live = self.tails.get(container.id)
        queue: asyncio.Queue | None = None
        if live is not None:
            live.poll()
            if follow:
                queue = asyncio.Queue()
                live.readers.append(queue)
        wanted = {1: stdout, 2: stderr}
        entries = []
        try:
            with open(container.path("json.log")) as f:  # noqa: ASYNC230 - a small local file: not worth a thread
                for line in f:
                    entry = json.loads(line)
                    stream = 1 if entry["stream"] == "stdout" else 2
                    t = parse_time(entry["time"])
                    if wanted[stream] and (not since or t >= since) and (not until or t <= until):
                        entries.append((stream, entry["log"].encode(), entry["time"]))
        except FileNotFoundError:
            pass
        if tail not in ("all", "", None):
            n = int(tail)
            entries = entries[-n:] if n > 0 else []
        for stream, data, stamp in entries:
            yield stream, (stamp.encode() + b" " + data) if timestamps else data
        if queue is None:
            return
        while True:
            item = await queue.get()
            if item is None:
                return
            stream, data, stamp = item
            if wanted[stream]:
                yield stream, (stamp.encode() + b" " + data) if timestamps else data

    def top(self, cid: str, ps_args: str | None = None) -> dict:
        container = self.get(cid)
        if not container.running:
            raise Conflict(f"Container {container.id} is not running")
        from minicontainer.kernel.cgroups import cgroup_from_state

        state = lifecycle.State.load(self.runtime_root, container.id[:12])
        pids = sorted(cgroup_from_state(self.sys, state.cgroup).pids())
        rows = []
        for pid in pids:
            try:
                with open(f"/proc/{pid}/stat") as f:
                    stat = f.read()
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
                uid = os.stat(f"/proc/{pid}").st_uid
            except OSError:
                continue
            stat_fields = stat[stat.rindex(")") + 2:].split()  # stat_fields[0] is stat(5)'s field 3, "state"
            ticks = os.sysconf("SC_CLK_TCK")
            cpu = (int(stat_fields[11]) + int(stat_fields[12])) // ticks
            started = _boot_time() + int(stat_fields[19]) / ticks  # field 22: start time, in ticks since boot
            rows.append([_user_name(uid), str(pid), stat_fields[1], "0", time.strftime("%H:%M", time.localtime(started)),
                         "?", time.strftime("%H:%M:%S", time.gmtime(cpu)),
                         cmd or stat[stat.index("(") + 1:stat.rindex(")")]])
        return {"Titles": ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"], "Processes": rows}

    async def export(self, cid: str) -> AsyncIterator[bytes]:
        """``docker export``: the container's filesystem as one tar, its layers flattened (what
        ``import`` takes back).

        A running container's ``merged/`` is read as it is (should it exit meanwhile, its unmount
        is lazy: the export reads on).  A stopped one's layers are mounted for the time of the export,
        all of it in the export's thread, and ``start`` and ``rm`` wait their turn (409) meanwhile."""
        import tarfile

        container = self.get(cid)
        if container.id in self.exporting:
            raise Conflict(f"container {container.id} is being exported already")
        loop = asyncio.get_running_loop()
        mount = not container.running
        if mount:
            self.exporting.add(container.id)
        lowerdirs = self.store.lowerdirs(self.store.image(container.record["Image"])) if mount else []

        def write(out) -> None:
            sys = Syscalls()
            try:
                root = overlay.mount_rootfs(sys, lowerdirs, container.dir) if mount else container.path("merged")
                # Read through a descriptor of the root, not its path: should the container exit and
                # its filesystem be detached meanwhile, /proc/self/fd/N still leads into it.
                root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
                try:
                    top = f"/proc/self/fd/{root_fd}"
                    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                        for entry in sorted(os.listdir(top)):
                            tar.add(os.path.join(top, entry), arcname=entry)  # symlinks stay links
                finally:
                    os.close(root_fd)
                    if mount:
                        overlay.unmount_rootfs(sys, container.dir, remove=False)
            finally:
                if mount:
                    loop.call_soon_threadsafe(self.exporting.discard, container.id)

        async for chunk in output_of(write):
            yield chunk

    async def commit(self, cid: str, **options) -> dict:
        """``docker commit``: see :mod:`minicontainer.engine.commit`."""
        from minicontainer.engine.commit import commit_container

        return {"Id": (await commit_container(self, self.get(cid), **options)).id}

    async def prune_build_cache(self, filters: dict | None = None, all: bool = False) -> dict:
        """``docker builder prune``: see :mod:`minicontainer.engine.build_cache`."""
        from minicontainer.engine.build_cache import BuildCache

        kept = self._kept_by_prune(self._checked_filters(filters, ("label", "label!", "until")))
        removed, freed = await asyncio.get_running_loop().run_in_executor(
            None, lambda: BuildCache(self.store).prune(kept, forget_all=all))
        return {"CachesDeleted": removed or None, "SpaceReclaimed": freed}

    def build(self, upload: AsyncIterator[bytes], options) -> AsyncIterator[dict]:
        """``docker build``: see :mod:`minicontainer.engine.build`."""
        from minicontainer.engine.build import build

        return build(self, upload, options)

    def changes(self, cid: str) -> list[dict]:
        container = self.get(cid)
        image = self.store.image(container.record["Image"])
        kinds = {"C": 0, "A": 1, "D": 2}
        return [{"Path": path, "Kind": kinds[kind]}
                for kind, path in overlay.diff(container.dir, self.store.lowerdirs(image))]

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

    # --- images ---------------------------------------------------------------------------------------
    async def pull(self, image: str, tag: str | None, platform_name: str | None = None,
                   auth: dict | None = None, explain: bool = False) -> AsyncIterator[dict]:
        """Progress messages as docker's; with ``explain`` (ours), ``{"explain": event}`` for each HTTP
        exchange with the registry too.  The credentials are the client's (``auth``), or none: the
        daemon never lends its own login to whoever can reach its socket."""
        name = f"{image}:{tag}" if tag and "@" not in image and ":" not in image.rsplit("/", 1)[-1] else image
        async for msg in progress_of(lambda progress: image_service.pull(
                name, self.store, platform=platform_name, progress=progress, auth=auth or {},
                explain=(lambda ev: progress({"explain": ev._asdict()})) if explain else None)):
            yield msg
        self.event_log.pulled(name)

    async def push(self, image: str, tag: str | None, auth: dict | None = None) -> AsyncIterator[dict]:
        name = f"{image}:{tag}" if tag and ":" not in image.rsplit("/", 1)[-1] else image
        try:
            image_service.find(self.store, name)
        except LookupError:
            raise NotFound(f"An image does not exist locally with the tag: {image_service._familiar(name)}") from None
        async for msg in progress_of(lambda progress: image_service.push(
                name, self.store, progress=progress, auth=auth or {})):
            yield msg

    # --- image archives (save, load, import) -------------------------------------------------------
    async def save(self, names: list[str], fmt: str = "docker-archive") -> AsyncIterator[bytes]:
        """``docker save``'s tar, as it is written.  Unknown names fail before the first byte (404)."""
        from minicontainer.image import archive

        try:
            archive.select(self.store, names)
        except LookupError as e:
            raise NotFound(str(e).strip("'\"")) from None
        except ValueError as e:
            raise InvalidParameter(str(e)) from None
        async for chunk in output_of(lambda out: archive.save(self.store, names, out, format=fmt)):
            yield chunk

    async def load(self, upload: AsyncIterator[bytes], quiet: bool = False) -> AsyncIterator[dict]:
        """``docker load``: the tar streams in from the client while the thread unpacks it."""
        from minicontainer.image import archive

        def work(progress: Callable[[dict], None]) -> None:
            shown = (lambda msg: "stream" in msg and progress(msg)) if quiet else progress
            try:
                archive.load(self.store, reader, progress=shown)
            finally:
                reader.close()

        async for msg in self._with_upload(upload, reader := ChunkReader(), work):
            yield msg

    async def import_image(self, upload: AsyncIterator[bytes], reference: str | None, changes: list[str],
                           message: str) -> AsyncIterator[dict]:
        """``docker import``: a root filesystem's tar becomes a one-layer image; the last message is its ID."""
        from minicontainer.image import archive

        def work(progress: Callable[[dict], None]) -> None:
            try:
                image = archive.import_tarball(self.store, reader, reference=reference, changes=changes,
                                               message=message)
            finally:
                reader.close()
            progress({"status": image.id})

        async for msg in self._with_upload(upload, reader := ChunkReader(), work):
            yield msg

    @staticmethod
    async def _with_upload(upload: AsyncIterator[bytes], reader: ChunkReader,
                           work: Callable[[Callable[[dict], None]], None]) -> AsyncIterator[dict]:
        async with fed(reader, upload):
            async for msg in progress_of(work):
                yield msg

    def images(self, all: bool = False, filters: dict | None = None) -> list[dict]:
        """``docker images``' rows; ``filters``: dangling=true|false, reference=GLOB (``busy*``,
        ``busybox:1.*``), label=KEY[=VALUE]."""
        import fnmatch

        from minicontainer.engine.build_cache import BuildCache

        filters = self._checked_filters(filters, IMAGE_FILTERS)
        out = []
        builds = BuildCache(self.store)
        images = self.store.images()
        parents = builds.parents(images)
        for image in images:
            if not all and not image.repo_tags and image.id in parents:
                continue  # a build step's image, under the next step's: `images -a` lists it
            config = image.config
            tags = [":".join(image_service.familiar_repository(t)) for t in image.repo_tags]
            labels = (config.get("config") or {}).get("Labels") or {}
            dangling = not tags and image.id not in parents  # a parent is needed: not dangling
            if "dangling" in filters and dangling != (filters["dangling"][0].lower() in ("true", "1")):
                continue
            if "reference" in filters:  # only the matching tags are listed, as dockerd does
                patterns = [image_service.familiar_pattern(p) for p in filters["reference"]]
                tags = [t for t in tags if any(fnmatch.fnmatchcase(t, pattern) or fnmatch.fnmatchcase(
                    t.rsplit(":", 1)[0], pattern) for pattern in patterns)]
                if not tags:
                    continue
            if "label" in filters and not all(_has_label(labels, want) for want in filters["label"]):
                continue
            out.append({"Id": image.id, "ParentId": builds.parent_of(image.id), "RepoTags": tags,
                        "RepoDigests": list(image.repo_digests), "Created": int(parse_time(image.created)),
                        "Size": image.size, "SharedSize": -1, "VirtualSize": image.size,
                        "Labels": labels, "Containers": -1})
        return out

    def image_inspect(self, name: str) -> dict:
        from minicontainer.engine.build_cache import BuildCache

        try:
            data = image_service.inspect_json(image_service.find(self.store, name))
        except LookupError:
            raise NotFound(f"No such image: {name}") from None
        data["Parent"] = BuildCache(self.store).parent_of(data["Id"])  # what it was built or committed from
        return data

    def image_history(self, name: str) -> list[dict]:
        data = self.image_inspect(name)
        image = image_service.find(self.store, name)
        history = image.config.get("history") or []
        # Each history entry that made a layer (not "empty_layer") gets that layer's size, in order.
        sizes = iter([self.store.layer(c).size for c in image.chain_ids])
        sized = [0 if h.get("empty_layer") else next(sizes, 0) for h in history]
        return [{"Id": data["Id"] if i == len(history) - 1 else "<missing>",
                 "Created": int(parse_time(h.get("created", ""))), "CreatedBy": h.get("created_by", ""),
                 "Tags": data["RepoTags"] if i == len(history) - 1 else None, "Size": sized[i],
                 "Comment": h.get("comment", "")} for i, h in reversed(list(enumerate(history)))]

    async def install_starter(self, name: str) -> dict:
        """A starter image built from this host's files (no registry needed), in a thread."""
        from minicontainer.image.starter import STARTERS, install_starter

        if name not in STARTERS:
            raise NotFound(f"no starter image '{name}' (there are: {', '.join(STARTERS)})")
        try:
            image = await asyncio.get_running_loop().run_in_executor(None, install_starter, self.store, name)
        except (OSError, RuntimeError) as e:  # e.g. redis without redis-server on the host
            raise InvalidParameter(f"cannot build the starter image '{name}': {e}") from None
        return {"Id": image.id, "RepoTags": [f"{name}:latest"], "Size": image.size}

    async def remove_image(self, name: str, force: bool = False, noprune: bool = False) -> list[dict]:
        """The record goes at once, on the loop (so no ``create`` can pick the image in between and
        have its layers collected); the garbage collection after it runs in a thread, because it
        waits for pulls, loads and imports in progress (they hold the store's lease).  ``noprune``:
        the untagged parents it leaves unneeded stay (``docker rmi --no-prune``)."""
        from minicontainer.engine.build_cache import BuildCache
        from minicontainer.image.reference import parse

        try:
            key = str(parse(name))
            self.store.resolve(key)
        except (ValueError, LookupError):
            key = name
        try:
            image_id = self.store.resolve(key).id
            lines = self.store.remove_image(key, force=force, in_use=image_service.in_use(self.store),
                                            parent_of=BuildCache(self.store).parent_of, prune_parents=not noprune)
        except LookupError:
            raise NotFound(f"No such image: {name}") from None
        except StoreError as e:
            raise Conflict(str(e)) from None
        await asyncio.get_running_loop().run_in_executor(None, self.store.gc)  # what no image refers to
        for line in lines:  # "Untagged: <ref>" and "Deleted: <id>", as docker reports each
            self.event_log.image("untag" if line.startswith("Untagged") else "delete", image_id, image_id)
        return [{verb: _familiar_ref(rest) if verb == "Untagged" else rest}
                for verb, _, rest in (line.partition(": ") for line in lines)]

    def tag_image(self, name: str, repo: str, tag: str | None) -> None:
        from minicontainer.image.reference import parse

        image = image_service.find(self.store, name)
        ref = parse(f"{repo}:{tag or 'latest'}")
        self.store.tag(image.id, str(ref))
        self.event_log.image("tag", image.id, ref.familiar())

    async def prune_images(self, filters: dict | None = None) -> dict:
        """``dangling=false`` (``image prune -a``): every image no container uses, not only the untagged.
        The records on the loop, the garbage collection in a thread, as :meth:`remove_image`."""
        from minicontainer.engine.build_cache import BuildCache

        filters = self._checked_filters(filters, IMAGE_PRUNE_FILTERS)
        dangling_only = filters.get("dangling", ["true"])[0].lower() not in ("false", "0")
        lines = self.store.prune(dangling_only=dangling_only, in_use=self._kept_by_prune(filters),
                                 parent_of=BuildCache(self.store).parent_of)
        result = await asyncio.get_running_loop().run_in_executor(None, self.store.gc)
        self.event_log.emit("image", "prune", "", {"reclaimed": getattr(result, "freed", 0)})
        return {"ImagesDeleted": [{verb: _familiar_ref(rest) if verb == "Untagged" else rest}
                                  for verb, _, rest in (x.partition(": ") for x in lines)] or None,
                "SpaceReclaimed": getattr(result, "freed", 0)}

    def _kept_by_prune(self, filters: dict[str, list[str]]) -> Callable[[str], bool]:
        """A prune's "keep this image" test: in use, or not among the images the filters name."""
        used = image_service.in_use(self.store)

        def kept(image_id: str) -> bool:
            image = self.store.image(image_id)
            labels = (image.config.get("config") or {}).get("Labels") or {}
            return used(image_id) or not (
                all(_has_label(labels, v) for v in filters.get("label", []))
                and not any(_has_label(labels, v) for v in filters.get("label!", []))
                and all(parse_time(image.created) < _until(v) for v in filters.get("until", [])))

        return kept

    # --- the system -----------------------------------------------------------------------------------
    def version(self) -> dict:
        u = os.uname()
        return {"Platform": {"Name": "minicontainer"}, "Version": VERSION, "ApiVersion": API_VERSION,
                "MinAPIVersion": MIN_API_VERSION, "GitCommit": "n/a", "GoVersion": f"python{platform.python_version()}",
                "Os": "linux", "Arch": {"x86_64": "amd64", "aarch64": "arm64"}.get(u.machine, u.machine),
                "KernelVersion": u.release, "BuildTime": "",
                "Components": [{"Name": "Engine", "Version": VERSION,
                                "Details": {"ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION,
                                            "Os": "linux", "KernelVersion": u.release}},
                               {"Name": "minicontainer-runtime", "Version": VERSION, "Details": {}}]}

    def info(self) -> dict:
        from minicontainer.kernel.cgroups.layout import detect

        u = os.uname()
        running = sum(c.running for c in self.containers.values())
        paused = sum(bool(c.state.get("Paused")) for c in self.containers.values())
        try:
            mode = detect().mode
        except Exception:  # noqa: BLE001 - info must answer even without cgroups
            mode = "unknown"
        with open("/proc/meminfo") as f:
            mem_total = int(f.readline().split()[1]) * 1024
        return {"ID": "", "Debug": log.isEnabledFor(logging.DEBUG), "Containers": len(self.containers),
                "ContainersRunning": running - paused, "ContainersPaused": paused,
                "ContainersStopped": len(self.containers) - running, "Images": len(self.store.images()),
                "Driver": "overlay2", "MemoryLimit": True, "SwapLimit": True, "CgroupDriver": "cgroupfs",
                "CgroupVersion": "2" if mode == "v2" else "1", "KernelVersion": u.release,
                "OperatingSystem": _os_name(), "OSType": "linux",
                "Architecture": u.machine, "NCPU": os.cpu_count(), "MemTotal": mem_total, "Name": u.nodename,
                "ServerVersion": VERSION, "DockerRootDir": self.data_root, "Runtimes": {"minicontainer-runtime": {}},
                "DefaultRuntime": "minicontainer-runtime", "LoggingDriver": "json-file", "Plugins": {},
                "Labels": [], "ExperimentalBuild": False, "Warnings": [f"cgroup layout: {mode}"] if mode == "hybrid"
                else []}


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


def _runtime_error(e: RuntimeFailure) -> Exception:
    from minicontainer.engine.errors import EngineError

    err = EngineError(f"failed to create task for container: {e}")
    err.exit_code = e.exit_code  # 126/127 for a program that cannot run, as docker reports it
    if e.exit_code in (126, 127):
        err.status = 400
    return err


def _handles(pid: int, sig: int) -> bool:
    """Does process ``pid`` catch ``sig`` (its bit in SigCgt of /proc/PID/status)?"""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("SigCgt:"):
                    return bool(int(line.split()[1], 16) & (1 << (sig - 1)))
    except OSError:
        pass
    return False


def _os_name() -> str:
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "Linux"


def _familiar_ref(text: str) -> str:
    """``docker.io/library/busybox:latest`` -> ``busybox:latest``: what dockerd answers an ``rmi`` with."""
    from minicontainer.image.reference import parse

    try:
        return parse(text).familiar()
    except ValueError:
        return text


def _boot_time() -> float:
    """When the machine booted (``btime`` in /proc/stat), in seconds since the epoch."""
    with open("/proc/stat") as f:
        return float(next(line.split()[1] for line in f if line.startswith("btime ")))


def _user_name(uid: int) -> str:
    """As ``ps -ef`` on the host shows it (Docker runs exactly that for ``top``)."""
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _until(text: str) -> float:
    from minicontainer.engine.clock import until_timestamp

    try:
        return until_timestamp(text)
    except ValueError as e:
        raise InvalidParameter(str(e)) from None


def _has_label(labels: dict, wanted: str) -> bool:
    """``label=KEY`` (present) or ``label=KEY=VALUE`` (with that value), as docker's filters read it."""
    key, eq, value = wanted.partition("=")
    return key in labels and (not eq or labels[key] == value)
