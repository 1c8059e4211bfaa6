"""The container's root filesystem: mounts, ``pivot_root``, masked and read-only paths.

Everything here runs in the container's init process, inside its new mount namespace, in this order:

1. Make every mount in the namespace private, so nothing mounted from now on propagates back to the
   host (the new namespace starts as a copy of the host's, *shared* mounts included).
2. Bind-mount the rootfs onto itself: ``pivot_root`` wants the new root to be a mount point.
3. Mount what ``config.json`` lists (proc, a tmpfs /dev, devpts, sysfs, binds...) below the rootfs.
4. Populate /dev (see :mod:`minicontainer.kernel.devices`).
5. ``pivot_root(rootfs, rootfs)`` then unmount the old root: the host's filesystem is no longer
   reachable from inside.  (Stacking the old root on the new one and detaching it avoids needing a
   ``put_old`` directory in the rootfs: runc's trick.)  ``chroot`` would not do: a process can
   climb out of a chroot, but not out of a pivot_root whose old root has been unmounted.
6. Hide ``maskedPaths`` (a /dev/null or an empty read-only tmpfs over them), make
   ``readonlyPaths`` read-only, and the whole root read-only if ``root.readonly``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
from collections.abc import Iterator
from typing import NamedTuple

from minicontainer.kernel.syscalls import (
    MNT_DETACH,
    MOUNT_ATTR_RDONLY,
    MS_BIND,
    MS_DIRSYNC,
    MS_MANDLOCK,
    MS_NOATIME,
    MS_NODEV,
    MS_NODIRATIME,
    MS_NOEXEC,
    MS_NOSUID,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    MS_RELATIME,
    MS_REMOUNT,
    MS_SHARED,
    MS_SLAVE,
    MS_STRICTATIME,
    MS_SYNCHRONOUS,
    MS_UNBINDABLE,
    RESOLVE_IN_ROOT,
    RESOLVE_NO_MAGICLINKS,
    KernelError,
    Syscalls,
)

# mount(8) option words that are flags: word -> (set it?, flag).  Everything else is filesystem data.
FLAG_OPTIONS: dict[str, tuple[bool, int]] = {
    "ro": (True, MS_RDONLY), "rw": (False, MS_RDONLY),
    "nosuid": (True, MS_NOSUID), "suid": (False, MS_NOSUID),
    "nodev": (True, MS_NODEV), "dev": (False, MS_NODEV),
    "noexec": (True, MS_NOEXEC), "exec": (False, MS_NOEXEC),
    "sync": (True, MS_SYNCHRONOUS), "async": (False, MS_SYNCHRONOUS),
    "dirsync": (True, MS_DIRSYNC), "mand": (True, MS_MANDLOCK), "nomand": (False, MS_MANDLOCK),
    "noatime": (True, MS_NOATIME), "atime": (False, MS_NOATIME),
    "nodiratime": (True, MS_NODIRATIME), "diratime": (False, MS_NODIRATIME),
    "relatime": (True, MS_RELATIME), "norelatime": (False, MS_RELATIME),
    "strictatime": (True, MS_STRICTATIME), "nostrictatime": (False, MS_STRICTATIME),
    "bind": (True, MS_BIND), "rbind": (True, MS_BIND | MS_REC),
}

# Propagation words: they need a mount(2) call of their own, after the mount exists.
PROPAGATION: dict[str, int] = {
    "private": MS_PRIVATE, "rprivate": MS_PRIVATE | MS_REC,
    "slave": MS_SLAVE, "rslave": MS_SLAVE | MS_REC,
    "shared": MS_SHARED, "rshared": MS_SHARED | MS_REC,
    "unbindable": MS_UNBINDABLE, "runbindable": MS_UNBINDABLE | MS_REC,
}

# Flags a bind mount keeps from its source and that an unprivileged remount may not drop.
_STATVFS_FLAGS = {os.ST_NOSUID: MS_NOSUID, os.ST_NODEV: MS_NODEV, os.ST_NOEXEC: MS_NOEXEC,
                  os.ST_RDONLY: MS_RDONLY}


class MountOptions(NamedTuple):
    flags: int  # MS_* flags for mount(2)
    propagation: int  # MS_PRIVATE etc., applied in a second call (0 = leave as is)
    data: str  # the rest, comma-separated, for the filesystem itself ("mode=755,size=65536k")


def parse_options(options: list[str]) -> MountOptions:
    flags = propagation = 0
    data = []
    for word in options:
        if word in FLAG_OPTIONS:
            on, bit = FLAG_OPTIONS[word]
            flags = flags | bit if on else flags & ~bit
        elif word in PROPAGATION:
            propagation |= PROPAGATION[word]
        else:
            data.append(word)
    return MountOptions(flags, propagation, ",".join(data))


def secure_join(root: str, path: str) -> str:
    """``root/path`` with symlinks resolved *inside* root, never escaping it.

    A rootfs is untrusted: an image can hold ``/etc -> /`` or ``../../..``.  A mount onto
    ``rootfs/etc/x`` must not land on the host's ``/x``, so each component is resolved by hand,
    ``..`` stops at root, and an absolute link target restarts from root.
    """
    parts = [p for p in path.split("/") if p]
    resolved: list[str] = []
    links = 0
    while parts:
        part = parts.pop(0)
        if part == ".":
            continue
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, part)
        try:
            st = os.lstat(candidate)
        except FileNotFoundError:
            resolved.append(part)
            continue
        if stat.S_ISLNK(st.st_mode):
            links += 1
            if links > 40:
                raise KernelError("resolve", os.path.join(root, path.lstrip("/")), errno.ELOOP)
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p] + parts
            continue
        resolved.append(part)
    return os.path.join(root, *resolved)


def _keep_locked_flags(path: str) -> int:
    """The nosuid/nodev/noexec/ro flags ``path``'s mount has now: a remount must repeat them."""
    try:
        f_flag = os.statvfs(path).f_flag
    except OSError:
        return 0
    return sum(ms for st_bit, ms in _STATVFS_FLAGS.items() if f_flag & st_bit)


class MountInfo(NamedTuple):
    """One line of ``/proc/self/mountinfo``: where a mount is, and how it propagates."""
    point: str
    tags: tuple[str, ...]  # the optional fields: "shared:N" (has peers), "master:N" (a slave of N)

    @property
    def shared(self) -> bool:
        return any(tag.startswith("shared:") for tag in self.tags)

    @property
    def slave(self) -> bool:
        return any(tag.startswith("master:") for tag in self.tags)


def mount_of(path: str) -> MountInfo:
    """The mount ``path`` is on: the longest mount point of ``/proc/self/mountinfo`` that holds it."""
    real, best = os.path.realpath(path), MountInfo("/", ())
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split(" - ", 1)[0].split(" ")
            point = fields[4]
            if "\\" in point:  # spaces, tabs, newlines and backslashes are written in octal: \040
                point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), point)
            inside = real == point or real.startswith(point.rstrip("/") + "/")
            if inside and len(point) >= len(best.point):  # the later line of two on one point is on top
                best = MountInfo(point, tuple(fields[6:]))
    return best


def set_root_propagation(sys: Syscalls, propagation: str) -> None:
    """The first step in the container's new mount namespace, as runc takes it: every mount copied
    from the host becomes ``rslave`` (``linux.rootfsPropagation`` may ask for another), so the host's
    mounts and unmounts still reach the container while nothing the container mounts reaches the
    host.  A bind asking for ``rshared``/``rslave`` propagation then has a master to follow."""
    try:
        sys.mount(None, "/", None, PROPAGATION[propagation or "rslave"],
                  detail=f"{propagation or 'rslave'} /: the host's mount events reach in, the container's "
                         "stay in")
    except KernelError as e:
        if e.errno != errno.EINVAL:
            raise
        # "/" is not a mount point: the runtime itself runs inside a chroot, where pivot_root (and a
        # user namespace) cannot work.
        raise KernelError("mount", "/", e.errno, "'/' is not a mount point: is the runtime running inside a "
                          "chroot? Run it outside, or make the chroot's root a mount first "
                          "(mount --rbind DIR DIR && chroot DIR)") from None


def make_parent_mount_private(sys: Syscalls, rootfs: str) -> None:
    """pivot_root(2) refuses a new root whose parent mount is shared (EINVAL), and a bind of a shared
    mount is its peer: the rootfs's bind onto itself, and every mount made on it, would show on the
    host too.  Where / was left shared (``rootfsPropagation: shared``), the mount that holds the rootfs
    (its overlay) becomes private in this namespace only, not recursively, as runc does."""
    holder = mount_of(rootfs)
    if holder.shared:
        sys.mount(None, holder.point, None, MS_PRIVATE,
                  detail="the rootfs's mount private: nothing mounted on it may show on the host")


def bind_rootfs(sys: Syscalls, rootfs: str) -> None:
    sys.mount(rootfs, rootfs, None, MS_BIND | MS_REC,
              detail="pivot_root needs the new root to be a mount point: bind it onto itself")
    # No device node in the image opens a device: only those the runtime puts in the /dev tmpfs do.
    sys.mount(None, rootfs, None, MS_BIND | MS_REMOUNT | MS_NODEV | _keep_locked_flags(rootfs),
              detail="nodev: device files shipped in an image are inert")


@contextlib.contextmanager
def in_root(sys: Syscalls, rootfs: str, destination: str) -> Iterator[str]:
    """A path for ``destination`` inside ``rootfs`` that no symlink swapped in meanwhile can redirect.

    ``secure_join`` resolves a path *now*; between that and the ``mount`` a process of a running
    container sharing a volume with this one can turn a directory into a symlink to ``/``, and the
    kernel would follow it (runc's CVE-2021-30465).  So the target is opened instead, with
    ``openat2(RESOLVE_IN_ROOT)``: the kernel itself resolves every component inside ``rootfs``
    (``..`` and absolute links stop there).  The mount then goes through ``/proc/self/fd/N``, a
    "magic link" that leads to the opened directory itself, whatever its path has become.
    Kernels before 5.6 have no openat2: there the path from ``secure_join`` is used, as before.
    """
    root_fd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fd = sys.openat2(root_fd, destination.lstrip("/") or ".", os.O_PATH | os.O_CLOEXEC,
                         RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
                         detail="open the mount target inside the root: no symlink can lead out")
    except KernelError as e:
        if e.errno != errno.ENOSYS:
            raise
        yield secure_join(rootfs, destination)
        return
    finally:
        os.close(root_fd)
    try:
        yield f"/proc/self/fd/{fd}"
    finally:
        os.close(fd)


def make_readonly_recursively(sys: Syscalls, path: str, detail: str) -> None:
    """Read-only, submounts included: ``mount_setattr(AT_RECURSIVE)`` (Linux 5.12).  A remount with
    MS_RDONLY changes only the one mount it names: a mount beneath it would stay writable."""
    try:
        sys.mount_setattr(path, MOUNT_ATTR_RDONLY, detail=detail)
    except KernelError as e:
        if e.errno != errno.ENOSYS:
            raise
        sys.mount(None, path, None, MS_BIND | MS_REMOUNT | MS_RDONLY | _keep_locked_flags(path), detail=detail)


def mount_one(sys: Syscalls, rootfs: str, destination: str, kind: str, source: str, options: list[str],
              *, in_userns: bool = False) -> str:
    """Mount one ``config.json`` entry below ``rootfs``; returns the absolute target."""
    target = secure_join(rootfs, destination)
    opts = parse_options(options)
    if kind == "bind":
        src = source
        if not os.path.exists(src):
            raise KernelError("mount", src, errno.ENOENT, "the bind mount's source does not exist on the host")
        _make_target(target, is_dir=os.path.isdir(src))
        with in_root(sys, rootfs, destination) as where:
            sys.mount(src, where, None, MS_BIND | (opts.flags & MS_REC),
                      detail=f"make host {src} visible at {destination}")
        extra = opts.flags & ~(MS_BIND | MS_REC)
        if extra:
            # A bind mount ignores every other flag on creation: they take a remount (through a fresh
            # descriptor: the old one is the directory *under* the new mount).
            with in_root(sys, rootfs, destination) as where:
                sys.mount(None, where, None, MS_BIND | MS_REMOUNT | extra | _keep_locked_flags(where),
                          detail=f"bind mounts take flags only on remount ({destination})")
                if opts.flags & MS_RDONLY and opts.flags & MS_REC:
                    make_readonly_recursively(sys, where, f"read-only, and every mount under {destination} too")
    else:
        _make_target(target, is_dir=True)
        with in_root(sys, rootfs, destination) as where:
            try:
                sys.mount(source, where, kind, opts.flags, opts.data or None, detail=_WHY.get(destination, ""))
            except KernelError as e:
                if not (kind == "sysfs" and in_userns and e.errno == errno.EPERM):
                    raise
                # A user namespace without its own network namespace may not mount sysfs: show the
                # host's, read-only, instead (what runc does too).
                sys.mount("/sys", where, None, MS_BIND | MS_REC, detail="sysfs not mountable here: bind the host's")
                with in_root(sys, rootfs, destination) as top:
                    sys.mount(None, top, None, MS_BIND | MS_REMOUNT | MS_RDONLY | _keep_locked_flags(top))
    if opts.propagation:
        with in_root(sys, rootfs, destination) as where:
            sys.mount(None, where, None, opts.propagation)
    return target


def mount_cgroup(sys: Syscalls, rootfs: str, destination: str, cgroup_dirs: dict[str, str],
                 options: list[str]) -> None:
    """A ``cgroup`` mount: the container's *own* cgroup, read-only, where programs look for it.

    Programs inside (a JVM sizing its heap, ``systemd``) read their limits from /sys/fs/cgroup.  They
    get the container's cgroup directories only, never the host's tree: on v2 the one directory is
    bound at ``destination``; on v1 a small tmpfs there holds one bound directory per hierarchy
    (``memory``, ``cpu``, ``pids``...).  Read-only unless the options say ``rw``, as runc does.
    ``cgroup_dirs``: name -> host directory (``runtime/parent.cgroup_mount_dirs``; "" for v2).
    """
    target = secure_join(rootfs, destination)
    _make_target(target, is_dir=True)
    opts = parse_options(options)
    flags = MS_NOSUID | MS_NODEV | MS_NOEXEC | (opts.flags & MS_RDONLY if "rw" in options else MS_RDONLY)
    if list(cgroup_dirs) == [""]:
        sys.mount(cgroup_dirs[""], target, None, MS_BIND, detail="the container's own cgroup (v2)")
        sys.mount(None, target, None, MS_BIND | MS_REMOUNT | flags | _keep_locked_flags(target),
                  detail="cgroup mount: read-only")
        return
    sys.mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=755",
              detail="cgroup mount (v1): a directory per controller, each the container's own cgroup")
    for name, directory in cgroup_dirs.items():
        inner = os.path.join(target, name)
        os.mkdir(inner, 0o755)
        sys.mount(directory, inner, None, MS_BIND, detail=f"the container's {name} cgroup")
        sys.mount(None, inner, None, MS_BIND | MS_REMOUNT | flags | _keep_locked_flags(inner))
    # The tmpfs itself stays writable, as runc leaves it: what is in it is not the kernel's.


_WHY = {
    "/proc": "a proc of the new PID namespace: ps shows only the container's processes",
    "/dev": "a private /dev: only the devices the runtime puts there exist",
    "/dev/pts": "a new devpts instance: the container's own pseudo-terminals",
    "/dev/shm": "POSIX shared memory of the container's own",
    "/dev/mqueue": "POSIX message queues of the container's IPC namespace",
    "/sys": "sysfs, read-only: the kernel's view of devices",
}


def _make_target(target: str, *, is_dir: bool) -> None:
    if os.path.lexists(target):
        return
    if is_dir:
        os.makedirs(target, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "a"):
            pass


def pivot_to(sys: Syscalls, rootfs: str) -> None:
    """Make ``rootfs`` the process's ``/`` and let go of the host's root filesystem."""
    sys.chdir(rootfs)
    sys.pivot_root(".", ".", detail="swap root filesystems: the rootfs becomes /, the old root is stacked on it")
    # rslave before it goes: where / was shared, its unmount would otherwise unmount the host's too
    sys.mount(None, ".", None, MS_SLAVE | MS_REC, detail="the old root rslave: its unmount stays in here")
    sys.umount2(".", MNT_DETACH, detail="detach the old root: the host's files are now out of reach")
    sys.chdir("/")


def mask_paths(sys: Syscalls, paths: list[str]) -> None:
    """Hide kernel files a container should not read (/proc/kcore, /sys/firmware...)."""
    for path in paths:
        try:
            st = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            continue  # nothing there to hide
        if stat.S_ISDIR(st.st_mode):
            sys.mount("tmpfs", path, "tmpfs", MS_RDONLY, detail="mask: an empty read-only directory over it")
        else:
            sys.mount("/dev/null", path, None, MS_BIND, detail="mask: /dev/null over it")


def make_readonly(sys: Syscalls, paths: list[str]) -> None:
    """Bind each path onto itself, then remount that bind read-only (/proc/sys, /proc/sysrq-trigger...)."""
    for path in paths:
        if not os.path.exists(path):
            continue
        sys.mount(path, path, None, MS_BIND | MS_REC, detail="readonly path: bind onto itself")
        make_readonly_recursively(sys, path, "...then make that bind read-only, every mount under it too")


def make_root_readonly(sys: Syscalls) -> None:
    sys.mount(None, "/", None, MS_BIND | MS_REMOUNT | MS_RDONLY | _keep_locked_flags("/"),
              detail="root.readonly: the container cannot change its root filesystem")
