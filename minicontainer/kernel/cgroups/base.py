"""What every cgroup is, whichever cgroup layout the host uses.

A *control group* is a directory in a special filesystem.  Writing a PID into its ``cgroup.procs``
file moves that process into the group; writing into the group's other files (the *knobs*:
``memory.max``, ``pids.max``...) sets limits that the kernel then enforces on every process in the
group and on all their descendants.  A container is, to the kernel, nothing more than processes in
some namespaces *plus* a cgroup like this.

Two generations of the interface exist side by side (see :mod:`.layout`):

* **cgroup v1** mounts one hierarchy per controller (``/sys/fs/cgroup/memory``,
  ``/sys/fs/cgroup/pids``...), so one container's cgroup is several directories, one per hierarchy.
  :class:`~minicontainer.kernel.cgroups.v1.CgroupV1`.
* **cgroup v2** has a single *unified* hierarchy: one directory per container, and controllers are
  switched on per subtree.  :class:`~minicontainer.kernel.cgroups.v2.CgroupV2`.

This module holds what the two share: the limits as OCI states them (:class:`Limits`), the numbers
read back (:class:`CgroupStats`), the error a learner sees (:class:`CgroupError`) and the common
life cycle (:class:`Cgroup`): create the directories, apply the limits, add processes, read stats,
kill, destroy.

Two safety rules shape the code:

1. **Only beneath our own cgroup.**  minicontainer creates cgroups below the cgroup it is itself
   in, never elsewhere in the tree, so it cannot disturb other software's cgroups (systemd's,
   another container engine's).
2. **Only write to what we created.**  Every directory minicontainer makes is remembered
   (:attr:`Cgroup.created`); knobs are written, and directories removed, only there.
"""

from __future__ import annotations

import errno
import os
import posixpath
import signal
import time
from abc import ABC, abstractmethod
from typing import NamedTuple

from minicontainer.kernel.syscalls import KernelError, Syscalls


class CgroupError(Exception):
    """A cgroup step that cannot be done on this host.  The message says what to do about it.

    ``field`` names the OCI ``config.json`` field that asked for the impossible
    (``"linux.resources.pids.limit"``, ``"linux.cgroupsPath"``), or is ``None`` when no single
    field is to blame.
    """

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class Limits(NamedTuple):
    """The resource limits of one container, from OCI ``linux.resources``.

    ``None`` everywhere means "leave the kernel's default", which for a new cgroup is "unlimited".
    The units are the OCI ones; each cgroup version converts them to its own files.
    """

    memory_limit: int | None = None  # bytes; -1 = unlimited
    memory_reservation: int | None = None  # bytes: a soft limit, reclaimed down to under pressure
    memory_swap: int | None = None  # bytes of memory *plus* swap (OCI/v1 meaning); -1 = unlimited
    cpu_shares: int | None = None  # relative weight against sibling cgroups (v1 units, 2..262144)
    cpu_quota: int | None = None  # microseconds of CPU time per period; -1 = unlimited
    cpu_period: int | None = None  # microseconds
    cpuset_cpus: str | None = None  # CPUs the container may run on, like "0-3,6"
    cpuset_mems: str | None = None  # NUMA memory nodes it may allocate from
    pids_limit: int | None = None  # most processes/threads at once; 0 or negative = unlimited
    # The devices the container may open or mknod (kernel/cgroups/devices.py): rules, last match wins.
    devices: tuple = ()  # of devices.DeviceRule
    # Settings with a file of their own on v1 (and, where v2 has one, there): OCI's less common fields.
    memory_kernel: int | None = None  # v1 kernel memory (memory.kmem.limit_in_bytes), where the kernel has it
    memory_kernel_tcp: int | None = None  # v1 TCP buffer memory (memory.kmem.tcp.limit_in_bytes)
    memory_swappiness: int | None = None  # 0..100: how readily the kernel swaps this cgroup's memory
    oom_kill_disable: bool | None = None  # true: processes wait for memory instead of being OOM-killed
    cpu_rt_runtime: int | None = None  # microseconds of real-time scheduling per period (v1)
    cpu_rt_period: int | None = None
    blkio_weight: int | None = None  # relative share of disk time, 10..1000
    blkio_leaf_weight: int | None = None
    blkio_weight_devices: tuple = ()  # of (major, minor, weight or None, leaf weight or None)
    blkio_throttle: tuple = ()  # of (v1 knob suffix, major, minor, rate): "read_bps_device", ...
    hugepage_limits: tuple = ()  # of (page size as "2MB", bytes)
    net_class_id: int | None = None  # net_cls.classid: tags the container's packets for tc
    net_priorities: tuple = ()  # of (interface, priority): net_prio.ifpriomap

    def needs_memory(self) -> bool:
        return any(v is not None for v in (self.memory_limit, self.memory_reservation, self.memory_swap))

    def needs_cpu(self) -> bool:
        return any(v is not None for v in (self.cpu_shares, self.cpu_quota, self.cpu_period))

    def needs_cpuset(self) -> bool:
        return self.cpuset_cpus is not None or self.cpuset_mems is not None

    def needs_pids(self) -> bool:
        return self.pids_limit is not None

    def needs_blkio(self) -> bool:
        return bool(self.blkio_weight is not None or self.blkio_leaf_weight is not None
                    or self.blkio_weight_devices or self.blkio_throttle)

    def changes(self) -> dict[str, object]:
        """The limits that are set, by name (what an ``update`` asks to change)."""
        return {name: value for name, value in self._asdict().items() if value is not None and value != ()}


class IOEntry(NamedTuple):
    """One line of the block I/O counters: bytes ``op`` ("Read", "Write"...) on device ``major:minor``."""

    major: int
    minor: int
    op: str
    value: int


class CgroupStats(NamedTuple):
    """What the kernel has counted for the container's cgroup.  ``None``: this host does not count it.

    Everything ``docker stats`` shows comes from here: CPU time (and how often the CFS quota made the
    cgroup wait: *throttling*), memory in use against its limit, processes against theirs, bytes
    read and written on block devices.
    """

    memory_usage: int | None = None  # bytes in use now (page cache included)
    memory_max_usage: int | None = None  # the most ever in use (v2 needs memory.peak, kernel 5.19+)
    oom_kills: int | None = None  # processes the OOM killer killed because of the memory limit
    cpu_usage_usec: int | None = None  # CPU time used by all processes, ever
    pids_current: int | None = None  # processes and threads alive now
    cpu_user_usec: int | None = None  # of which in user mode
    cpu_system_usec: int | None = None  # of which in the kernel, on the processes' behalf
    cpu_percpu_ns: tuple[int, ...] | None = None  # per CPU (v1's cpuacct.usage_percpu only)
    cpu_periods: int | None = None  # CFS periods in which the cgroup ran (with a quota set)
    cpu_throttled_periods: int | None = None  # ... of which it ran out of quota and had to wait
    cpu_throttled_usec: int | None = None  # the total time it waited
    memory_limit: int | None = None  # the hard limit in bytes; None: unlimited
    memory_failcnt: int | None = None  # times the limit was hit (v1; v2's memory.events "max")
    memory_detail: dict[str, int] | None = None  # memory.stat: anon/file (v2), rss/cache (v1)...
    pids_limit: int | None = None  # None: unlimited
    io_bytes: tuple[IOEntry, ...] | None = None  # bytes read and written per device and operation


# The OCI field each limit comes from, for error messages that point at config.json.
FIELDS = {
    "memory_limit": "linux.resources.memory.limit",
    "memory_reservation": "linux.resources.memory.reservation",
    "memory_swap": "linux.resources.memory.swap",
    "cpu_shares": "linux.resources.cpu.shares",
    "cpu_quota": "linux.resources.cpu.quota",
    "cpu_period": "linux.resources.cpu.period",
    "cpuset_cpus": "linux.resources.cpu.cpus",
    "cpuset_mems": "linux.resources.cpu.mems",
    "pids_limit": "linux.resources.pids.limit",
    "blkio_weight": "linux.resources.blockIO.weight",
}

# The controller each limit needs: the same names on v1 and v2.
CONTROLLER_OF = {
    "memory_limit": "memory", "memory_reservation": "memory", "memory_swap": "memory",
    "cpu_shares": "cpu", "cpu_quota": "cpu", "cpu_period": "cpu",
    "cpuset_cpus": "cpuset", "cpuset_mems": "cpuset",
    "pids_limit": "pids",
    "blkio_weight": "blkio",  # v2 calls it "io" (io.weight)
}


def requested(limits: Limits) -> list[str]:
    """The names of the limits that are set, in declaration order."""
    return [name for name in FIELDS if getattr(limits, name) is not None]


def check_cgroups_path(path: str) -> None:
    """Refuse cgroup paths that could escape the place they are meant for."""
    if not path or path == "/":
        raise CgroupError(f"linux.cgroupsPath {path!r} names no cgroup of the container's own: give a path "
                          "such as 'minicontainer/<id>'", field="linux.cgroupsPath")
    if ".." in path.split("/"):
        raise CgroupError(f"linux.cgroupsPath {path!r} contains '..': cgroup paths must go down the tree, "
                          "never up", field="linux.cgroupsPath")


def place(cgroups_path: str, own: str, controller: str) -> str:
    """The cgroup path (as ``/proc/self/cgroup`` would show it) where the container's cgroup goes.

    A relative ``cgroupsPath`` is taken from our own cgroup; an absolute one from the hierarchy's
    root, as the OCI spec says and runc reads it.  ``controller`` is the v1 controller whose
    hierarchy this is, or "" for the v2 unified one.
    """
    check_cgroups_path(cgroups_path)
    if not cgroups_path.startswith("/"):
        return posixpath.normpath(posixpath.join(own, cgroups_path))
    return posixpath.normpath(cgroups_path)


def base_path(cgroup_path: str, own: str) -> str:
    """Where the directories down to ``cgroup_path`` are made from: our own cgroup when it lies
    beneath it, else the hierarchy's root.  Either way only the directories made are ever written
    to or removed (see ``Cgroup.created``)."""
    inside = cgroup_path.startswith(own.rstrip("/") + "/") and cgroup_path != own
    return own if inside else "/"


def parse_int(text: str) -> int | None:
    """A knob's number; ``None`` for "max" (unlimited) or an empty file."""
    text = text.strip()
    return None if text in ("", "max") else int(text)


def parse_keyed(text: str) -> dict[str, int]:
    """Flat-keyed files such as ``memory.events`` or ``cpu.stat``: one ``key value`` per line."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if value.strip().lstrip("-").isdigit():
            out[key] = int(value)
    return out


class Cgroup(ABC):
    """One container's cgroup: the directories that make it, and what can be done with them.

    The life cycle, in the order the runtime calls it::

        cg = open_cgroup(sys, "minicontainer/web")   # decide where; nothing touched yet
        cg.create()                                  # mkdir the directories
        cg.apply(limits)                             # write the knobs
        cg.join_self()                               # (in the container's first process) move in
        ...                                          # (or, from outside: cg.add_process(pid))
        ...
        cg.kill_all(); cg.destroy()

    Limits are applied *before* the process joins, so that it never runs unlimited, not even for a
    moment (a fork bomb needs only a moment).
    """

    version: str  # "v1" or "v2"

    def __init__(self, sys: Syscalls, cgroups_path: str, paths: dict[str, str],
                 own_dirs: dict[str, str], created: list[str] | None = None) -> None:
        self.sys = sys
        self.cgroups_path = cgroups_path
        # controller (or "unified") -> the container's directory in that hierarchy
        self.paths = paths
        # controller (or "unified") -> the directory of *our own* cgroup there: we create beneath it
        self.own_dirs = own_dirs
        # Every directory we made, parents before children: the only places we write to or remove.
        self.created: list[str] = list(created or [])

    # -- the life cycle ---------------------------------------------------------------------------
    def create(self) -> None:
        """Make the container's directory in every hierarchy, and any missing parents of it."""
        for key in self.paths:
            self._create_dir(key)

    @abstractmethod
    def apply(self, limits: Limits) -> None:
        """Write the limits' knobs.  A limit this host cannot apply raises :class:`CgroupError`."""

    def add_process(self, pid: int) -> None:
        """Move ``pid`` into the cgroup: one write to ``cgroup.procs`` per hierarchy.

        Its children, forked from now on, start in the same cgroup, which is why the runtime adds
        the container's first process before it runs the user's program.
        """
        for directory in self._unique_dirs():
            self.sys.write_file(os.path.join(directory, "cgroup.procs"), str(pid),
                                detail="move the process into the container's cgroup: its limits apply "
                                       "from now on, to it and to every child it forks")

    def join_self(self, sys: Syscalls | None = None) -> None:
        """Move the calling process into the cgroup (``0`` means "the writer"), recorded by ``sys``.

        The container's first process does it itself, before it forks anything.  On v2 a process
        move takes the kernel's global lock against forks and exits, as :meth:`add_process` does."""
        sys = sys or self.sys
        for directory in self._unique_dirs():
            sys.write_file(os.path.join(directory, "cgroup.procs"), "0",
                           detail="move this process into the container's cgroup: its limits apply from now "
                                  "on, to it and to every child it forks")

    def pids(self) -> list[int]:
        """Every process in the cgroup, including in sub-cgroups the container made for itself."""
        found: set[int] = set()
        for directory in self._unique_dirs():
            for sub in self._tree(directory):
                try:
                    text = self.sys.read_file(os.path.join(sub, "cgroup.procs"))
                except KernelError as e:
                    if e.errno == errno.ENOENT:  # removed while we looked: nothing in it any more
                        continue
                    raise
                found.update(int(line) for line in text.split() if line.strip())
        return sorted(found)

    def kill_all(self, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to every process in the cgroup.

        A process may fork while we signal, so the list is read again until no new process shows
        up: a child born after the first round is in the cgroup too, and is caught in the next.
        """
        signalled: set[int] = set()
        for _ in range(20):
            fresh = [pid for pid in self.pids() if pid not in signalled]
            if not fresh:
                return
            for pid in fresh:
                signalled.add(pid)
                try:
                    self.sys.kill(pid, sig, detail="stop every process of the container")
                except KernelError as e:
                    if e.errno != errno.ESRCH:  # gone already: that is what we wanted
                        raise

    def destroy(self, timeout: float = 5.0) -> None:
        """Remove the directories we created, deepest first.

        A cgroup can only be removed once it has no processes and no child cgroups.  Processes that
        were just killed take a moment to die, so ``EBUSY`` on the container's own directory is
        retried until ``timeout``.  A parent directory we created but that someone else has since put
        a cgroup in is left alone: it is theirs now too.
        """
        leaves = set(self._unique_dirs())
        deadline = time.monotonic() + timeout
        remaining: list[str] = []
        failure: KernelError | None = None
        for directory in reversed(self.created):
            if any(r.startswith(directory + "/") for r in remaining):
                remaining.append(directory)  # a child of it is still there, so it cannot go either
                continue
            is_leaf = directory in leaves
            try:
                if is_leaf:
                    # Sub-cgroups the container made inside its own cgroup belong to the container.
                    for sub in reversed(self._tree(directory)[1:]):
                        self._rmdir_retrying(sub, deadline, "remove a sub-cgroup the container made")
                self._rmdir_retrying(directory, deadline if is_leaf else 0.0,
                                     "remove the container's cgroup" if is_leaf
                                     else "remove a parent cgroup we created for the container")
            except KernelError as e:
                remaining.append(directory)
                if is_leaf and failure is None:
                    failure = e
                # A parent we created that is busy or not empty holds someone else's cgroup now: keep it.
        self.created = [d for d in self.created if d in remaining]
        if failure is not None:
            raise CgroupError(f"cannot remove the container's cgroup: {failure}; its processes did not "
                              f"die within {timeout:g}s (list them: cat {failure.path}/cgroup.procs)") \
                from failure

    @abstractmethod
    def stats(self) -> CgroupStats:
        """The kernel's counters for the cgroup."""

    # -- changing a running container ------------------------------------------------------------
    def update(self, limits: Limits) -> None:
        """Change the limits of a cgroup that has processes in it (``docker update``).

        Only the limits that are set change; the kernel applies them at once (a lower memory limit
        makes it reclaim, or OOM-kill, right away)."""
        self.apply(limits)

    @abstractmethod
    def freeze(self) -> None:
        """Stop every process of the cgroup where it is (``docker pause``), and return once they are."""

    @abstractmethod
    def thaw(self) -> None:
        """Let the frozen processes run on (``docker unpause``)."""

    def _wait_frozen(self, knob: str, frozen: str) -> None:
        """Freezing is asynchronous: the kernel stops each task at its next return to user space,
        and says so in ``knob`` once all have stopped.  Wait for it, up to a second."""
        deadline = time.monotonic() + 1
        while self.sys.read_file(knob).strip() != frozen:
            if time.monotonic() > deadline:
                raise CgroupError(f"{knob}: the cgroup did not freeze within a second (a task stuck in the "
                                  "kernel, e.g. in uninterruptible I/O?); try again")
            time.sleep(0.001)

    def to_state(self) -> dict:
        """Everything needed to rebuild this object in another process (for ``delete``, ``kill``)."""
        return {
            "version": self.version,
            "cgroups_path": self.cgroups_path,
            "paths": dict(self.paths),
            "own_dirs": dict(self.own_dirs),
            "created": list(self.created),
        }

    # -- helpers for the subclasses ---------------------------------------------------------------
    def _unique_dirs(self) -> list[str]:
        """The container's directories, once each (co-mounted controllers share one)."""
        return list(dict.fromkeys(self.paths.values()))

    def _create_dir(self, key: str) -> list[str]:
        """mkdir the directories from our own cgroup down to ``paths[key]``; return the ones we made."""
        own, leaf = self.own_dirs[key], self.paths[key]
        relative = os.path.relpath(leaf, own)
        made: list[str] = []
        current = own
        for part in relative.split("/"):
            current = os.path.join(current, part)
            if current in self.created:  # made earlier (a hierarchy shared by two controllers)
                continue
            is_leaf = current == leaf
            try:
                self.sys.mkdir(current, 0o755, detail=(
                    "create the container's cgroup: a directory in cgroupfs is a new control group"
                    if is_leaf else "create a parent cgroup of the container's"))
            except KernelError as e:
                if e.errno != errno.EEXIST:
                    raise
                if not is_leaf:
                    continue  # an existing parent is someone else's: never written to, never removed
                if self._has_processes(leaf):
                    raise CgroupError(
                        f"the cgroup {leaf} already exists and holds processes: another container uses "
                        "that linux.cgroupsPath; choose another path", field="linux.cgroupsPath") from e
                # Empty: the cgroup the config names, left by an earlier container (runc leaves them
                # too).  Taken over, as runc takes it: this container's now, removed with it.
            self.created.append(current)
            made.append(current)
        return made

    def _tree(self, directory: str) -> list[str]:
        """``directory`` and every cgroup below it, parents before children (reading only)."""
        found = [directory]
        for parent, subdirs, _files in os.walk(directory):
            found.extend(os.path.join(parent, d) for d in sorted(subdirs))
        return found

    def _rmdir_retrying(self, directory: str, deadline: float, detail: str) -> None:
        """rmdir, retrying while the cgroup is busy (its processes still dying) until ``deadline``."""
        while True:
            try:
                self.sys.rmdir(directory, detail=detail)
                return
            except KernelError as e:
                if e.errno == errno.ENOENT:
                    return  # already gone: the goal is reached
                if e.errno == errno.EBUSY and time.monotonic() < deadline and self._has_processes(directory):
                    time.sleep(0.02)
                    continue
                raise

    def _has_processes(self, directory: str) -> bool:
        """Is anything still in this cgroup or below?  (Only then is waiting worth it.)"""
        for sub in self._tree(directory):
            try:
                if self.sys.read_file(os.path.join(sub, "cgroup.procs")).strip():
                    return True
            except KernelError:
                continue
        return False

    def _write(self, directory: str, knob: str, value: str, field: str, detail: str) -> None:
        """Write one knob; a refusal becomes a :class:`CgroupError` naming the OCI field."""
        path = os.path.join(directory, knob)
        try:
            self.sys.write_file(path, value, detail=detail)
        except KernelError as e:
            raise CgroupError(f"{field}: the kernel refused {value!r} for {knob}: {e}", field=field) from e

    def _read_int(self, directory: str | None, knob: str) -> int | None:
        """A knob's number, or ``None`` when the file is missing or says "max"."""
        if directory is None:
            return None
        try:
            return parse_int(self.sys.read_file(os.path.join(directory, knob)))
        except (KernelError, ValueError):
            return None

    def _read_io(self, directory: str | None, knob: str, *, keyed: bool) -> tuple[IOEntry, ...] | None:
        """Block I/O bytes: v1 writes ``8:0 Read 4096`` lines, v2 ``8:0 rbytes=4096 wbytes=0 ...``."""
        text = self._read_text(directory, knob)
        if text is None:
            return None
        entries = []
        for line in text.splitlines():
            fields = line.split()
            if not fields or ":" not in fields[0]:
                continue  # v1's closing "Total N"
            major, minor = (int(n) for n in fields[0].split(":"))
            if keyed:
                counts = dict(f.split("=", 1) for f in fields[1:] if "=" in f)
                entries += [IOEntry(major, minor, op, int(counts.get(key, 0)))
                            for op, key in (("read", "rbytes"), ("write", "wbytes"))]
            elif len(fields) == 3:
                entries.append(IOEntry(major, minor, fields[1], int(fields[2])))
        return tuple(entries)

    def _read_text(self, directory: str | None, knob: str) -> str | None:
        if directory is None:
            return None
        try:
            return self.sys.read_file(os.path.join(directory, knob))
        except KernelError:
            return None

    def _read_keyed(self, directory: str | None, knob: str) -> dict[str, int]:
        if directory is None:
            return {}
        try:
            return parse_keyed(self.sys.read_file(os.path.join(directory, knob)))
        except KernelError:
            return {}
