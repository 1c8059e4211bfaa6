"""A container's output: from the files the kernel writes into Docker's json-file log, and to the
clients following it (``logs -f``, ``attach``).

The program's stdout and stderr are ``stdout.raw`` and ``stderr.raw`` in its directory, opened by
the daemon and handed to the program as file descriptors 1 and 2: the kernel appends to them, and
no process of ours stands in between (so a daemon restart loses nothing).  The daemon has to learn
that something was written.  It could look every few milliseconds; fifty idle containers would then
keep it busy.  Instead it asks the kernel to tell it, with **inotify**::

    fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC)          # one for the whole daemon
    wd = inotify_add_watch(fd, ".../stdout.raw", IN_MODIFY)  # per file: a "watch descriptor"
    read(fd) -> struct inotify_event { int wd; uint32 mask, cookie, len; char name[len]; } ...

The fd becomes readable when a watched file is written to; the event names the watch, the watch
names the container, and the daemon reads what is new.  An idle container costs nothing at all.
(Where inotify is not available, e.g. its per-user limits are reached, the tail falls back to
looking: often while the program writes, rarely while it is quiet.)

The log itself is Docker's ``json-file`` driver: a JSON object per line (``{"log": "hi\\n",
"stream": "stdout", "time": "..."}``) in ``json.log``.  With ``--log-opt max-size=10m`` it is
*rotated* as Docker's is: a line that would take it past the size first moves ``json.log`` to
``json.log.1`` (``.1`` to ``.2``..., the oldest beyond ``max-file`` deleted), and ``logs`` reads the
rotated files, oldest first, before ``json.log``.  ``--log-driver none`` keeps no log at all: the
output still reaches attached clients, but ``logs`` has nothing to read.  (Before the log, the
kernel appends to the ``.raw`` files, which no rotation bounds yet.)
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import struct
import termios
from collections.abc import AsyncIterator, Callable
from typing import Protocol

from minicontainer.engine.clock import now_rfc3339
from minicontainer.kernel.syscalls import IN_CLOEXEC, IN_MODIFY, IN_NONBLOCK, KernelError, Syscalls
from minicontainer.units import parse_time

log = logging.getLogger(__name__)

POLL_INTERVAL = 0.02       # without inotify: seconds between looks while the program writes...
MAX_POLL_INTERVAL = 0.25   # ...growing to this while it writes nothing
STREAMS = ((1, "stdout.raw"), (2, "stderr.raw"))
MAX_PARTIAL_LINE = 16 * 1024  # a terminal line longer than this is logged in pieces, as Docker's are
_EVENT = struct.Struct("iIII")  # struct inotify_event, without its variable-length name


class HasFiles(Protocol):
    record: dict

    def path(self, name: str) -> str: ...


LOG_OPTIONS = {"json-file": ("max-size", "max-file"), "none": ()}  # the drivers and options honoured here


def check(host: dict) -> None:
    """``--log-driver`` and ``--log-opt``: json-file (with max-size, max-file) or none; anything else
    is refused by name (the engine writes no other log)."""
    from minicontainer.engine.errors import InvalidParameter
    from minicontainer.units import parse_bytes

    config = host.get("LogConfig") or {}
    driver, options = config.get("Type") or "json-file", config.get("Config") or {}
    if config and not config.get("Type"):  # options without a driver: the daemon's default fills it in, as dockerd's
        host["LogConfig"] = {**config, "Type": driver}
    if driver not in LOG_OPTIONS:
        raise InvalidParameter(f"logger: the log driver '{driver}' is not supported by this engine: it writes "
                               "json-file logs (--log-opt max-size, max-file) or none")
    for key in options:
        if key not in LOG_OPTIONS[driver]:
            raise InvalidParameter(f"unknown log opt '{key}' for {driver} log driver")
    try:
        size = parse_bytes(options["max-size"]) if "max-size" in options else None
        files = int(options.get("max-file", "1"))
    except ValueError as e:
        raise InvalidParameter(f"invalid log opt: {e}") from None
    if size is not None and size <= 0:
        raise InvalidParameter("max-size must be a positive number")
    if files < 1:
        raise InvalidParameter("max-file cannot be less than 1")
    # max-file without max-size is accepted, as dockerd accepts it: nothing rotates, so there is one file,
    # never more than max-file (docker-py's own tests send exactly that)


def _limits(container: HasFiles) -> tuple[str, int | None, int]:
    """The container's driver, max-size in bytes (None: no limit) and max-file."""
    from minicontainer.units import parse_bytes

    config = container.record["HostConfig"].get("LogConfig") or {}
    options = config.get("Config") or {}
    size = parse_bytes(options["max-size"]) if options.get("max-size") else None
    return config.get("Type") or "json-file", size, int(options.get("max-file") or 1)


def log_files(container: HasFiles) -> list[str]:
    """The log's files, oldest first: the rotated ones (``json.log.N`` ... ``json.log.1``), then ``json.log``."""
    rotated = []
    n = 1
    while os.path.exists(container.path(f"json.log.{n}")):
        rotated.append(container.path(f"json.log.{n}"))
        n += 1
    return [*reversed(rotated), container.path("json.log")]


def write_log(container: HasFiles, entries: list[dict]) -> None:
    """Append entries to the container's json-file log, rotating it as Docker does (none: nothing)."""
    driver, max_size, max_file = _limits(container)
    if driver == "none" or not entries:
        return
    path = container.path("json.log")
    size = os.path.getsize(path) if os.path.exists(path) else 0
    log_file = open(path, "ab")  # noqa: SIM115 - reopened at each rotation
    try:
        for entry in entries:
            line = (json.dumps(entry) + "\n").encode()
            if max_size is not None and size and size + len(line) > max_size:
                log_file.close()
                _rotate(container, max_file)
                log_file, size = open(path, "ab"), 0  # noqa: SIM115
            log_file.write(line)
            size += len(line)
    finally:
        log_file.close()


def _rotate(container: HasFiles, max_file: int) -> None:
    """json.log -> json.log.1 -> ... -> json.log.(max_file - 1); the oldest goes."""
    path = container.path("json.log")
    if max_file <= 1:
        os.truncate(path, 0)
        return
    with contextlib.suppress(FileNotFoundError):
        os.unlink(f"{path}.{max_file - 1}")
    for n in range(max_file - 2, 0, -1):
        with contextlib.suppress(FileNotFoundError):
            os.rename(f"{path}.{n}", f"{path}.{n + 1}")
    os.rename(path, f"{path}.1")


class LogTail:
    """Follows a running container's stdout.raw and stderr.raw into json.log, and to live readers."""

    def __init__(self, container: HasFiles) -> None:
        self.container = container
        self.offsets = self._load_offsets()
        self.partial = {1: b"", 2: b""}
        self.readers: list[asyncio.Queue] = []
        self.task: asyncio.Task | None = None      # the polling fallback
        self.watcher: OutputWatcher | None = None  # or the inotify watches
        self.watches: list[int] = []

    def _load_offsets(self) -> dict[int, int]:
        try:
            with open(self.container.path("log.offsets")) as f:
                data = json.load(f)
            return {1: data["stdout"], 2: data["stderr"]}
        except (OSError, ValueError, KeyError):
            return {1: 0, 2: 0}

    def poll(self, final: bool = False) -> bool:
        """Move what is new in the raw files into json.log (whole lines; at the end, the rest too).

        Returns whether there was anything new."""
        lines: list[tuple[int, bytes]] = []
        for stream, name in STREAMS:
            try:
                with open(self.container.path(name), "rb") as f:
                    f.seek(self.offsets[stream])
                    data = f.read()
            except FileNotFoundError:
                continue
            if not data and not (final and self.partial[stream]):
                continue
            self.offsets[stream] += len(data)
            data = self.partial[stream] + data
            *complete, rest = data.split(b"\n")
            lines += [(stream, line + b"\n") for line in complete]
            self.partial[stream] = rest
            if final and rest:
                lines.append((stream, rest))
                self.partial[stream] = b""
        if not lines:
            return False
        stamp = now_rfc3339()
        write_log(self.container, [{"log": line.decode("utf-8", "replace"), "stream": "stdout" if stream == 1
                                    else "stderr", "time": stamp} for stream, line in lines])
        with open(self.container.path("log.offsets"), "w") as f:
            json.dump({"stdout": self.offsets[1], "stderr": self.offsets[2]}, f)
        for queue in self.readers:
            for stream, line in lines:
                queue.put_nowait((stream, line, stamp))
        return True

    def start(self, watcher: OutputWatcher | None, sys: Syscalls) -> None:
        """Follow the files: through ``watcher`` (inotify) if it can, else by looking now and then.
        ``sys`` records the watches among the container's own kernel steps (``--explain``)."""
        if watcher is not None:
            try:
                watcher.watch(self, sys)
            except KernelError as e:
                log.warning("%s; following %s by polling instead", e, self.container.path(""))
            else:
                self.poll()  # what was written before the watches existed
                return
        self.task = asyncio.get_running_loop().create_task(self._poll_loop())

    async def _poll_loop(self) -> None:
        interval = POLL_INTERVAL
        while True:
            interval = POLL_INTERVAL if self.poll() else min(interval * 1.5, MAX_POLL_INTERVAL)
            await asyncio.sleep(interval)

    def finish(self) -> None:
        """The program ended: read the rest, tell the readers, stop following."""
        if self.task is not None:
            self.task.cancel()
            self.task = None
        if self.watcher is not None:
            self.watcher.unwatch(self)
        self.poll(final=True)
        for queue in self.readers:
            queue.put_nowait(None)  # end of output
        self.readers.clear()


class OutputWatcher:
    """One inotify instance for the output files of every running container."""

    def __init__(self, sys: Syscalls) -> None:
        self.sys = sys
        self.fd = sys.inotify_init1(IN_NONBLOCK | IN_CLOEXEC,
                                    detail="the daemon will be woken when a container writes output")
        self.tails: dict[int, LogTail] = {}  # watch descriptor -> the tail it wakes
        asyncio.get_running_loop().add_reader(self.fd, self._on_events)

    def watch(self, tail: LogTail, sys: Syscalls) -> None:
        tail.watcher = self
        try:
            for _, name in STREAMS:
                path = tail.container.path(name)
                if not os.path.exists(path):
                    continue
                wd = sys.inotify_add_watch(self.fd, path, IN_MODIFY,
                                           detail=f"wake the daemon when the program writes to its {name[:6]}")
                self.tails[wd] = tail
                tail.watches.append(wd)
        except KernelError:
            self.unwatch(tail)  # all or nothing: a half-watched tail is polled instead
            raise

    def unwatch(self, tail: LogTail) -> None:
        for wd in tail.watches:
            self.tails.pop(wd, None)
            try:
                Syscalls().inotify_rm_watch(self.fd, wd)  # not recorded: the container is gone
            except KernelError:
                pass  # the file was removed already, and its watch with it
        tail.watches.clear()
        tail.watcher = None

    def _on_events(self) -> None:
        try:
            data = os.read(self.fd, 64 * 1024)
        except BlockingIOError:
            return
        woken: dict[int, LogTail] = {}
        offset = 0
        while offset + _EVENT.size <= len(data):
            wd, _mask, _cookie, name_len = _EVENT.unpack_from(data, offset)
            offset += _EVENT.size + name_len
            if wd == -1:  # IN_Q_OVERFLOW: the kernel dropped events; look at every file
                woken.update((id(t), t) for t in self.tails.values())
            elif (tail := self.tails.get(wd)) is not None:
                woken[id(tail)] = tail  # many writes, one read of the files
        for tail in woken.values():
            tail.poll()

    def close(self) -> None:
        asyncio.get_running_loop().remove_reader(self.fd)
        os.close(self.fd)
        self.tails.clear()


class TerminalTail:
    """The output of a container with a terminal (``-t``): read from the terminal's master side, which
    the runtime handed over (the program's stdout and stderr are one terminal, as on any terminal:
    one stream, ``\r\n`` line ends).  Same readers as :class:`LogTail`, and the same json.log.

    Unlike the files of a container without a terminal, the master side lives in the daemon: if the
    daemon stops, the terminal hangs up (the program gets SIGHUP), as a shell's does when its window
    is closed."""

    def __init__(self, container: HasFiles, master: int) -> None:
        self.container = container
        self.master = master
        self.readers: list[asyncio.Queue] = []
        self.reading = False
        self.partial = b""  # the start of a line not ended yet: json.log gets whole lines, as Docker's

    def poll(self, final: bool = False) -> bool:
        """(As :meth:`LogTail.poll`.)  Nothing to look at: the terminal's output arrives by itself."""
        return False

    def start(self, watcher: OutputWatcher | None = None, sys: Syscalls | None = None) -> None:
        asyncio.get_running_loop().add_reader(self.master, self._read)
        self.reading = True

    def _read(self) -> None:
        """The master side is readable: the program wrote, or its terminal is gone."""
        data = self._take()
        if data == b"":
            self._stop_reading()
        elif data is not None:
            self._emit(data)

    def _take(self) -> bytes | None:
        """What the terminal has now; None if nothing yet; b"" once it is gone (EIO: every copy of its
        slave side is closed, so the program has ended)."""
        try:
            return os.read(self.master, 64 * 1024)
        except BlockingIOError:
            return None
        except OSError:
            return b""

    def _emit(self, data: bytes, final: bool = False) -> None:
        """To the attached clients as it comes (a terminal shows keys as they are echoed); to json.log
        a line at a time (and at the end, the rest), so that ``--tail`` and ``-t`` count lines."""
        stamp = now_rfc3339()
        for queue in self.readers:
            if data:
                queue.put_nowait((1, data, stamp))
        *lines, self.partial = (self.partial + data).split(b"\n")
        entries = [line + b"\n" for line in lines]
        if final or len(self.partial) > MAX_PARTIAL_LINE:  # a progress bar's \r never ends its line
            entries += [self.partial] if self.partial else []
            self.partial = b""
        write_log(self.container, [{"log": entry.decode("utf-8", "replace"), "stream": "stdout", "time": stamp}
                                   for entry in entries])

    def _stop_reading(self) -> None:
        if self.reading:
            asyncio.get_running_loop().remove_reader(self.master)
            self.reading = False

    def resize(self, rows: int, columns: int) -> None:
        """TIOCSWINSZ on the master side: the program gets SIGWINCH and reads its new size."""
        if rows > 0 and columns > 0 and self.master >= 0:
            fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))

    def finish(self) -> None:
        """The program ended: read what it left in the terminal, close it, tell the readers."""
        self._stop_reading()
        if self.master >= 0:
            while data := self._take():
                self._emit(data)
            self._emit(b"", final=True)
            os.close(self.master)
            self.master = -1
        for queue in self.readers:
            queue.put_nowait(None)
        self.readers.clear()


class LogsNotKept(Exception):
    """``logs`` of a container whose driver keeps none (dockerd: 501 Not Implemented)."""

    status = 501


class LogReading:
    """``GET /containers/{id}/logs``, for :class:`~minicontainer.engine.service.Engine` (which inherits
    this): json.log read from the start, then (``follow``) the live tail's new lines as they come."""

    tails: dict
    get: Callable

    def logs(self, cid: str, **options) -> AsyncIterator[tuple[int, bytes]]:
        """The container's output, as (stream, bytes) pairs; refused at once (before any reply) for a
        container whose driver keeps no log."""
        container = self.get(cid)
        if _limits(container)[0] == "none":
            raise LogsNotKept("configured logging driver does not support reading")
        return self._log_lines(container, **options)

    async def _log_lines(self, container, *, stdout: bool = True, stderr: bool = True, follow: bool = False,
                         since: float = 0, until: float = 0, timestamps: bool = False,
                         tail: str = "all") -> AsyncIterator[tuple[int, bytes]]:
        live = self.tails.get(container.id)
        queue: asyncio.Queue | None = None
        if live is not None:
            live.poll()
            if follow:
                queue = asyncio.Queue()
                live.readers.append(queue)
        wanted = {1: stdout, 2: stderr}
        entries = []
        for path in log_files(container):  # the rotated files first, oldest first
            try:
                with open(path) as f:  # noqa: ASYNC230 - small local files: not worth a thread
                    for line in f:
                        entry = json.loads(line)
                        stream = 1 if entry["stream"] == "stdout" else 2
                        t = parse_time(entry["time"])
                        if wanted[stream] and (not since or t >= since) and (not until or t <= until):
                            entries.append((stream, entry["log"].encode(), entry["time"]))
            except FileNotFoundError:
                continue
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
