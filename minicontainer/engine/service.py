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
import secrets
import shutil
import signal
import time

from minicontainer import config as settings
from minicontainer.engine import confinement, fields, names, namespaces, pause, process_settings, resources
from minicontainer.engine import images as image_service
from minicontainer.engine.archive import ContainerArchives
from minicontainer.engine.attach import Attaching, Attachment
from minicontainer.engine.clock import now_rfc3339
from minicontainer.engine.errors import Conflict, InvalidParameter, NotFound, NotModified
from minicontainer.engine.events import EventLog
from minicontainer.engine.exec import Execs
from minicontainer.engine.images import ImageService
from minicontainer.engine.listing import ContainerListing
from minicontainer.engine.logs import LogReading, LogTail, OutputWatcher, TerminalTail
from minicontainer.engine.mounts import ContainerMounts
from minicontainer.engine.names import Renaming
from minicontainer.engine.networks import Networks
from minicontainer.engine.processes import ContainerProcesses
from minicontainer.engine.restart import Restarts
from minicontainer.engine.spec import RunOptions, write_bundle
from minicontainer.engine.stats import Meter
from minicontainer.engine.system import SystemInfo, SystemUsage
from minicontainer.engine.volumes import VolumeStore, containers_using
from minicontainer.image import overlay
from minicontainer.kernel.syscalls import PR_SET_CHILD_SUBREAPER, KernelError, Syscalls
from minicontainer.runtime import lifecycle
from minicontainer.runtime.errors import RuntimeFailure
from minicontainer.units import parse_time

log = logging.getLogger(__name__)
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
        """Its program runs (a container waiting to restart says Running too, as Docker's, but has none)."""
        return self.state["Running"] and not self.state.get("Restarting")

    def save(self) -> None:
        tmp = os.path.join(self.dir, ".container.json.tmp")
        with open(tmp, "w") as f:
            json.dump(self.record, f, indent=1)
        os.rename(tmp, os.path.join(self.dir, "container.json"))

    def path(self, name: str) -> str:
        return os.path.join(self.dir, name)


class Engine(ContainerListing, Attaching, LogReading, ContainerProcesses, ContainerArchives, Renaming,
             ImageService, SystemUsage, SystemInfo):
    """The daemon's engine.  This module holds the containers' lifecycle; each other concept is a
    mixin of its own module, which the Engine inherits: listing.py (ps, container prune), attach.py,
    logs.py (the logs request), processes.py (top), archive.py (cp, export, diff), names.py (rename),
    images.py (the image requests), system.py (version, info, system df)."""

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
        self.volumes = VolumeStore(os.path.join(self.data_root, "volumes"), events=self.event_log,  # engine/volumes.py
                                   users=lambda name: containers_using(self.containers.values(), name))
        self.mounts = ContainerMounts(self)  # binds, volumes, tmpfs (engine/mounts.py)
        self.restarts = Restarts(self)  # restart policies (engine/restart.py)

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
        await self.restarts.daemon_started()

    def _recover(self, container: Container) -> None:
        state = lifecycle.State.load(self.runtime_root, container.id[:12]) if os.path.exists(
            os.path.join(self.runtime_root, container.id[:12], "state.json")) else None
        if state is not None and state.alive():
            # Still running: follow its output again, and learn of its end through a pidfd.
            self.mounts.recovered(container)  # its volumes are in use again
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
        self.restarts.daemon_stopping()
        running = [c for c in self.containers.values() if c.running]
        await asyncio.gather(*(self.stop(c.id, 2) for c in running), return_exceptions=True)
        self.networks.close()
        self.volumes.close()
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

    def inspect(self, cid: str) -> dict:
        return self.get(cid).record

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
        process_settings.check_groups(host, self.store.lowerdirs(image))  # --group-add's names, in the image
        mounts = self.mounts.plan(body, image)  # checked before anything is created
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
            "Image": image_name, "Volumes": body.get("Volumes") or None, "WorkingDir": body.get("WorkingDir") or "",
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
        container = Container(record, directory)
        try:
            warnings = self.networks.on_create(body, host, record, self.get)
            self.mounts.create(container, mounts, image)  # the volumes it names, made if missing
        except BaseException:
            shutil.rmtree(directory, ignore_errors=True)
            raise
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
    async def start(self, cid: str, by_user: bool = True) -> None:
        container = self.get(cid)
        if container.running:
            raise NotModified("container already started")
        if by_user:  # not a restart by policy: a waiting one is done now, and the count starts again
            self.restarts.cancel(container)
            self.restarts.started_by_user(container)
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
                         confine=lambda config: confinement.apply(config, host),
                         mounts=lambda config: self.mounts.apply(container, config, sys))
        except BaseException:
            self.networks.release(container, sys)
            self.mounts.stopped(container, sys)  # a failed start gives its volumes back
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
            self._undo_start(container, sys, master)
            container.state.update({"Status": "created", "Error": str(e), "ExitCode": e.exit_code})
            container.save()
            raise _runtime_error(e) from None
        except BaseException:
            self._undo_start(container, sys, master)
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

    def _undo_start(self, container: Container, sys: Syscalls, master: int) -> None:
        """A start that failed gives back what it had taken: its address and host ports, its volumes,
        its terminal and stdin, its root filesystem's mount."""
        self.networks.release(container, sys)
        self.mounts.stopped(container, sys)
        if master >= 0:
            os.close(master)
        self._close_stdin_pipe(container.id)
        overlay.unmount_rootfs(sys, container.dir, remove=False)

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
        self.mounts.stopped(container, sys)
        self._record(container, sys)
        container.state.update({"Status": "exited", "Running": False, "Paused": False, "Pid": 0, "ExitCode": code,
                                "OOMKilled": oom, "Error": error, "FinishedAt": now_rfc3339()})
        container.save()
        if oom:
            self.event_log.container(container, "oom")
        ran = parse_time(container.state["FinishedAt"]) - parse_time(container.state["StartedAt"])
        self.event_log.container(container, "die", exitCode=code, execDuration=max(0, int(ran)))
        self.restarts.exited(container)  # its restart policy
        self.exited.setdefault(container.id, asyncio.Event()).set()
        if container.record["HostConfig"].get("AutoRemove"):
            asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(self.remove(container.id, True, volumes=True)))

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
        if self.restarts.stopped_by_user(container):  # it was waiting to restart: it stays down
            self.event_log.container(container, "stop")
            return
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
        if self.restarts.stopped_by_user(container):  # it was waiting to restart: it stays down
            return
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

    async def remove(self, cid: str, force: bool = False, volumes: bool = False) -> None:
        """``rm`` (``-f``: a running one too; ``-v``/``volumes``: its anonymous volumes too)."""
        container = self.get(cid)
        if container.id in self.exporting:
            raise Conflict(f"container {container.id} is being exported: remove it when the export is done")
        self.restarts.refuse_removal(container, force)
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
        self.mounts.removed(container, volumes)
        self.removed.setdefault(container.id, asyncio.Event()).set()
        self.event_log.container(container, "destroy")


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
