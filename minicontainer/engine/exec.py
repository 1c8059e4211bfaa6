"""Exec instances: ``docker exec``'s processes, their streams and their exit codes.

An exec has two steps in the Engine API, as in Docker:

1. ``POST /containers/{id}/exec`` *creates* an instance: what to run, as whom, with which streams.
   Nothing runs yet; the reply is the instance's ID.
2. ``POST /exec/{id}/start`` runs it, through the OCI runtime's exec
   (:mod:`minicontainer.runtime.exec`: the process joins the container's namespaces and cgroup).
   Either *detached* (the reply comes once the process runs) or *attached*: the connection is
   hijacked and carries the process's stdin, stdout and stderr until it exits.

The process's output does not go to the container's log (``docker logs`` never shows an exec's):
it goes through pipes to the attached client only, or, with a terminal (``-t``), through the
terminal's master side, which the runtime hands to the daemon.  The daemon is a child subreaper, so
the exec'd process becomes its child when the runtime's exec stage exits: its exit status arrives
as SIGCHLD (:meth:`Execs.reaped`), and is recorded *before* the stream ends, because clients ask
for the exit code (``GET /exec/{id}/json``) as soon as they see the end.

An instance can be inspected after it exits; it is forgotten some minutes later, as Docker does.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import secrets
import struct
import termios
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from minicontainer.engine.errors import Conflict, InvalidParameter, NotFound
from minicontainer.engine.spec import resolve_user
from minicontainer.kernel.syscalls import Syscalls
from minicontainer.runtime import exec as runtime_exec
from minicontainer.runtime.errors import RuntimeFailure

if TYPE_CHECKING:
    from minicontainer.engine.service import Container, Engine

FORGET_AFTER_SECONDS = 300  # a finished exec can be inspected this long (moby collects them after minutes)
RESIZE_WAIT_SECONDS = 10    # a resize may arrive before the start has run the process: wait this long
READ_SIZE = 64 * 1024

# The exec-create body's fields, by their lower-case name (Go matches JSON names without regard to
# case, and docker-py sends "detachKeys").  Two mean nothing here, as in Docker: "container" (docker-py
# names the container the URL already names) and "detach" (the docker CLI sends it; whether the
# process is detached is decided when it starts).
CREATE_FIELDS = ("attachstdin", "attachstdout", "attachstderr", "tty", "consolesize", "detachkeys", "env",
                 "workingdir", "user", "privileged", "cmd", "container", "detach")


def fields(body: Any, known: tuple[str, ...], what: str) -> dict[str, Any]:
    """A JSON body's keys, lower-cased; a key we do not know is an error, not silently dropped."""
    if not isinstance(body, dict):
        raise InvalidParameter(f"{what}: the body must be a JSON object")
    out = {}
    for key, value in body.items():
        if key.lower() not in known:
            raise InvalidParameter(f"{what}: unknown field {key!r} (minicontainer understands "
                                   f"{', '.join(known)})")
        out[key.lower()] = value
    return out


def console_size(value: Any) -> tuple[int, int] | None:
    """``ConsoleSize`` is ``[rows, columns]``; absent, null or zeros: the terminal's default."""
    if not value:
        return None
    if not (isinstance(value, list) and len(value) == 2 and all(isinstance(n, int) and 0 <= n < 65536 for n in value)):
        raise InvalidParameter(f"ConsoleSize must be [rows, columns], not {value!r}")
    return (value[0], value[1]) if all(value) else None


class ExecInstance:
    """One exec: its configuration, and once started its process, streams and exit code.

    It is also what :func:`minicontainer.daemon.streams.attach_session` pumps: ``tty``, ``output``,
    ``write_stdin`` and ``close_stdin``."""

    def __init__(self, container: Container, config: dict) -> None:
        self.id = secrets.token_hex(32)
        self.container = container
        self.config = config
        self.tty: bool = config["tty"]
        self.started = False
        self.running = False
        self.exit_code: int | None = None
        self.pid = 0
        self.ended_at = 0.0
        self.attached = False          # somebody reads the output (an attached start)
        self.console_fd = -1           # with a terminal: its master side
        self.stdin_fd = -1             # where the client's input goes (a pipe, or the master side)
        self.outputs: dict[int, int] = {}  # descriptor -> stream (1 stdout, 2 stderr) still read
        self.queue: asyncio.Queue[tuple[int, bytes] | None] = asyncio.Queue()
        self.running_event = asyncio.Event()   # the process has been started (or failed to)

    # --- what the API shows -----------------------------------------------------------------------
    def inspect(self) -> dict:
        cmd = self.config["cmd"]
        return {
            "ID": self.id, "Running": self.running, "ExitCode": self.exit_code, "Pid": self.pid,
            "ProcessConfig": {"tty": self.tty, "entrypoint": cmd[0], "arguments": cmd[1:],
                              "privileged": False, "user": self.config["user"]},
            "OpenStdin": self.config["attachstdin"], "OpenStdout": self.config["attachstdout"],
            "OpenStderr": self.config["attachstderr"], "CanRemove": False,
            "ContainerID": self.container.id, "DetachKeys": self.config["detachkeys"],
        }

    # --- the stream (streams.Attachment) ----------------------------------------------------------
    @property
    def output(self) -> AsyncIterator[tuple[int, bytes]]:
        return self._output()

    async def _output(self) -> AsyncIterator[tuple[int, bytes]]:
        while (item := await self.queue.get()) is not None:
            yield item

    async def write_stdin(self, data: bytes) -> None:
        """Into the process's stdin (non-blocking: when it is full, wait until the process reads)."""
        while data and self.stdin_fd >= 0:
            try:
                data = data[os.write(self.stdin_fd, data):]
            except BlockingIOError:
                await _writable(self.stdin_fd)
            except OSError:
                return  # the process is gone, or closed its stdin: the bytes have nowhere to go

    async def close_stdin(self) -> None:
        """The client's input ended.  Without a terminal the process sees end-of-file (``cat`` ends);
        a terminal stays: closing its master side would hang up the session."""
        if not self.tty and self.stdin_fd >= 0:
            os.close(self.stdin_fd)
            self.stdin_fd = -1

    # --- the process's end ------------------------------------------------------------------------
    def _read(self, fd: int) -> None:
        """An output descriptor is readable: pass what is there on (or, unattached, drop it)."""
        try:
            data = os.read(fd, READ_SIZE)
        except BlockingIOError:
            return
        except OSError:  # EIO: every copy of the terminal's slave side is closed
            data = b""
        if not data:
            self._close_output(fd)
        elif self.attached:
            self.queue.put_nowait((self.outputs[fd], data))

    def _close_output(self, fd: int) -> None:
        if self.outputs.pop(fd, None) is not None:
            asyncio.get_running_loop().remove_reader(fd)
            os.close(fd)

    def finish(self, code: int) -> None:
        """The process exited: take what it left in the pipes, record the exit code, *then* end the
        stream (a client inspects the exec as soon as it sees the end)."""
        for fd in list(self.outputs):
            while fd in self.outputs:
                self._read(fd)
                if fd in self.outputs and not _readable_now(fd):
                    self._close_output(fd)  # a child it left behind may hold the pipe: do not wait for it
        self.exit_code = code
        self.running = False
        self.ended_at = time.monotonic()
        if self.stdin_fd >= 0:
            with contextlib.suppress(OSError):
                asyncio.get_running_loop().remove_writer(self.stdin_fd)
            os.close(self.stdin_fd)
            self.stdin_fd = -1
        if self.console_fd >= 0:
            os.close(self.console_fd)
            self.console_fd = -1
        self.queue.put_nowait(None)


class Execs:
    """The engine's exec instances (``Engine.execs``), by ID and, while they run, by PID."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.instances: dict[str, ExecInstance] = {}
        self.by_pid: dict[int, ExecInstance] = {}

    # --- create -----------------------------------------------------------------------------------
    def create(self, cid: str, body: Any) -> dict:
        container = self.engine.get(cid)
        self._forget_old()
        given = fields(body, CREATE_FIELDS, "exec create")
        cmd = given.get("cmd")
        if isinstance(cmd, str):
            cmd = [cmd]
        if not cmd or not isinstance(cmd, list) or not all(isinstance(a, str) for a in cmd):
            raise InvalidParameter("No exec command specified")
        self._check_running(container)
        if given.get("privileged"):
            raise InvalidParameter("exec --privileged: minicontainer runs exec'd processes with the container's "
                                   "own capabilities only (leave out --privileged)")
        env = given.get("env") or []
        if not isinstance(env, list) or not all(isinstance(e, str) and "=" in e for e in env):
            raise InvalidParameter(f"Env must be a list of KEY=value strings, not {env!r}")
        workdir = given.get("workingdir") or ""
        if workdir and not workdir.startswith("/"):
            raise InvalidParameter(f"the working directory '{workdir}' is invalid, it needs to be an absolute path")
        user = given.get("user") or ""
        if user:
            try:
                resolve_user(container.path("merged"), user)
            except ValueError as e:
                raise InvalidParameter(str(e)) from None
        detach_keys = given.get("detachkeys") or ""
        if detach_keys:
            from minicontainer.engine.detach import parse_detach_keys

            try:
                parse_detach_keys(detach_keys)
            except ValueError as e:
                raise InvalidParameter(str(e)) from None
        config = {"cmd": list(cmd), "env": env, "workingdir": workdir, "user": user, "tty": bool(given.get("tty")),
                  "attachstdin": bool(given.get("attachstdin")), "attachstdout": bool(given.get("attachstdout")),
                  "attachstderr": bool(given.get("attachstderr")), "detachkeys": detach_keys,
                  "consolesize": console_size(given.get("consolesize"))}
        instance = ExecInstance(container, config)
        self.instances[instance.id] = instance
        self._event(instance, f"exec_create: {' '.join(instance.config['cmd'])}")
        return {"Id": instance.id}

    def _event(self, instance: ExecInstance, action: str, **extra: object) -> None:
        """``docker events``: an exec's events are its container's, with the exec's ID."""
        self.engine.event_log.container(instance.container, action, execID=instance.id, **extra)

    def get(self, exec_id: str) -> ExecInstance:
        instance = self.instances.get(exec_id)
        if instance is None:
            raise NotFound(f"No such exec instance: {exec_id}")
        return instance

    def inspect(self, exec_id: str) -> dict:
        return self.get(exec_id).inspect()

    @staticmethod
    def _check_running(container: Container) -> None:
        if container.state.get("Paused"):
            raise Conflict(f"Container {container.id} is paused, unpause the container before exec")
        if not container.running:
            raise Conflict(f"container {container.id} is not running")

    def _forget_old(self) -> None:
        """Drop instances that ended long ago, and those of containers that are gone."""
        now = time.monotonic()
        for exec_id, instance in list(self.instances.items()):
            gone = instance.container.id not in self.engine.containers
            if gone and not instance.running or instance.ended_at and now - instance.ended_at > FORGET_AFTER_SECONDS:
                del self.instances[exec_id]

    # --- start ------------------------------------------------------------------------------------
    def check_startable(self, exec_id: str) -> ExecInstance:
        """What can be refused with an HTTP status, before a hijack: 404, 409."""
        instance = self.get(exec_id)
        self._check_running(instance.container)
        if instance.running:
            raise Conflict(f"Error: Exec command {exec_id} is already running")
        if instance.started:
            raise Conflict(f"Error: Exec command {exec_id} has already run")
        return instance

    def start(self, instance: ExecInstance, *, detach: bool, size: tuple[int, int] | None = None) -> None:
        """Run the process now (the fork and the runtime's handshake take milliseconds: done in the event
        loop, so that no SIGCHLD can be handled before the process is known by its PID)."""
        self.check_startable(instance.id)
        instance.started = True
        instance.attached = not detach
        config = instance.config
        process = self._process(instance, size or config["consolesize"])
        ours: list[int] = []   # descriptors the daemon keeps
        theirs: list[int] = []  # the process's ends: closed here once it has them
        sys = Syscalls()  # the exec's kernel steps (each setns...): the container's story, for --explain
        try:
            if instance.tty:
                # init of the exec replaces all three with its terminal: the output comes from the master side
                stdio = [os.open(os.devnull, os.O_RDWR) for _ in range(3)]
                theirs += stdio
            else:
                stdio = []
                for stream, wanted in ((0, config["attachstdin"]), (1, config["attachstdout"]),
                                       (2, config["attachstderr"])):
                    if wanted and not detach:
                        r, w = os.pipe()
                        mine, child = (w, r) if stream == 0 else (r, w)
                        os.set_blocking(mine, False)
                        ours.append(mine)
                        theirs.append(child)
                        stdio.append(child)
                        if stream == 0:
                            instance.stdin_fd = mine
                        else:
                            instance.outputs[mine] = stream
                    else:
                        fd = os.open(os.devnull, os.O_RDWR)
                        theirs.append(fd)
                        stdio.append(fd)
            started = runtime_exec.start(sys, self.engine.runtime_root, instance.container.id[:12],
                                         process, stdio=(stdio[0], stdio[1], stdio[2]))
        except BaseException as e:
            for fd in ours:
                os.close(fd)
            instance.outputs.clear()
            instance.stdin_fd = -1
            instance.exit_code = getattr(e, "exit_code", 126) if isinstance(e, RuntimeFailure) else 126
            instance.ended_at = time.monotonic()
            instance.running_event.set()
            raise
        finally:
            for fd in theirs:
                os.close(fd)
            self.engine._record(instance.container, sys)
        instance.pid = started.pid
        instance.running = True
        self.by_pid[started.pid] = instance
        loop = asyncio.get_running_loop()
        if started.console_fd >= 0:
            instance.console_fd = started.console_fd
            os.set_blocking(started.console_fd, False)
            master = os.dup(started.console_fd)  # its own descriptor, closed when the output ends
            instance.outputs[master] = 1
            if config["attachstdin"] and not detach:
                instance.stdin_fd = os.dup(started.console_fd)  # typing = writing to the master side
        for fd in instance.outputs:
            loop.add_reader(fd, instance._read, fd)
        instance.running_event.set()
        self._event(instance, f"exec_start: {' '.join(config['cmd'])}")

    def _process(self, instance: ExecInstance, size: tuple[int, int] | None):
        """The container's own process (capabilities, rlimits, env...) with the exec's command, env,
        working directory, user and terminal: what ``docker exec`` runs."""
        config = instance.config
        container = instance.container
        try:
            base = runtime_exec.container_process(self.engine.runtime_root, container.id[:12])
        except RuntimeFailure as e:
            raise Conflict(f"container {container.id} is not running ({e})") from None
        env = [e for e in base.env if not e.startswith("TERM=")]
        if instance.tty:
            env.append("TERM=xterm")  # as Docker gives every terminal
        elif any(e.startswith("TERM=") for e in container.record["Config"].get("Env") or []):
            env += [e for e in base.env if e.startswith("TERM=")]  # the user's own TERM stays
        uid = gid = groups = None
        if config["user"]:
            who = resolve_user(container.path("merged"), config["user"])
            uid, gid, groups = who.uid, who.gid, who.additional_gids
            # The container's HOME was its own user's; another user gets his passwd entry's, as runc
            # gives it, unless the container's or the exec's environment names one.
            if not any(e.startswith("HOME=") for e in (container.record["Config"].get("Env") or []) + config["env"]):
                env = [e for e in env if not e.startswith("HOME=")] + [f"HOME={who.home}"]
        return runtime_exec.process_for(base._replace(env=env), config["cmd"], env=config["env"],
                                        cwd=config["workingdir"] or None, uid=uid, gid=gid,
                                        additional_gids=groups, terminal=instance.tty, console_size=size)

    # --- while it runs ----------------------------------------------------------------------------
    async def resize(self, exec_id: str, rows: int, columns: int) -> None:
        instance = self.get(exec_id)
        if not (0 < rows < 65536 and 0 < columns < 65536):
            raise InvalidParameter(f"a terminal of {rows} rows and {columns} columns? (1 to 65535 each)")
        try:
            await asyncio.wait_for(instance.running_event.wait(), RESIZE_WAIT_SECONDS)
        except TimeoutError:
            raise RuntimeError("timeout waiting for exec session ready") from None
        if instance.console_fd >= 0:
            fcntl.ioctl(instance.console_fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))

    def reaped(self, pid: int, code: int) -> bool:
        """The daemon collected ``pid``'s exit status: if it is an exec's, that exec is finished."""
        instance = self.by_pid.pop(pid, None)
        if instance is None:
            return False
        instance.finish(code)
        self._event(instance, "exec_die", exitCode=code)
        return True

    def detached(self, instance: ExecInstance) -> None:
        """Its client left with the detach keys: the process runs on, its output goes nowhere now."""
        instance.attached = False
        self._event(instance, "exec_detach")


def _readable_now(fd: int) -> bool:
    import select

    return bool(select.select([fd], [], [], 0)[0])


async def _writable(fd: int) -> None:
    loop = asyncio.get_running_loop()
    ready = loop.create_future()
    loop.add_writer(fd, lambda: ready.done() or ready.set_result(None))
    try:
        await ready
    finally:
        loop.remove_writer(fd)
