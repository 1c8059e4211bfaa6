"""The one thin layer between minicontainer and the Linux kernel.

Every kernel call the runtime makes goes through :class:`Syscalls`.  Three reasons:

* **Teaching.**  Each call is recorded as an :class:`~minicontainer.observe.events.Event` (what,
  arguments, result, time taken), which ``--explain`` narrates and the notebooks plot.
* **Errors a learner can act on.**  A failing call raises :class:`KernelError`, which says the verb,
  the path and the errno, as crun does (``mount '/proc': Operation not permitted``), and what to do.
* **Tests.**  Unit tests swap in :class:`minicontainer.kernel.fake.FakeSyscalls`, which records the
  calls without touching the kernel (youki's ``Syscall`` trait does the same).

Python 3.11's :mod:`os` covers many calls (``mkdir``, ``mknod``, ``setresuid``, ``execve``), but not
``unshare``, ``setns``, ``mount``, ``umount2``, ``pivot_root``, ``sethostname``, ``prctl`` or
``capset``.  Those are called through :mod:`ctypes` straight from the C library, with ``use_errno``
so that a failure's errno survives the trip back into Python.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import os
import resource
import struct
import time
from collections.abc import Callable
from typing import Any

from minicontainer.observe.events import Trace

# --- Constants from <sched.h>, <sys/mount.h> and <sys/prctl.h> -----------------------------------

# clone(2)/unshare(2) flags: one per namespace type.
CLONE_NEWNS = 0x00020000  # mount namespace (the first one invented, hence the vague name)
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000  # hostname and domain name
CLONE_NEWIPC = 0x08000000  # System V IPC, POSIX message queues
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_NEWTIME = 0x00000080

CLONE_FLAG_NAMES = {
    CLONE_NEWNS: "CLONE_NEWNS", CLONE_NEWCGROUP: "CLONE_NEWCGROUP", CLONE_NEWUTS: "CLONE_NEWUTS",
    CLONE_NEWIPC: "CLONE_NEWIPC", CLONE_NEWUSER: "CLONE_NEWUSER", CLONE_NEWPID: "CLONE_NEWPID",
    CLONE_NEWNET: "CLONE_NEWNET", CLONE_NEWTIME: "CLONE_NEWTIME",
}

# mount(2) flags.
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_SYNCHRONOUS = 16
MS_REMOUNT = 32
MS_MANDLOCK = 64
MS_DIRSYNC = 128
MS_NOSYMFOLLOW = 256
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_SILENT = 32768
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24
MS_LAZYTIME = 1 << 25

MOUNT_FLAG_NAMES = {
    MS_RDONLY: "MS_RDONLY", MS_NOSUID: "MS_NOSUID", MS_NODEV: "MS_NODEV", MS_NOEXEC: "MS_NOEXEC",
    MS_SYNCHRONOUS: "MS_SYNCHRONOUS", MS_REMOUNT: "MS_REMOUNT", MS_MANDLOCK: "MS_MANDLOCK",
    MS_DIRSYNC: "MS_DIRSYNC", MS_NOSYMFOLLOW: "MS_NOSYMFOLLOW", MS_NOATIME: "MS_NOATIME",
    MS_NODIRATIME: "MS_NODIRATIME", MS_BIND: "MS_BIND", MS_MOVE: "MS_MOVE", MS_REC: "MS_REC",
    MS_SILENT: "MS_SILENT", MS_UNBINDABLE: "MS_UNBINDABLE", MS_PRIVATE: "MS_PRIVATE",
    MS_SLAVE: "MS_SLAVE", MS_SHARED: "MS_SHARED", MS_RELATIME: "MS_RELATIME",
    MS_STRICTATIME: "MS_STRICTATIME", MS_LAZYTIME: "MS_LAZYTIME",
}

# umount2(2) flags.
MNT_FORCE = 1
MNT_DETACH = 2  # "lazy": detach now, clean up when the last user is gone

# prctl(2) options used by the runtime.
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_KEEPCAPS = 8
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4

PRCTL_NAMES = {
    PR_SET_PDEATHSIG: "PR_SET_PDEATHSIG", PR_SET_DUMPABLE: "PR_SET_DUMPABLE", PR_SET_KEEPCAPS: "PR_SET_KEEPCAPS",
    PR_CAPBSET_READ: "PR_CAPBSET_READ", PR_CAPBSET_DROP: "PR_CAPBSET_DROP",
    PR_SET_CHILD_SUBREAPER: "PR_SET_CHILD_SUBREAPER", PR_SET_NO_NEW_PRIVS: "PR_SET_NO_NEW_PRIVS",
    PR_CAP_AMBIENT: "PR_CAP_AMBIENT",
}

# <sys/inotify.h>: the kernel tells a reader when a watched file changes, instead of the reader
# looking again and again.
IN_MODIFY = 0x00000002       # the file was written to
IN_CLOSE_WRITE = 0x00000008  # a writer closed it
IN_NONBLOCK = 0o4000         # = O_NONBLOCK
IN_CLOEXEC = 0o2000000       # = O_CLOEXEC
INOTIFY_EVENT_NAMES = {IN_MODIFY: "IN_MODIFY", IN_CLOSE_WRITE: "IN_CLOSE_WRITE"}
INOTIFY_INIT_NAMES = {IN_NONBLOCK: "IN_NONBLOCK", IN_CLOEXEC: "IN_CLOEXEC"}

# openat2(2)'s ``resolve`` flags (<linux/openat2.h>): how the kernel may walk a path.
RESOLVE_NO_XDEV = 0x01        # no crossing into another mount
RESOLVE_NO_MAGICLINKS = 0x02  # no /proc/PID/fd/N-style links
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08        # fail on anything (.., an absolute link) that leads above dirfd
RESOLVE_IN_ROOT = 0x10        # treat dirfd as "/": .. and absolute links stay inside, as after a chroot
RESOLVE_NAMES = {RESOLVE_NO_XDEV: "RESOLVE_NO_XDEV", RESOLVE_NO_MAGICLINKS: "RESOLVE_NO_MAGICLINKS",
                 RESOLVE_NO_SYMLINKS: "RESOLVE_NO_SYMLINKS", RESOLVE_BENEATH: "RESOLVE_BENEATH",
                 RESOLVE_IN_ROOT: "RESOLVE_IN_ROOT"}
OPEN_FLAG_NAMES = {os.O_WRONLY: "O_WRONLY", os.O_RDWR: "O_RDWR", os.O_CREAT: "O_CREAT", os.O_EXCL: "O_EXCL",
                   os.O_TRUNC: "O_TRUNC", os.O_DIRECTORY: "O_DIRECTORY", os.O_NOFOLLOW: "O_NOFOLLOW",
                   os.O_CLOEXEC: "O_CLOEXEC", os.O_PATH: "O_PATH"}

# capget(2)/capset(2): version 3 carries 64 capability bits as two 32-bit words.
_LINUX_CAPABILITY_VERSION_3 = 0x20080522


def flag_names(value: int, names: dict[int, str]) -> str:
    """``CLONE_NEWNS|CLONE_NEWPID`` rather than ``0x20020000``: events should read like C."""
    parts = [name for bit, name in names.items() if value & bit]
    rest = value & ~sum(bit for bit in names if value & bit)
    if rest:
        parts.append(hex(rest))
    return "|".join(parts) or "0"


# --- Errors -------------------------------------------------------------------------------------

# What to do about the errors a learner meets most, by (verb, errno).  The verb alone is the
# fallback, then the errno alone.
_HINTS: dict[tuple[str, int] | str | int, str] = {
    ("unshare", _errno.EPERM): "creating namespaces needs root (run with sudo); a user namespace is also "
                               "refused inside a chroot, and where unprivileged user namespaces are off "
                               "(sysctl kernel.unprivileged_userns_clone=1)",
    ("unshare", _errno.EINVAL): "this kernel lacks that namespace type (see `minicontainer doctor`)",
    ("unshare", _errno.ENOSPC): "the per-user namespace limit is reached (/proc/sys/user/max_*_namespaces)",
    ("setns", _errno.EPERM): "joining a namespace needs CAP_SYS_ADMIN in the namespace's owning user namespace",
    ("setns", _errno.EINVAL): "the file is not a namespace of the type asked for",
    ("mount", _errno.EPERM): "mounting needs CAP_SYS_ADMIN in the mount namespace's owning user namespace "
                             "(run as root); in a user namespace some filesystems cannot be mounted",
    ("mount", _errno.ENOENT): "the mount source or destination does not exist: check the bundle's config.json "
                              "and rootfs",
    ("mount", _errno.ENODEV): "this kernel does not know that filesystem type (is its module loaded?)",
    ("mount", _errno.EBUSY): "something is already mounted there",
    ("pivot_root", _errno.EINVAL): "the new root must be a mount point, not on the same mount as the current "
                                   "root, and no mount on the way may be shared (mount propagation)",
    ("pivot_root", _errno.EPERM): "pivot_root needs CAP_SYS_ADMIN in the mount namespace",
    ("sethostname", _errno.EPERM): "setting the hostname needs a UTS namespace of the container's own "
                                   "(add {\"type\": \"uts\"} to linux.namespaces)",
    ("mknod", _errno.EPERM): "creating device nodes needs CAP_MKNOD in the initial user namespace; in a user "
                             "namespace devices are bind-mounted from the host instead",
    ("open", _errno.ENOENT): "the file does not exist: check the path",
    ("execve", _errno.ENOENT): "the program is not in the container's root filesystem: check process.args[0] "
                               "and the PATH in process.env",
    ("execve", _errno.EACCES): "the file is not executable: chmod +x it in the rootfs",
    ("write", _errno.EBUSY): "the cgroup still has processes or children",
    ("rmdir", _errno.EBUSY): "the cgroup still has processes in it: kill them first (delete --force)",
    _errno.EACCES: "permission denied: run as root (sudo)",
    _errno.EPERM: "operation not permitted: run as root (sudo)",
}


def hint_for(verb: str, err: int) -> str:
    return _HINTS.get((verb, err)) or _HINTS.get(err, "")  # type: ignore[return-value]


class KernelError(OSError):
    """A failed kernel call, told as crun tells it: ``verb 'path': strerror``, then what to do."""

    def __init__(self, verb: str, path: str, err: int, hint: str = "") -> None:
        super().__init__(err, os.strerror(err), path)
        self.verb = verb
        self.path = path
        self.hint = hint or hint_for(verb, err)

    def __str__(self) -> str:
        where = f" '{self.path}'" if self.path else ""
        text = f"{self.verb}{where}: {os.strerror(self.errno)}"
        return f"{text} ({self.hint})" if self.hint else text

    def to_dict(self) -> dict:
        return {"verb": self.verb, "path": self.path, "errno": self.errno, "hint": self.hint}


# --- The C library ------------------------------------------------------------------------------

_libc: ctypes.CDLL | None = None


def libc() -> ctypes.CDLL:
    """The process's own C library, loaded once and only when a raw call is first needed."""
    global _libc
    if _libc is None:
        lib = ctypes.CDLL(None, use_errno=True)
        for name, argtypes in {
            "unshare": [ctypes.c_int],
            "setns": [ctypes.c_int, ctypes.c_int],
            "mount": [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p],
            "umount2": [ctypes.c_char_p, ctypes.c_int],
            "sethostname": [ctypes.c_char_p, ctypes.c_size_t],
            "prctl": [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong],
            "inotify_init1": [ctypes.c_int],
            "inotify_add_watch": [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32],
            "inotify_rm_watch": [ctypes.c_int, ctypes.c_int],
            "syscall": None,  # variadic: arguments are converted at the call
        }.items():
            fn = getattr(lib, name)
            if argtypes is not None:
                fn.argtypes = argtypes
            fn.restype = ctypes.c_long if name == "syscall" else ctypes.c_int
        _libc = lib
    return _libc


# Raw system call numbers, per architecture: glibc has no wrapper for pivot_root, capget or capset.
_SYSCALL_NUMBERS = {
    "x86_64": {"pivot_root": 155, "capget": 125, "capset": 126, "bpf": 321, "openat2": 437,
               "mount_setattr": 442, "seccomp": 317},
    "aarch64": {"pivot_root": 41, "capget": 90, "capset": 91, "bpf": 280, "openat2": 437,
                "mount_setattr": 442, "seccomp": 277},
}

# mount_setattr(2)'s attributes (linux/mount.h).
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NAMES = {MOUNT_ATTR_RDONLY: "MOUNT_ATTR_RDONLY"}
_AT_RECURSIVE = 0x8000

# bpf(2) commands and constants (include/uapi/linux/bpf.h) for the v2 devices cgroup.
_BPF_PROG_LOAD = 5
_BPF_PROG_ATTACH = 8
_BPF_PROG_TYPE_CGROUP_DEVICE = 15
_BPF_CGROUP_DEVICE = 6
_BPF_F_ALLOW_MULTI = 2


# Read once, at import: later, a seccomp filter may refuse uname(2) itself.
_MACHINE = os.uname().machine


def _sysno(name: str) -> int:
    return _SYSCALL_NUMBERS[_MACHINE][name]


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


def _b(s: str | None) -> bytes | None:
    return None if s is None else os.fsencode(s)


# --- The interface --------------------------------------------------------------------------------


class Syscalls:
    """The real kernel, with every call recorded in :attr:`trace`.

    Methods are named after the system call they make and take its arguments in the same order, so
    that ``man 2 <name>`` explains each one.
    """

    def __init__(self, trace: Trace | None = None) -> None:
        self.trace = trace if trace is not None else Trace()

    # Every method funnels through _call: time it, record it, turn a failure into KernelError.
    def _call(self, op: str, args: str, path: str, fn: Callable[[], object], *, detail: str = "",
              show: Callable[[object], str] | None = None) -> object:
        start = time.monotonic_ns()
        try:
            result = fn()
        except OSError as e:
            err = e.errno or _errno.EIO
            self.trace.record(op, args, _errno.errorcode.get(err, str(err)), start_ns=start, errno=err,
                              detail=detail)
            raise KernelError(op, path, err) from None
        self.trace.record(op, args, show(result) if show else "ok", start_ns=start, detail=detail)
        return result

    @staticmethod
    def _check(ret: int) -> int:
        if ret == -1:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        return ret

    # -- namespaces ---------------------------------------------------------------------------------
    def unshare(self, flags: int, *, detail: str = "") -> None:
        """Move this process into new namespaces (for CLONE_NEWPID: its next child's)."""
        self._call("unshare", flag_names(flags, CLONE_FLAG_NAMES), "",
                   lambda: self._check(libc().unshare(flags)), detail=detail)

    def setns(self, path: str, nstype: int, *, detail: str = "") -> None:
        """Join the namespace that the file at ``path`` (a /proc/PID/ns/* link or a bind of one) names."""
        def join() -> None:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                self._check(libc().setns(fd, nstype))
            finally:
                os.close(fd)
        self._call("setns", f"{path}, {flag_names(nstype, CLONE_FLAG_NAMES)}", path, join, detail=detail)

    # -- mounts -------------------------------------------------------------------------------------
    def mount(self, source: str | None, target: str, fstype: str | None, flags: int = 0,
              data: str | None = None, *, detail: str = "") -> None:
        args = f"{source or 'none'}, {target}, {fstype or 'none'}, {flag_names(flags, MOUNT_FLAG_NAMES)}"
        if data:
            args += f", \"{data}\""
        self._call("mount", args, target,
                   lambda: self._check(libc().mount(_b(source), _b(target), _b(fstype), flags, _b(data))),
                   detail=detail)

    def umount2(self, target: str, flags: int = 0, *, detail: str = "") -> None:
        self._call("umount2", f"{target}, {flag_names(flags, {MNT_FORCE: 'MNT_FORCE', MNT_DETACH: 'MNT_DETACH'})}",
                   target, lambda: self._check(libc().umount2(_b(target), flags)), detail=detail)

    def pivot_root(self, new_root: str, put_old: str, *, detail: str = "") -> None:
        self._call("pivot_root", f"{new_root}, {put_old}", new_root,
                   lambda: self._check(libc().syscall(ctypes.c_long(_sysno("pivot_root")),
                                                      ctypes.c_char_p(_b(new_root)),
                                                      ctypes.c_char_p(_b(put_old)))),
                   detail=detail)

    def sethostname(self, name: str, *, detail: str = "") -> None:
        raw = name.encode()
        self._call("sethostname", name, "", lambda: self._check(libc().sethostname(raw, len(raw))),
                   detail=detail)

    # -- files (cgroup knobs, id maps, device nodes) -----------------------------------------------
    def mkdir(self, path: str, mode: int = 0o755, *, detail: str = "") -> None:
        self._call("mkdir", path, path, lambda: os.mkdir(path, mode), detail=detail)

    def rmdir(self, path: str, *, detail: str = "") -> None:
        self._call("rmdir", path, path, lambda: os.rmdir(path), detail=detail)

    def write_file(self, path: str, data: str, *, detail: str = "") -> None:
        """One write(2) of ``data``: cgroup and /proc files take a whole value per write."""
        def write() -> None:
            fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(fd, data.encode())
            finally:
                os.close(fd)
        shown = data.strip().replace("\n", "\\n")
        self._call("write", f"{path} <- {shown}", path, write, detail=detail)

    def read_file(self, path: str) -> str:
        """Reads are not recorded: only what changes the system is part of the story."""
        try:
            with open(path, encoding="utf-8") as f:
                return f.read()
        except OSError as e:
            raise KernelError("open", path, e.errno or _errno.EIO) from None

    def mknod(self, path: str, mode: int, device: int, *, detail: str = "") -> None:
        self._call("mknod", f"{path}, {oct(mode)}, {os.major(device)}:{os.minor(device)}", path,
                   lambda: os.mknod(path, mode, device), detail=detail)

    def mkfifo(self, path: str, mode: int = 0o600, *, detail: str = "") -> None:
        self._call("mkfifo", f"{path}, {oct(mode)}", path, lambda: os.mkfifo(path, mode), detail=detail)

    def symlink(self, target: str, path: str, *, detail: str = "") -> None:
        self._call("symlink", f"{target} -> {path}", path, lambda: os.symlink(target, path), detail=detail)

    def chown(self, path: str, uid: int, gid: int) -> None:
        self._call("chown", f"{path}, {uid}, {gid}", path, lambda: os.chown(path, uid, gid))

    def openat2(self, dirfd: int, path: str, flags: int, resolve: int, mode: int = 0, *, root: str = "",
                detail: str = "") -> int:
        """Open ``path`` relative to the directory ``dirfd``, the kernel walking it under the rules of
        ``resolve``.  With RESOLVE_IN_ROOT the walk cannot leave ``dirfd``: no ``..``, no symlink (not
        even one swapped in while we walk) leads out, because the kernel resolves the whole path in one
        call.  ``root`` names ``dirfd`` in the recorded event."""
        how = _OpenHow(flags | os.O_CLOEXEC, mode, resolve)
        args = (f"{root or dirfd}, {path}, {flag_names(flags | os.O_CLOEXEC, OPEN_FLAG_NAMES)}, "
                f"{flag_names(resolve, RESOLVE_NAMES)}")
        return self._call("openat2", args, path,
                          lambda: self._check(libc().syscall(ctypes.c_long(_sysno("openat2")), ctypes.c_int(dirfd),
                                                             ctypes.c_char_p(_b(path)), ctypes.byref(how),
                                                             ctypes.c_size_t(ctypes.sizeof(how)))),
                          detail=detail, show=lambda fd: f"fd {fd}")  # type: ignore[return-value]

    def chdir(self, path: str, *, detail: str = "") -> None:
        self._call("chdir", path, path, lambda: os.chdir(path), detail=detail)

    # -- processes ----------------------------------------------------------------------------------
    def fork(self, *, detail: str = "") -> int:
        """fork(2); the child returns 0.  Only the parent's copy of the event survives."""
        start = time.monotonic_ns()
        pid = os.fork()
        if pid:
            self.trace.record("fork", "", f"pid {pid}", start_ns=start, detail=detail)
        return pid

    def kill(self, pid: int, sig: int, *, detail: str = "") -> None:
        self._call("kill", f"{pid}, {sig}", str(pid), lambda: os.kill(pid, sig), detail=detail)

    def prctl(self, option: int, arg2: int = 0, arg3: int = 0, *, detail: str = "") -> int:
        name = PRCTL_NAMES.get(option, str(option))
        shown = f"{name}, {arg2}" + (f", {arg3}" if arg3 or option == PR_CAP_AMBIENT else "")
        return self._call("prctl", shown, "",
                          lambda: self._check(libc().prctl(option, arg2, arg3, 0, 0)),
                          detail=detail)  # type: ignore[return-value]

    def setrlimit(self, name: str, which: int, soft: int, hard: int) -> None:
        def set_limit() -> None:
            try:
                resource.setrlimit(which, (soft, hard))
            except ValueError as e:  # Python's word for the kernel's EPERM (a hard limit raised) or EINVAL
                raise OSError(_errno.EPERM if "raise" in str(e) else _errno.EINVAL, str(e)) from None
        try:
            self._call("setrlimit", f"{name}, {soft}, {hard}", name, set_limit)
        except KernelError as e:
            if e.errno != _errno.EPERM:
                raise
            current = resource.getrlimit(which)[1]
            raise KernelError("setrlimit", name, e.errno, f"raising a hard limit above this process's own "
                              f"({'unlimited' if current == resource.RLIM_INFINITY else current}) needs "
                              "CAP_SYS_RESOURCE, which the runtime does not hold here: ask for less") from None

    def setgroups(self, gids: list[int]) -> None:
        self._call("setgroups", str(gids), "", lambda: os.setgroups(gids))

    def setresgid(self, gid: int) -> None:
        self._call("setresgid", f"{gid}, {gid}, {gid}", "", lambda: os.setresgid(gid, gid, gid))

    def setresuid(self, uid: int) -> None:
        self._call("setresuid", f"{uid}, {uid}, {uid}", "", lambda: os.setresuid(uid, uid, uid))

    def capset(self, effective: int, permitted: int, inheritable: int) -> None:
        """Set this thread's three capability sets (each a 64-bit mask, bit N = capability N)."""
        def call() -> None:
            header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
            data = (_CapData * 2)()
            for i in range(2):
                shift = 32 * i
                data[i].effective = (effective >> shift) & 0xFFFFFFFF
                data[i].permitted = (permitted >> shift) & 0xFFFFFFFF
                data[i].inheritable = (inheritable >> shift) & 0xFFFFFFFF
            self._check(libc().syscall(ctypes.c_long(_sysno("capset")), ctypes.byref(header), data))
        self._call("capset", f"eff={effective:#x}, perm={permitted:#x}, inh={inheritable:#x}", "", call)

    # -- inotify ------------------------------------------------------------------------------------
    def inotify_init1(self, flags: int = 0, *, detail: str = "") -> int:
        """A new inotify instance: a file descriptor that becomes readable when a watched file changes."""
        return self._call("inotify_init1", flag_names(flags, INOTIFY_INIT_NAMES), "inotify",
                          lambda: self._check(libc().inotify_init1(flags)), detail=detail,
                          show=lambda fd: f"fd {fd}")

    def inotify_add_watch(self, fd: int, path: str, mask: int, *, detail: str = "") -> int:
        """Watch ``path`` for the events in ``mask``; returns the watch descriptor events will name."""
        return self._call("inotify_add_watch", f"{fd}, {path}, {flag_names(mask, INOTIFY_EVENT_NAMES)}", path,
                          lambda: self._check(libc().inotify_add_watch(fd, _b(path), mask)), detail=detail,
                          show=lambda wd: f"wd {wd}")

    def inotify_rm_watch(self, fd: int, wd: int) -> None:
        self._call("inotify_rm_watch", f"{fd}, {wd}", f"watch {wd}",
                   lambda: self._check(libc().inotify_rm_watch(fd, wd)))

    def mount_setattr(self, path: str, attr_set: int, *, recursive: bool = True, detail: str = "") -> None:
        """Change a mount's attributes (``MOUNT_ATTR_RDONLY``...), with ``AT_RECURSIVE`` every mount
        below it too: what ``mount -o remount,ro`` cannot do (MS_REC is ignored on a remount)."""
        attr = struct.pack("<QQQQ", attr_set, 0, 0, 0)  # struct mount_attr {set, clr, propagation, userns_fd}
        flags = _AT_RECURSIVE if recursive else 0
        self._call("mount_setattr", f"{path}, {'AT_RECURSIVE, ' if recursive else ''}"
                   f"{flag_names(attr_set, MOUNT_ATTR_NAMES)}", path,
                   lambda: self._check(libc().syscall(ctypes.c_long(_sysno("mount_setattr")), ctypes.c_int(-100),
                                                      ctypes.c_char_p(_b(path)), ctypes.c_uint(flags),
                                                      ctypes.c_char_p(attr), ctypes.c_size_t(len(attr)))),
                   detail=detail)

    # -- netlink and the firewall -------------------------------------------------------------------
    def netlink(self, op: str, args: str, request: Callable[[], object], *, path: str = "",
                detail: str = "") -> object:
        """One rtnetlink request (``RTM_NEWLINK``, ``RTM_NEWADDR``...), made by pyroute2 in
        :mod:`minicontainer.kernel.netlink`: a message on a netlink socket is a kernel call too, so
        it is timed and recorded like the others, and a refusal is a :class:`KernelError`."""
        from pyroute2.netlink.exceptions import NetlinkError

        def send() -> object:
            try:
                return request()
            except NetlinkError as e:  # pyroute2's own exception carries the kernel's errno
                raise OSError(e.code, os.strerror(e.code)) from None
        return self._call(op, args, path, send, detail=detail)

    def nft(self, script: str, *, detail: str = "") -> None:
        """Load an nftables script (``nft -f -``: one netlink transaction, all or nothing)."""
        import subprocess

        refusal: list[str] = []

        def load() -> None:
            try:
                done = subprocess.run(["nft", "-f", "-"], input=script.encode(), capture_output=True,
                                      check=False)
            except FileNotFoundError:
                refusal.append("the nft command is missing: apt-get install nftables")
                raise OSError(_errno.ENOENT, "nft") from None
            if done.returncode:
                refusal.extend(done.stderr.decode(errors="replace").strip().splitlines()[:1])
                raise OSError(_errno.EINVAL, "nft")
        lines = script.strip().splitlines()
        shown = lines[0] + (f" ... ({len(lines)} lines)" if len(lines) > 1 else "") if lines else ""
        try:
            self._call("nft", shown, "nft -f -", load, detail=detail)
        except KernelError as e:
            raise KernelError("nft", "nft -f -", e.errno, refusal[0] if refusal else "") from None

    # -- seccomp ------------------------------------------------------------------------------------
    def seccomp_load(self, seccomp_filter: Any, rules: int, *, detail: str = "") -> None:
        """Install a libseccomp filter (``kernel/seccomp.build``) on this thread: seccomp(2)."""
        def load() -> None:
            try:
                seccomp_filter.load()
            except RuntimeError as e:  # the binding's "Library error (errno = -13)"
                text = str(e)
                err = int(text.rsplit("-", 1)[1].rstrip(")")) if "errno = -" in text else _errno.EINVAL
                raise OSError(err, os.strerror(err)) from None
        self._call("seccomp", f"SECCOMP_SET_MODE_FILTER, {rules} rules", "seccomp", load, detail=detail)

    def seccomp_load_bpf(self, program: bytes, flags: int, *, detail: str = "") -> None:
        """seccomp(SECCOMP_SET_MODE_FILTER, flags, &prog): install a compiled filter (8-byte
        classic-BPF instructions, as ``seccomp_export_bpf`` writes them) on this thread."""
        buf = ctypes.create_string_buffer(program, len(program))
        prog = struct.pack("<HxxxxxxQ", len(program) // 8, ctypes.addressof(buf))  # struct sock_fprog
        self._call("seccomp", f"SECCOMP_SET_MODE_FILTER, {flags:#x}, {len(program) // 8} instructions", "seccomp",
                   lambda: self._check(libc().syscall(ctypes.c_long(_sysno("seccomp")), ctypes.c_uint(1),
                                                      ctypes.c_uint(flags), ctypes.c_char_p(prog))),
                   detail=detail)

    # -- eBPF (the v2 devices cgroup) ------------------------------------------------------------
    def bpf_prog_load_cgroup_device(self, program: bytes, *, detail: str = "") -> int:
        """bpf(BPF_PROG_LOAD) of a BPF_PROG_TYPE_CGROUP_DEVICE program; returns its file descriptor."""
        insns = ctypes.create_string_buffer(program, len(program))
        license_ = ctypes.create_string_buffer(b"Apache-2.0")
        attr = ctypes.create_string_buffer(128)  # union bpf_attr, zeroed: unused fields must be 0
        struct.pack_into("<IIQQ", attr, 0, _BPF_PROG_TYPE_CGROUP_DEVICE, len(program) // 8,
                         ctypes.addressof(insns), ctypes.addressof(license_))
        return self._call("bpf", f"BPF_PROG_LOAD, CGROUP_DEVICE, {len(program) // 8} insns", "bpf",
                          lambda: self._check(libc().syscall(ctypes.c_long(_sysno("bpf")), ctypes.c_int(_BPF_PROG_LOAD),
                                                             attr, ctypes.c_uint(len(attr)))),
                          detail=detail, show=lambda fd: f"fd {fd}")  # type: ignore[return-value]

    def bpf_prog_attach_cgroup_device(self, cgroup_dir: str, prog_fd: int, *, detail: str = "") -> None:
        """bpf(BPF_PROG_ATTACH): the program runs for every device access in ``cgroup_dir``'s cgroup."""
        def attach() -> None:
            fd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                attr = ctypes.create_string_buffer(128)
                struct.pack_into("<IIII", attr, 0, fd, prog_fd, _BPF_CGROUP_DEVICE, _BPF_F_ALLOW_MULTI)
                self._check(libc().syscall(ctypes.c_long(_sysno("bpf")), ctypes.c_int(_BPF_PROG_ATTACH), attr,
                                           ctypes.c_uint(len(attr))))
            finally:
                os.close(fd)
        self._call("bpf", f"BPF_PROG_ATTACH, {cgroup_dir}, BPF_CGROUP_DEVICE", cgroup_dir, attach, detail=detail)

    def execve(self, path: str, argv: list[str], env: dict[str, str]) -> None:
        """Replace this process with the user's program.  On success nothing after it runs, so the
        event is recorded just before the call; only a failure returns (as KernelError)."""
        self.trace.record("execve", f"{path}, {argv}", "...")
        try:
            os.execve(path, argv, env)
        except OSError as e:
            raise KernelError("execve", path, e.errno or _errno.EIO) from None


class HeldReads(Syscalls):
    """Syscalls whose ``read_file`` keeps each file open and reads it again from offset 0 (``pread``).

    For counters read many times a second (``docker stats``, the sampler): a cgroup or /proc file
    regenerates its text whenever it is read from offset 0, so the open and close of every reading
    can be saved.  :meth:`close` gives the descriptors back (the container has stopped)."""

    def __init__(self, trace: Trace | None = None) -> None:
        super().__init__(trace)
        self.held: dict[str, int] = {}

    def read_file(self, path: str) -> str:
        fd = self.held.get(path)
        try:
            if fd is None:
                fd = self.held[path] = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            data = os.pread(fd, 65536, 0)
            while len(data) % 65536 == 0 and data:  # a long memory.stat: read on
                more = os.pread(fd, 65536, len(data))
                if not more:
                    break
                data += more
        except OSError as e:
            raise KernelError("open" if fd is None else "pread", path, e.errno or _errno.EIO) from None
        return data.decode()

    def close(self) -> None:
        for fd in self.held.values():
            os.close(fd)
        self.held.clear()
