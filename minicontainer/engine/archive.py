"""``docker cp``: files into and out of a container's root filesystem, with no way out of it.

The Engine API has three requests on ``/containers/{id}/archive?path=P`` (``HEAD``: what is at P;
``GET``: a tar of it; ``PUT``: a tar to unpack into the directory P).  The daemon runs as root on
the host; the container's files belong to whoever runs *in* the container.  So every path is the
container's, and must be resolved as if the container's root were ``/``:

* a symlink ``/etc/evil -> /etc/shadow`` in the container means the container's /etc/shadow;
* ``../../../`` stops at the container's root;
* and the container may *change* its files while we copy: a directory swapped for a symlink to
  the host's ``/`` between our check and our use is the classic attack (CVE-2018-15664, which
  hit Docker itself: it resolved the path, then opened the result by name, a second walk).

The defence: the kernel walks each path, in one call, with ``openat2(root, path, ...,
RESOLVE_IN_ROOT)``: it treats ``root`` as ``/`` for ``..`` and for every symlink it meets, at the
moment it meets it.  What we get back is a descriptor, and we go on from descriptors (``openat``
with ``O_NOFOLLOW``, one name at a time), never by re-walking a path.  Whatever the container
swaps in, the worst it gets is a copy of its own files.

A running container's root is the one its processes see, ``/proc/PID/root``: its overlay with its
volumes, binds and tmpfs mounted in it (checked to be the container's: a PID can go to another
process).  A stopped one's layers are mounted for the time of the copy (as ``export`` does), with its
binds and volumes on them (:meth:`minicontainer.engine.mounts.ContainerMounts.attached`), in the
copying thread, as dockerd mounts them for ``docker cp``: a file copied to ``/data`` lands in the
volume mounted there, where the container will find it.
"""

from __future__ import annotations

import asyncio
import base64
import errno
import json
import os
import shutil
import stat
import tarfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager, nullcontext
from typing import Any, BinaryIO

from minicontainer.engine.errors import Conflict, EngineError, InvalidParameter, NotFound
from minicontainer.engine.threads import ChunkReader, fed, output_of
from minicontainer.image import overlay
from minicontainer.kernel.syscalls import (
    RESOLVE_IN_ROOT,
    RESOLVE_NO_MAGICLINKS,
    KernelError,
    Syscalls,
)

IN_ROOT = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS  # /proc/PID/root-style links would lead anywhere
STAT_HEADER = "X-Docker-Container-Path-Stat"

# Go's os.FileMode type bits, which the API's path stat uses (not st_mode's): the CLI tests
# the directory and symlink bits to decide how to copy.
GO_MODE_DIR = 1 << 31
GO_MODE_SYMLINK = 1 << 27
GO_MODE_DEVICE = 1 << 26
GO_MODE_PIPE = 1 << 25
GO_MODE_SOCKET = 1 << 24
GO_MODE_SETUID = 1 << 23
GO_MODE_SETGID = 1 << 22
GO_MODE_CHAR_DEVICE = 1 << 21
GO_MODE_STICKY = 1 << 20


def go_file_mode(st_mode: int) -> int:
    """``st_mode`` -> Go's ``os.FileMode``: the permission bits, plus one bit per file type and flag."""
    mode = st_mode & 0o777
    kind = stat.S_IFMT(st_mode)
    mode |= {stat.S_IFDIR: GO_MODE_DIR, stat.S_IFLNK: GO_MODE_SYMLINK, stat.S_IFIFO: GO_MODE_PIPE,
             stat.S_IFSOCK: GO_MODE_SOCKET, stat.S_IFBLK: GO_MODE_DEVICE,
             stat.S_IFCHR: GO_MODE_DEVICE | GO_MODE_CHAR_DEVICE}.get(kind, 0)
    for bit, go_bit in ((stat.S_ISUID, GO_MODE_SETUID), (stat.S_ISGID, GO_MODE_SETGID),
                        (stat.S_ISVTX, GO_MODE_STICKY)):
        if st_mode & bit:
            mode |= go_bit
    return mode


def stat_header(info: dict) -> str:
    """The ``X-Docker-Container-Path-Stat`` header: base64 (padded, standard alphabet) of the JSON."""
    return base64.b64encode(json.dumps(info).encode()).decode()


def _rfc3339_nano(seconds: float) -> str:
    whole = int(seconds)
    nanos = f"{round((seconds - whole) * 1e9):09d}".rstrip("0")
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + (f".{nanos}" if nanos else "") + "Z"


def absolute(path: str) -> str:
    """The API's path (absolute, or relative to ``/``), normalised: ``/a/b``."""
    return os.path.normpath("/" + path.lstrip("/"))  # (normpath keeps a leading "//": POSIX allows it)


def inside(path: str) -> str:
    """The API's path as openat2 takes it, relative to the root: ``a/b``, or ``.`` for the root."""
    return absolute(path).lstrip("/") or "."


# --- reading: HEAD and GET -------------------------------------------------------------------------


class ContainerRoot:
    """A container's root filesystem, held open by a descriptor, and the paths resolved inside it."""

    def __init__(self, sys: Syscalls, root_fd: int, container_name: str) -> None:
        self.sys = sys
        self.fd = root_fd
        self.name = container_name

    def open(self, path: str, flags: int, *, missing: str = "") -> int:
        """openat2 in the root; a path that is not there is a 404 in Docker's words."""
        try:
            return self.sys.openat2(self.fd, inside(path), flags, IN_ROOT, root=f"<root of {self.name}>",
                                    detail="resolved by the kernel as if the container's root were /")
        except KernelError as e:
            if e.errno in (errno.ENOENT, errno.ENOTDIR):
                raise NotFound(missing or f"Could not find the file {path} in container {self.name}") from None
            if e.errno == errno.ELOOP:
                raise Conflict(f"{path} in container {self.name} changed while being copied "
                               "(it became a symbolic link): try again") from None
            raise EngineError(str(e)) from None

    def stat(self, path: str) -> dict:
        """What ``HEAD`` says about ``path``: name, size, mode (Go's), mtime, linkTarget.  A symlink is
        described, not followed; its linkTarget is where it leads *in the container*."""
        fd = self.open(path, os.O_PATH | os.O_NOFOLLOW)
        try:
            st = os.fstat(fd)
        finally:
            os.close(fd)
        link_target = ""
        if stat.S_ISLNK(st.st_mode):
            link_target = self.resolved(path)
        name = os.path.basename(absolute(path)) or "/"
        return {"name": name, "size": st.st_size, "mode": go_file_mode(st.st_mode),
                "mtime": _rfc3339_nano(st.st_mtime), "linkTarget": link_target}

    def resolved(self, path: str) -> str:
        """Where ``path`` leads in the container, every symlink followed (inside the root)."""
        try:
            fd = self.sys.openat2(self.fd, inside(path), os.O_PATH, IN_ROOT, root=f"<root of {self.name}>")
        except KernelError:  # a dangling link: where it points, read lexically
            parent = self.open(os.path.dirname(absolute(path)), os.O_PATH | os.O_DIRECTORY)
            try:
                target = os.readlink(os.path.basename(path.rstrip("/")), dir_fd=parent)
            finally:
                os.close(parent)
            return os.path.normpath(os.path.join(os.path.dirname("/" + inside(path)), target))
        try:
            here, top = os.readlink(f"/proc/self/fd/{fd}"), os.readlink(f"/proc/self/fd/{self.fd}")
        finally:
            os.close(fd)
        return "/" + os.path.relpath(here, top).removeprefix(".")

    def write_tar(self, path: str, out: BinaryIO) -> None:
        """``GET``: a tar of ``path``, its entries named after the path's last component (a directory's
        under it).  A symlink is archived as the link itself, as ``docker cp`` copies it."""
        normal = absolute(path)
        arcname = "." if path.endswith("/.") else (os.path.basename(normal) or ".")
        fd = self.open(path, os.O_PATH | os.O_NOFOLLOW)
        try:
            st = os.fstat(fd)
        finally:
            os.close(fd)
        with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            if stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode):
                # Opened once more, no link followed at the end: swapped for a symlink meanwhile? ELOOP.
                flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | (os.O_DIRECTORY if stat.S_ISDIR(st.st_mode) else 0)
                fd = self.open(path, flags)
                try:
                    _add(tar, fd, arcname, os.fstat(fd), link="")
                finally:
                    os.close(fd)
            else:
                parent = self.open(os.path.dirname(normal), os.O_PATH | os.O_DIRECTORY)
                try:
                    base = os.path.basename(normal)
                    st = os.stat(base, dir_fd=parent, follow_symlinks=False)
                    link = os.readlink(base, dir_fd=parent) if stat.S_ISLNK(st.st_mode) else ""
                finally:
                    os.close(parent)
                _add(tar, -1, arcname, st, link=link)


def _info(arcname: str, st: os.stat_result, link: str) -> tarfile.TarInfo | None:
    info = tarfile.TarInfo(arcname)
    info.mode, info.uid, info.gid, info.mtime = stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, int(st.st_mtime)
    kind = stat.S_IFMT(st.st_mode)
    types = {stat.S_IFREG: tarfile.REGTYPE, stat.S_IFDIR: tarfile.DIRTYPE, stat.S_IFLNK: tarfile.SYMTYPE,
             stat.S_IFIFO: tarfile.FIFOTYPE, stat.S_IFCHR: tarfile.CHRTYPE, stat.S_IFBLK: tarfile.BLKTYPE}
    if kind not in types:
        return None  # a socket: tar has no type for it (Docker leaves them out too)
    info.type = types[kind]
    info.size = st.st_size if kind == stat.S_IFREG else 0
    info.linkname = link
    if kind in (stat.S_IFCHR, stat.S_IFBLK):
        info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    return info


def _add(tar: tarfile.TarFile, fd: int, arcname: str, st: os.stat_result, *, link: str) -> None:
    """One entry (``fd`` open on it if it is a file or a directory), and a directory's contents, each
    opened relative to its directory's descriptor with O_NOFOLLOW: never a path walked twice."""
    info = _info(arcname, st, link)
    if info is None:
        return
    if info.isreg():
        with open(os.dup(fd), "rb") as f:
            tar.addfile(info, f)
        return
    tar.addfile(info)
    if not info.isdir():
        return
    for name in sorted(os.listdir(fd)):
        child_name = f"{arcname}/{name}" if arcname != "." else name
        try:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode):
                flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
                child = os.open(name, flags | (os.O_DIRECTORY if stat.S_ISDIR(st.st_mode) else 0), dir_fd=fd)
                try:
                    _add(tar, child, child_name, os.fstat(child), link="")
                finally:
                    os.close(child)
            else:
                link = os.readlink(name, dir_fd=fd) if stat.S_ISLNK(st.st_mode) else ""
                _add(tar, -1, child_name, st, link=link)
        except FileNotFoundError:
            continue  # removed while we copy: as it would be a moment later
        # ELOOP / ENOTDIR (swapped for a link or another type meanwhile) propagate: the copy fails


# --- writing: PUT ----------------------------------------------------------------------------------


class Extraction:
    """``PUT``: a tar unpacked into a directory of the container, every entry created relative to a
    descriptor of its parent (resolved in the root), with O_EXCL or O_NOFOLLOW: an existing symlink
    is replaced, never written through."""

    def __init__(self, root: ContainerRoot, dest: str, *, no_overwrite_dir_non_dir: bool,
                 owner: tuple[int, int] | None) -> None:
        self.root = root
        self.dest = absolute(dest)
        self.no_overwrite = no_overwrite_dir_non_dir
        self.owner = owner            # copyUIDGID: the container user's, else the tar's own
        self.dirs: dict[str, int] = {}
        self.dir_times: list[tuple[str, str, float]] = []
        fd = root.open(dest, os.O_PATH)  # a symlink to a directory is followed, inside the root
        self.dirs[""] = fd
        if not stat.S_ISDIR(os.fstat(fd).st_mode):
            self.close()
            raise InvalidParameter("extraction point is not a directory")

    def close(self) -> None:
        for fd in self.dirs.values():
            os.close(fd)
        self.dirs.clear()

    def directory(self, relative: str) -> int:
        """A descriptor of the directory ``relative`` (to the destination), made if missing."""
        if relative in self.dirs:
            return self.dirs[relative]
        parent = self.directory(os.path.dirname(relative))
        name = os.path.basename(relative)
        try:
            os.mkdir(name, 0o755, dir_fd=parent)
        except FileExistsError:
            pass
        # Resolved from the root again: were it a symlink, it leads where it leads inside the container.
        fd = self.root.open(os.path.join(self.dest, relative), os.O_PATH | os.O_DIRECTORY)
        self.dirs[relative] = fd
        return fd

    def extract(self, tar: tarfile.TarFile) -> None:
        for member in tar:
            relative = _member_path(member.name)
            if not relative:
                continue  # "." itself: the destination, which exists
            parent = self.directory(os.path.dirname(relative))
            name = os.path.basename(relative)
            self._make_room(parent, relative, name, member)
            self._create(tar, member, parent, name)
            if member.isdir():
                self.dir_times.append((relative, name, member.mtime))
        for relative, name, mtime in reversed(self.dir_times):  # after their contents changed them
            parent = self.directory(os.path.dirname(relative))
            os.utime(name, (mtime, mtime), dir_fd=parent, follow_symlinks=False)

    def _make_room(self, parent: int, relative: str, name: str, member: tarfile.TarInfo) -> None:
        try:
            existing = os.stat(name, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            return
        is_dir = stat.S_ISDIR(existing.st_mode)
        where = os.path.join(self.dest, relative)
        if self.no_overwrite and is_dir != member.isdir():
            what = ("directory", "non-directory") if is_dir else ("non-directory", "directory")
            raise EngineError(f'cannot overwrite {what[0]} "{where}" with {what[1]} "{where}"')
        if is_dir and member.isdir():
            return  # kept: its mode and times are set from the entry
        if is_dir:
            shutil.rmtree(name, dir_fd=parent)
        else:
            os.unlink(name, dir_fd=parent)

    def _create(self, tar: tarfile.TarFile, member: tarfile.TarInfo, parent: int, name: str) -> None:
        mode = member.mode & 0o7777
        if member.isdir():
            try:
                os.mkdir(name, 0o700, dir_fd=parent)
            except FileExistsError:
                pass
            fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
            try:
                self._own(fd, member, mode)
            finally:
                os.close(fd)
            return
        if member.isreg():
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                         dir_fd=parent)
            with open(fd, "wb") as out:
                source = tar.extractfile(member)
                if source is not None:
                    shutil.copyfileobj(source, out, 1 << 20)
                self._own(out.fileno(), member, mode)
                os.utime(out.fileno(), (member.mtime, member.mtime))
            return
        if member.issym():
            os.symlink(member.linkname, name, dir_fd=parent)
        elif member.islnk():
            target = _member_path(member.linkname)
            if not target:
                raise InvalidParameter(f"invalid hard link {member.name} -> {member.linkname}")
            source_dir = self.directory(os.path.dirname(target))
            os.link(os.path.basename(target), name, src_dir_fd=source_dir, dst_dir_fd=parent, follow_symlinks=False)
            return
        elif member.isfifo():
            os.mkfifo(name, mode, dir_fd=parent)
        elif member.ischr() or member.isblk():
            kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
            os.mknod(name, mode | kind, os.makedev(member.devmajor, member.devminor), dir_fd=parent)
        else:
            raise InvalidParameter(f"{member.name}: tar entry type {member.type!r} cannot be copied")
        uid, gid = self.owner or (member.uid, member.gid)
        os.chown(name, uid, gid, dir_fd=parent, follow_symlinks=False)
        if not member.issym():
            os.chmod(name, mode, dir_fd=parent)  # after chown, which clears setuid bits
        os.utime(name, (member.mtime, member.mtime), dir_fd=parent, follow_symlinks=False)

    def _own(self, fd: int, member: tarfile.TarInfo, mode: int) -> None:
        uid, gid = self.owner or (member.uid, member.gid)
        os.fchown(fd, uid, gid)
        os.fchmod(fd, mode)


def _own_root(container: Any, ref: str) -> int:
    """A running container's root as its processes see it (``/proc/PID/root``: its volumes, binds and
    tmpfs mounted in it), held by a descriptor.  Had the container just ended and its PID gone to
    another process, that would be another root (the host's!): so the descriptor must lead to the
    very directory the container's overlay is mounted on, or the copy stops."""
    try:
        fd = os.open(f"/proc/{container.state['Pid']}/root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except (FileNotFoundError, ProcessLookupError):
        raise Conflict(f"container {ref} stopped during the copy: try again") from None
    try:
        here, merged = os.fstat(fd), os.stat(container.path("merged"))
    except FileNotFoundError:
        here = merged = None
    if here is None or merged is None or (here.st_dev, here.st_ino) != (merged.st_dev, merged.st_ino):
        os.close(fd)
        raise Conflict(f"container {ref} stopped during the copy: try again")
    return fd


def _member_path(name: str) -> str:
    """A tar entry's name as a path below the destination; ``..`` is refused (it could only mean out)."""
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise InvalidParameter(f"invalid tar entry {name!r}: '..' would lead out of the destination")
    return "/".join(parts)


# --- the engine's side --------------------------------------------------------------------------------


class ContainerArchives:
    """The archive requests (``cp`` both ways), ``export`` and ``diff`` (the container's changes to its
    image's files), for :class:`~minicontainer.engine.service.Engine` (which inherits this)."""

    containers: dict
    exporting: set[str]
    store: Any
    get: Callable
    event_log: Any
    mounts: Any  # engine/mounts.py's ContainerMounts

    @contextmanager
    def _root(self, container: Any, ref: str, mount: bool, lowerdirs: list[str]) -> Iterator[ContainerRoot]:
        """(In a thread.)  The container's root as it sees it: a running one's own (its mounts
        included), a stopped one's layers mounted for the while, with its volumes and binds."""
        sys = Syscalls()
        root = overlay.mount_rootfs(sys, lowerdirs, container.dir) if mount else f"/proc/{container.state['Pid']}/root"
        try:
            with self.mounts.attached(container, root, sys) if mount else nullcontext():
                fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC) if mount else _own_root(container, ref)
                try:
                    yield ContainerRoot(sys, fd, ref)
                finally:
                    os.close(fd)
        finally:
            if mount:
                overlay.unmount_rootfs(sys, container.dir, remove=False)

    @property
    def _mount_locks(self) -> dict[str, asyncio.Lock]:
        return self.__dict__.setdefault("_copy_mount_locks", {})

    @asynccontextmanager
    async def _claimed(self, ref: str) -> AsyncIterator[tuple[Any, bool, list[str]]]:
        """(On the loop.)  The container to copy from or into, and whether its layers must be mounted
        (it is stopped).  Copies of one container take turns (its ``merged/`` is mounted once at a
        time), and while a stopped container's layers are ours, start and rm wait (409)."""
        container = self.get(ref)
        async with self._mount_locks.setdefault(container.id, asyncio.Lock()):
            if container.id in self.exporting:
                raise Conflict(f"container {container.id} is being exported: copy when the export is done")
            mount = not container.running
            lowerdirs = self.store.lowerdirs(self.store.image(container.record["Image"])) if mount else []
            if mount:
                self.exporting.add(container.id)
            try:
                yield container, mount, lowerdirs
            finally:
                if mount:
                    self.exporting.discard(container.id)

    async def archive_stat(self, ref: str, path: str) -> dict:
        """``HEAD /containers/{id}/archive``: what is at ``path``."""
        async with self._claimed(ref) as (container, mount, lowerdirs):
            def run() -> dict:
                with self._root(container, ref, mount, lowerdirs) as root:
                    return root.stat(path)

            return await asyncio.get_running_loop().run_in_executor(None, run)

    async def archive(self, ref: str, path: str) -> AsyncIterator[bytes]:
        """``GET /containers/{id}/archive``: a tar of ``path``, as it is written."""
        async with self._claimed(ref) as (container, mount, lowerdirs):
            loop = asyncio.get_running_loop()
            finished = asyncio.Event()  # the thread is done, its mount gone: the next copy may mount

            def write(out: BinaryIO) -> None:
                try:
                    with self._root(container, ref, mount, lowerdirs) as root:
                        root.write_tar(path, out)
                finally:
                    loop.call_soon_threadsafe(finished.set)

            self.event_log.container(container, "archive-path")
            try:
                async for chunk in output_of(write):
                    yield chunk
            finally:
                await finished.wait()

    async def put_archive(self, ref: str, path: str, upload: AsyncIterator[bytes], *,
                          no_overwrite_dir_non_dir: bool = False, copy_uid_gid: bool = False) -> None:
        """``PUT /containers/{id}/archive``: the uploaded tar (compressed or not) unpacked into the
        directory ``path``.  The destination is checked before the upload is read: a 404 or 400
        costs the client no upload."""
        async with self._claimed(ref) as (container, mount, lowerdirs):
            self._check_writable(container, path)
            user = (container.record["Config"].get("User") or "0") if copy_uid_gid else None
            loop = asyncio.get_running_loop()
            ready: asyncio.Future = loop.create_future()
            reader = ChunkReader()

            def work() -> None:
                with self._root(container, ref, mount, lowerdirs) as root:
                    try:
                        extraction = Extraction(root, path, no_overwrite_dir_non_dir=no_overwrite_dir_non_dir,
                                                owner=_owner(root, user) if user else None)
                    except BaseException as e:
                        loop.call_soon_threadsafe(ready.set_exception, e)
                        raise
                    loop.call_soon_threadsafe(ready.set_result, None)
                    try:
                        with tarfile.open(fileobj=reader, mode="r|*") as tar:
                            extraction.extract(tar)
                    except tarfile.TarError as e:
                        raise InvalidParameter(f"the upload is not a tar archive: {e}") from None
                    finally:
                        extraction.close()
                        reader.close()

            task = loop.run_in_executor(None, work)
            try:
                await asyncio.shield(ready)  # the destination is a directory: now read the upload
            except BaseException:
                await asyncio.gather(task, return_exceptions=True)
                raise
            async with fed(reader, upload):
                await task
            self.event_log.container(container, "extract-to-dir")

    def _check_writable(self, container: Any, path: str) -> None:
        """dockerd's rule for a copy into a container: into a volume or bind, that mount must be
        writable; elsewhere, the root filesystem (``--read-only``: 400, in dockerd's words)."""
        where = absolute(path)
        inside = [mp for mp in self.mounts.of(container) if mp.type in ("bind", "volume")
                  and (where == mp.destination or where.startswith(mp.destination.rstrip("/") + "/"))]
        if inside:
            if not max(inside, key=lambda mp: len(mp.destination)).rw:  # the innermost mount decides
                raise InvalidParameter("mounted volume is marked read-only")
        elif container.record["HostConfig"].get("ReadonlyRootfs"):
            raise InvalidParameter("container rootfs is marked read-only")

    async def export(self, cid: str) -> AsyncIterator[bytes]:
        """``docker export``: the container's filesystem as one tar, its layers flattened (what
        ``import`` takes back).

        A running container's ``merged/`` is read as it is (should it exit meanwhile, its unmount
        is lazy: the export reads on).  A stopped one's layers are mounted for the time of the export,
        all of it in the export's thread, and ``start`` and ``rm`` wait their turn (409) meanwhile."""
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

    def changes(self, cid: str) -> list[dict]:
        container = self.get(cid)
        image = self.store.image(container.record["Image"])
        kinds = {"C": 0, "A": 1, "D": 2}
        return [{"Path": path, "Kind": kinds[kind]}
                for kind, path in overlay.diff(container.dir, self.store.lowerdirs(image))]


def _owner(root: ContainerRoot, user: str) -> tuple[int, int]:
    """``copyUIDGID``: the container's user, as its own /etc/passwd and /etc/group say."""
    from minicontainer.engine.spec import resolve_user

    try:
        who = resolve_user(os.readlink(f"/proc/self/fd/{root.fd}"), user)
    except ValueError as e:
        raise InvalidParameter(str(e)) from None
    return who.uid, who.gid
