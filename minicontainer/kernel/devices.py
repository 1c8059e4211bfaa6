"""The container's /dev: a handful of harmless devices, and nothing else.

A container's /dev is an empty tmpfs (see the default ``config.json``); the runtime fills it with
the devices every Unix program expects.  The host's disks, its terminals and /dev/mem are simply not
there, which is the first line of device isolation.

Two ways to make a device node:

* as root in the host's user namespace: ``mknod(2)``, with the device's major:minor numbers;
* inside a user namespace ``mknod`` is refused (it would let an unprivileged user reach any device),
  so an empty file is made and the host's device is bind-mounted over it.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence

from minicontainer.kernel.mounts import secure_join
from minicontainer.kernel.syscalls import MS_BIND, Syscalls

# name -> (major, minor, what it is); all character devices, mode 0666.
DEFAULT_DEVICES: dict[str, tuple[int, int, str]] = {
    "null": (1, 3, "discards writes, reads as empty"),
    "zero": (1, 5, "reads as endless zero bytes"),
    "full": (1, 7, "writes fail with ENOSPC: for testing full disks"),
    "random": (1, 8, "random bytes"),
    "urandom": (1, 9, "random bytes, never blocks"),
    "tty": (5, 0, "the process's controlling terminal"),
}

# Links every program expects; they point into /proc, which is the container's own.
DEFAULT_LINKS: dict[str, str] = {
    "fd": "/proc/self/fd",
    "stdin": "/proc/self/fd/0",
    "stdout": "/proc/self/fd/1",
    "stderr": "/proc/self/fd/2",
    "core": "/proc/kcore",
    "ptmx": "pts/ptmx",  # the new devpts instance's multiplexer, not the host's /dev/ptmx
}


def make_device(sys: Syscalls, rootfs: str, path: str, kind: str, major: int, minor: int, mode: int,
                uid: int = 0, gid: int = 0, *, in_userns: bool, detail: str = "") -> None:
    """Create one device node at ``path`` (a path inside the container)."""
    target = secure_join(rootfs, path)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    if os.path.lexists(target):
        os.unlink(target)
    if in_userns:
        with open(target, "w"):
            pass
        sys.mount(_host_node(major, minor, kind), target, None, MS_BIND,
                  detail="no mknod in a user namespace: bind the host's device instead")
        return
    file_type = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}[kind]
    sys.mknod(target, file_type | (mode & 0o7777), os.makedev(major, minor) if kind != "p" else 0, detail=detail)
    os.chmod(target, mode & 0o7777)  # mknod's mode is filtered by the umask; chmod is not
    if uid or gid:
        sys.chown(target, uid, gid)


def _host_node(major: int, minor: int, kind: str) -> str:
    """Find the host's /dev node with these numbers (for the bind-mount way)."""
    want = stat.S_IFBLK if kind == "b" else stat.S_IFCHR
    for name in os.listdir("/dev"):
        path = f"/dev/{name}"
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if stat.S_IFMT(st.st_mode) == want and st.st_rdev == os.makedev(major, minor):
            return path
    raise FileNotFoundError(f"no host device {major}:{minor} to bind into the user namespace")


def populate_dev(sys: Syscalls, rootfs: str, *, in_userns: bool, extra: Sequence = ()) -> None:
    """Fill the container's /dev tmpfs with the default devices, the ``extra`` ones (the config's
    ``linux.devices``: objects with path, type, major, minor, file_mode, uid, gid), links and directories.

    The links come last, as runc makes them: a host's ``/dev/ptmx`` node among the extra devices (a
    privileged container gets them all) is replaced by the link to the container's own devpts."""
    for name, (major, minor, _) in DEFAULT_DEVICES.items():
        make_device(sys, rootfs, f"/dev/{name}", "c", major, minor, 0o666, in_userns=in_userns)
    for d in extra:
        make_device(sys, rootfs, d.path, d.type, d.major, d.minor, d.file_mode, d.uid, d.gid, in_userns=in_userns,
                    detail="linux.devices: a device the config gives (Docker's --device; --privileged gives every "
                           "one of the host's); the devices cgroup decides what may be done with it")
    dev = secure_join(rootfs, "/dev")
    for sub in ("pts", "shm"):
        os.makedirs(os.path.join(dev, sub), exist_ok=True)
    for name, target in DEFAULT_LINKS.items():
        if name == "core" and not os.path.exists("/proc/kcore"):
            continue  # a kernel built without CONFIG_PROC_KCORE: no dangling link (runc agrees)
        link = os.path.join(dev, name)
        if name == "ptmx" and os.path.lexists(link):
            os.unlink(link)
        if not os.path.lexists(link):
            sys.symlink(target, link)
