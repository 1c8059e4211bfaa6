"""Named volumes: directories the engine keeps apart from any container, so that data outlives them.

A container's own writes go into its overlay's upper layer, and ``rm`` deletes them.  A *volume* is
a directory of the engine's, mounted into containers (``-v data:/var/lib/redis``): remove the
container, and the volume with its data stays, for the next container to mount.  Docker lays them
out like this, and so do we::

    <data root>/volumes/
        data/                 one directory per volume, named after it
            volume.json       its record: driver, labels, options, when it was made, filled or not
            _data/            what containers see (the "Mountpoint" inspect shows)

Docker's rules, kept here:

* **Names** are ``[a-zA-Z0-9][a-zA-Z0-9_.-]+``: a name becomes a directory, so no ``/`` and no
  ``..`` may lead it elsewhere (``-v foo/bar:/x`` is refused: it is neither a name nor a host path).
* **Anonymous volumes** (a container's ``Config.Volumes``, an image's ``VOLUME``) get a random
  64-hex name and the label ``com.docker.volume.anonymous``; ``volume prune`` removes only those
  unless told ``all=true`` (API 1.42 and later).
* **In use** means some container's mounts name the volume, running or not.  The store keeps no list
  of its own: it asks the engine (``users(name)``), whose container records are the one truth.
* **Filled from the image on first use**: an image that has files at the mount point (redis's
  ``/data``, a database's default config) puts them into an empty volume the first time one is
  mounted there (:meth:`VolumeStore.copy_up`), so the program finds what it expects.
* **The local driver's options** (``type``, ``device``, ``o``, as mount(8) takes them) make the
  volume a mount of its own when a container uses it: ``-o type=tmpfs -o device=tmpfs -o
  o=size=64m`` is a tmpfs, ``-o type=none -o device=/srv/data -o o=bind`` a host directory.  The
  store mounts it on ``_data`` for the first container and unmounts it after the last
  (:meth:`VolumeStore.mount`, :meth:`VolumeStore.unmount`).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import secrets
import shutil
import stat
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from minicontainer.engine.errors import Conflict, EngineError, InvalidParameter, NotFound
from minicontainer.engine.filters import checked_filters, has_label, has_labels
from minicontainer.kernel.mounts import parse_options
from minicontainer.kernel.syscalls import (
    MNT_DETACH,
    MS_BIND,
    MS_RDONLY,
    MS_REMOUNT,
    RESOLVE_IN_ROOT,
    RESOLVE_NO_MAGICLINKS,
    KernelError,
    Syscalls,
)

DRIVER = "local"  # the one driver this engine has: Docker's default
RESTRICTED_NAME_CHARS = "[a-zA-Z0-9][a-zA-Z0-9_.-]"
VALID_NAME = re.compile(RESTRICTED_NAME_CHARS + "+")
ANONYMOUS_LABEL = "com.docker.volume.anonymous"  # Docker marks anonymous volumes with it (value "")
DATA_DIR = "_data"
RECORD = "volume.json"
# The local driver's options, and those each needs besides (dockerd's rules and words).
LOCAL_OPTIONS = ("type", "o", "device", "size")
REQUIRED_WITH = {"device": ("type",), "type": ("device",), "o": ("device", "type")}
LIST_FILTERS = ("dangling", "driver", "label", "name")
PRUNE_FILTERS = ("label", "label!", "all")
IN_ROOT = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS


@dataclass
class Volume:
    """One volume, as its ``volume.json`` records it."""

    name: str
    mountpoint: str  # <data root>/volumes/NAME/_data: what containers mount
    driver: str = DRIVER
    labels: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)
    created_at: str = ""  # RFC 3339, seconds, as Docker shows it
    anonymous: bool = False  # made for a container's Config.Volumes or an image's VOLUME
    filled: bool = False  # copy_up has put an image's files in it once: never again

    @property
    def directory(self) -> str:
        return os.path.dirname(self.mountpoint)

    @property
    def needs_mount(self) -> bool:
        """A volume made with ``type``/``device`` options is a mount of its own, not just a directory."""
        return bool(self.options.get("type") or self.options.get("device"))

    def inspect(self, usage: dict | None = None) -> dict:
        """Docker's Volume JSON (``docker volume inspect``); ``UsageData`` only where docker asks for
        it (``system df``): it costs a walk of the whole volume."""
        out: dict[str, Any] = {"CreatedAt": self.created_at, "Driver": self.driver, "Labels": self.labels or None,
                               "Mountpoint": self.mountpoint, "Name": self.name, "Options": self.options or None,
                               "Scope": "local"}
        if usage is not None:
            out["UsageData"] = usage
        return out

    def record(self) -> dict:
        return {"Name": self.name, "Driver": self.driver, "Labels": self.labels, "Options": self.options,
                "CreatedAt": self.created_at, "Filled": self.filled}


def check_name(name: str) -> None:
    """dockerd's rule and words for a local volume's name (``create NAME: ...``, 400)."""
    if len(name) == 1:
        raise InvalidParameter(f"create {name}: volume name is too short, names should be at least two "
                               "alphanumeric characters")
    if not VALID_NAME.fullmatch(name):
        raise InvalidParameter(f'create {name}: "{name}" includes invalid characters for a local volume name, '
                               f'only "{RESTRICTED_NAME_CHARS}" are allowed. If you intended to pass a host '
                               "directory, use absolute path")


def check_options(name: str, options: dict[str, str]) -> None:
    """The local driver's options: ``type``, ``device``, ``o`` together (mount(8)'s -t, device and -o);
    ``size`` needs filesystem quotas, which this engine does not set up: refused, as dockerd refuses
    it on a filesystem without them."""
    for key in options:
        if key not in LOCAL_OPTIONS:
            raise InvalidParameter(f'create {name}: invalid option: "{key}"')
    if "size" in options:
        raise InvalidParameter(f"create {name}: quota size requested but no quota support (a tmpfs volume "
                               "takes its size in o=: -o type=tmpfs -o device=tmpfs -o o=size=64m)")
    for key, needed in REQUIRED_WITH.items():
        for other in needed:
            if key in options and other not in options:
                raise InvalidParameter(f'create {name}: missing required option: "{other}"')


def containers_using(containers: Iterable[Any], name: str) -> list[str]:
    """The IDs of the containers whose mounts (inspect's ``Mounts``) use the volume ``name``."""
    return [c.id for c in containers
            if any(m.get("Type") == "volume" and m.get("Name") == name for m in c.record.get("Mounts") or [])]


def labels_match(labels: dict[str, str], filters: dict[str, list[str]]) -> bool:
    """``label=KEY`` / ``label=KEY=VALUE`` must all match; ``label!=...`` must all not."""
    return has_labels(labels, filters.get("label", [])) and not any(has_label(labels, w) for w in filters.get("label!", []))


def _bool_filter(key: str, values: list[str]) -> bool:
    """A filter that takes one boolean (``dangling=true``, ``all=1``), as Go's ParseBool reads it."""
    if len(values) != 1:
        raise InvalidParameter(f"invalid filter '{key}={values}': only one value is expected")
    value = values[0].lower()
    if value not in ("1", "t", "true", "0", "f", "false"):
        raise InvalidParameter(f"invalid filter '{key}={values[0]}'")
    return value in ("1", "t", "true")


class VolumeStore:
    """The engine's volumes (``engine.volumes``): create, find, list, remove, prune; mount the ones
    with options; fill an empty one from an image."""

    def __init__(self, root: str, users: Callable[[str], list[str]], events: Any = None,
                 sys: Syscalls | None = None) -> None:
        self.root = root
        self.users = users  # name -> IDs of the containers that use it (the engine's records say)
        self.events = events  # the engine's EventLog: volume create, destroy, mount, unmount, prune
        self.sys = sys or Syscalls()
        self.lock = threading.RLock()  # copy_up may run in a worker thread
        self.volumes: dict[str, Volume] = {}
        self.mounted: dict[str, set[str]] = {}  # name -> references (container IDs) of a mounted volume
        os.makedirs(root, mode=0o701, exist_ok=True)
        for name in os.listdir(root):
            volume = self._load(name)
            if volume is None:
                continue
            self.volumes[name] = volume
            if volume.needs_mount and is_mount_point(volume.mountpoint):
                # Still mounted from before a restart (containers may still use it): known as mounted,
                # unmounted after the last user, as dockerd restores it.
                self.mounted[name] = set()

    def _load(self, name: str) -> Volume | None:
        if not VALID_NAME.fullmatch(name):
            return None
        directory = os.path.join(self.root, name)
        try:
            with open(os.path.join(directory, RECORD)) as f:
                rec = json.load(f)
        except (OSError, ValueError):
            return None  # half made (the daemon died during create): not a volume
        labels = rec.get("Labels") or {}
        return Volume(name=name, mountpoint=os.path.join(directory, DATA_DIR), driver=rec.get("Driver", DRIVER),
                      labels=labels, options=rec.get("Options") or {}, created_at=rec.get("CreatedAt", ""),
                      anonymous=ANONYMOUS_LABEL in labels, filled=bool(rec.get("Filled")))

    def _save(self, volume: Volume) -> None:
        tmp = os.path.join(volume.directory, f".{RECORD}.tmp")
        with open(tmp, "w") as f:
            json.dump(volume.record(), f, indent=1)
        os.rename(tmp, os.path.join(volume.directory, RECORD))

    def event(self, action: str, volume: Volume | None, **attributes: Any) -> None:
        """A volume event (``create``, ``destroy``, ``mount``, ``unmount``, ``prune``), as dockerd's:
        the actor is the volume's name, ``driver`` among the attributes."""
        if self.events is None:
            return
        attrs = {"driver": volume.driver, **attributes} if volume is not None else attributes
        self.events.emit("volume", action, volume.name if volume is not None else "", attrs)

    # --- create, get, list --------------------------------------------------------------------------
    def create(self, name: str | None = None, *, driver: str = DRIVER, driver_opts: dict[str, str] | None = None,
               labels: dict[str, str] | None = None, anonymous: bool = False) -> Volume:
        """A new volume; a volume of that name already there is returned as it is (Docker's ``create``
        is idempotent), unless the request asks for other options or labels: 409 (nothing asked for
        is silently dropped)."""
        options, labels = dict(driver_opts or {}), dict(labels or {})
        if not name:
            name, anonymous = secrets.token_hex(32), True
        if anonymous:
            labels.setdefault(ANONYMOUS_LABEL, "")
        check_name(name)
        if (driver or DRIVER) != DRIVER:
            raise NotFound(f'create {name}: error looking up volume plugin {driver}: plugin "{driver}" not found')
        check_options(name, options)
        with self.lock:
            existing = self.volumes.get(name)
            if existing is not None:
                differs = [what for what, asked, have in (("options", options, existing.options),
                                                          ("labels", labels, existing.labels)) if asked and asked != have]
                if differs:
                    raise Conflict(f"create {name}: volume name must be unique: a volume '{name}' already exists "
                                   f"with other {' and '.join(differs)}; remove it first, or choose another name")
                return existing
            from minicontainer.engine.clock import now_rfc3339

            directory = os.path.join(self.root, name)
            if os.path.lexists(directory) and not is_mount_point(os.path.join(directory, DATA_DIR)):
                shutil.rmtree(directory, ignore_errors=True)  # half made (no record): the daemon died in a create
            volume = Volume(name=name, mountpoint=os.path.join(directory, DATA_DIR), labels=labels, options=options,
                            created_at=now_rfc3339().split(".")[0] + "Z", anonymous=anonymous)
            try:
                os.mkdir(directory, 0o701)  # only root may look in; _data is for the containers' users
                os.mkdir(volume.mountpoint, 0o755)
                self._save(volume)
            except OSError as e:
                shutil.rmtree(directory, ignore_errors=True)
                raise EngineError(f"create {name}: error while creating volume path '{directory}': "
                                  f"{e.strerror}") from None
            self.volumes[name] = volume
        self.event("create", volume)
        return volume

    def get(self, name: str) -> Volume:
        volume = self.volumes.get(name)
        if volume is None:
            raise NotFound(f"get {name}: no such volume")
        return volume

    def list(self, filters: dict[str, list[str]] | None = None) -> list[Volume]:
        """The volumes that match every filter given: ``name`` (a regular expression, as dockerd reads
        it), ``driver``, ``label`` (``KEY`` or ``KEY=VALUE``), ``dangling`` (used by no container)."""
        filters = checked_filters(filters, LIST_FILTERS)
        patterns = [re.compile(p) for p in filters.get("name", [])]
        dangling = _bool_filter("dangling", filters["dangling"]) if filters.get("dangling") else None
        out = []
        for volume in sorted(self.volumes.values(), key=lambda v: v.name):
            if patterns and not any(p.search(volume.name) for p in patterns):
                continue
            if filters.get("driver") and volume.driver not in filters["driver"]:
                continue
            if not labels_match(volume.labels, filters):
                continue
            if dangling is not None and bool(self.users(volume.name)) == dangling:
                continue
            out.append(volume)
        return out

    def usage(self, volume: Volume) -> dict:
        """``UsageData``: bytes in it (-1: not known, for a volume mounted from elsewhere) and how many
        containers use it."""
        from minicontainer.engine.system import disk_used

        size = -1 if volume.needs_mount else disk_used(volume.mountpoint)
        return {"RefCount": len(self.users(volume.name)), "Size": size}

    # --- remove, prune ------------------------------------------------------------------------------
    def remove(self, name: str, force: bool = False) -> None:
        """Remove a volume and its data.  In use by a container (even a stopped one): 409, as dockerd
        words it.  ``force`` makes a missing volume no error (``docker volume rm -f``)."""
        try:
            volume = self.get(name)
        except NotFound:
            if force:
                return
            raise
        with self.lock:
            users = self.users(name)
            if users:
                raise Conflict(f"remove {name}: volume is in use - [{', '.join(users)}]")
            if self.mounted.get(name):
                raise EngineError(f"remove {name}: volume has active mounts")
            self._unmount_now(volume)
            if is_mount_point(volume.mountpoint):  # a bind of a host directory: its files are not ours
                raise EngineError(f"remove {name}: {volume.mountpoint} is still a mount point: unmount it first")
            # rmtree follows no symlink a container left in the volume, and the volume's own mount (if
            # any) is gone: nothing outside the data root is reached.
            shutil.rmtree(volume.directory, ignore_errors=False, onerror=_removing_failed)
            del self.volumes[name]
        self.event("destroy", volume)

    def prune(self, filters: dict[str, list[str]] | None = None) -> dict:
        """Remove the volumes no container uses: only anonymous ones unless ``all=true`` (API 1.42's
        rule; the route adds ``all`` for older clients), and never one with mount options (its data is
        elsewhere, as dockerd reasons)."""
        filters = checked_filters(filters, PRUNE_FILTERS)
        everything = _bool_filter("all", filters.pop("all")) if "all" in filters else False
        if not everything:
            filters["label"] = [*filters.get("label", []), ANONYMOUS_LABEL]
        from minicontainer.engine.system import disk_used

        deleted, reclaimed = [], 0
        for volume in list(self.volumes.values()):
            if volume.needs_mount or not labels_match(volume.labels, filters) or self.users(volume.name):
                continue
            size = disk_used(volume.mountpoint)
            try:
                self.remove(volume.name)
            except EngineError:
                continue  # taken meanwhile: not pruned, as dockerd skips it
            deleted.append(volume.name)
            reclaimed += size
        self.event("prune", None, reclaimed=reclaimed)
        return {"VolumesDeleted": deleted, "SpaceReclaimed": reclaimed}

    # --- mounts of the volumes with options ---------------------------------------------------------
    def mount(self, volume: Volume, ref: str, sys: Syscalls | None = None) -> str:
        """The host directory to bind into container ``ref``: the volume's ``_data``, mounted first if
        the volume has mount options and is not mounted yet (dockerd's local driver: one mount, shared
        by every container that uses it).  ``sys``: the container start's own (its ``--explain``
        then narrates the mount)."""
        with self.lock:
            if volume.needs_mount:
                if volume.name not in self.mounted:
                    self._mount_now(volume, sys or self.sys)
                    self.mounted[volume.name] = set()
                self.mounted[volume.name].add(ref)
        return volume.mountpoint

    def unmount(self, volume: Volume, ref: str, sys: Syscalls | None = None) -> None:
        """Container ``ref`` no longer uses the volume: after its last user, its own mount goes."""
        with self.lock:
            refs = self.mounted.get(volume.name)
            if refs is None:
                return
            refs.discard(ref)
            if not refs:
                self._unmount_now(volume, sys)

    def close(self) -> None:
        """The daemon stops: the volumes' own mounts go with it (no container is left to use them)."""
        with self.lock:
            for name in list(self.mounted):
                if name in self.volumes:
                    self._unmount_now(self.volumes[name])

    def _mount_now(self, volume: Volume, sys: Syscalls) -> None:
        """mount(2) as mount(8) would: ``o``'s flag words become flags, the rest the filesystem's data;
        a read-only bind needs a second call (the kernel ignores MS_RDONLY on a new bind)."""
        opts = volume.options
        parsed = parse_options([w for w in opts.get("o", "").split(",") if w])
        detail = f"volume {volume.name}: its local driver options (type={opts.get('type')}, device={opts.get('device')})"
        try:
            sys.mount(opts.get("device"), volume.mountpoint, opts.get("type"), parsed.flags, parsed.data or None,
                      detail=detail)
            if parsed.propagation:
                sys.mount(None, volume.mountpoint, None, parsed.propagation, detail=detail)
            if parsed.flags & (MS_BIND | MS_RDONLY) == MS_BIND | MS_RDONLY:
                sys.mount(None, volume.mountpoint, None, parsed.flags | MS_REMOUNT, detail=detail)
        except KernelError as e:
            with contextlib.suppress(KernelError):
                if is_mount_point(volume.mountpoint):
                    sys.umount2(volume.mountpoint, MNT_DETACH)
            raise EngineError(f"failed to mount local volume {volume.name}: {e}") from None

    def _unmount_now(self, volume: Volume, sys: Syscalls | None = None) -> None:
        self.mounted.pop(volume.name, None)
        if volume.needs_mount and is_mount_point(volume.mountpoint):
            try:
                (sys or self.sys).umount2(volume.mountpoint, MNT_DETACH,
                                 detail=f"volume {volume.name}: its last container is gone")
            except KernelError as e:
                raise EngineError(f"unmount volume {volume.name}: {e}") from None

    # --- filling a volume from an image -------------------------------------------------------------
    def copy_up(self, volume: Volume, rootfs: str, path: str, sys: Syscalls | None = None) -> bool:
        """Docker's "copy the image's content into an empty volume on first use": the files at ``path``
        in the container's root filesystem ``rootfs`` (owners, modes, times, symlinks as links, hard
        links, device nodes, extended attributes), into the volume, if it is empty and was never filled.
        Returns whether it copied.  Mount a volume with options (:meth:`mount`) first.

        The rootfs is the image's, so untrusted: ``path`` is resolved by the kernel as if ``rootfs``
        were ``/`` (openat2 RESOLVE_IN_ROOT), and from there everything is opened relative to a
        directory's descriptor, no link followed: a symlink in the image is copied as a symlink, never
        read through to the host."""
        with self.lock:
            if volume.filled:
                return False
            dest = os.open(volume.mountpoint, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                if os.listdir(dest):
                    return False  # the volume has data: it is never overwritten
                source = self._open_in_root(rootfs, path, sys or self.sys)
                if source is None:
                    return False  # nothing there in the image: nothing to copy (yet)
                start = time.monotonic_ns()
                copy = _TreeCopy(dest)
                try:
                    _copy_metadata(source, dest, os.fstat(source))  # the volume's root: the directory's owner and mode
                    copy.copy_dir(source, dest)
                    _copy_times(dest, os.fstat(source))
                finally:
                    os.close(source)
            finally:
                os.close(dest)
            volume.filled = True
            self._save(volume)
            (sys or self.sys).trace.record(
                "copy", f"{path} of the image -> volume {volume.name}", f"{copy.files} files, {copy.bytes} bytes",
                start_ns=start, detail="the volume was empty: it starts with the image's files, as Docker fills it")
            return True

    def _open_in_root(self, rootfs: str, path: str, sys: Syscalls) -> int | None:
        root = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            relative = os.path.normpath("/" + path).lstrip("/") or "."
            return sys.openat2(root, relative, os.O_RDONLY | os.O_DIRECTORY, IN_ROOT, root=f"<rootfs {rootfs}>",
                                    detail="the image's files at the volume's mount point, resolved inside its root")
        except KernelError as e:
            if e.errno in (errno.ENOENT, errno.ENOTDIR):
                return None
            raise EngineError(f"copy the image's {path} into the volume: {e}") from None
        finally:
            os.close(root)


def is_mount_point(path: str) -> bool:
    """Is something mounted on ``path``?  Asked of ``/proc/self/mountinfo`` (:func:`mount_of`), not of
    ``os.path.ismount``, which compares devices: a bind mount from the same filesystem has the same
    device as its parent, so ismount calls it no mount point."""
    from minicontainer.kernel.mounts import mount_of

    return mount_of(path).point == os.path.realpath(path)


def _removing_failed(function: Callable, path: str, excinfo: Any) -> None:
    error = excinfo[1]
    if isinstance(error, FileNotFoundError):
        return
    raise EngineError(f"remove {path}: {getattr(error, 'strerror', error)}")


# --- the copy: descriptors only --------------------------------------------------------------------

_NOFOLLOW_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


class _TreeCopy:
    """One copy of a directory's contents into another, by descriptors.  It remembers the first copy
    of each multiply-linked file (by device and inode), so that its other names become hard links
    too, and counts what it copied (for ``--explain``)."""

    def __init__(self, dst_root: int) -> None:
        self.dst_root = dst_root
        self.links: dict[tuple[int, int], str] = {}
        self.files = 0
        self.bytes = 0

    def copy_dir(self, src_dir: int, dst_dir: int, relative: str = "") -> None:
        for name in sorted(os.listdir(src_dir)):
            st = os.stat(name, dir_fd=src_dir, follow_symlinks=False)
            here = f"{relative}/{name}" if relative else name
            kind = stat.S_IFMT(st.st_mode)
            self.files += 1
            if kind != stat.S_IFDIR and st.st_nlink > 1 and (st.st_dev, st.st_ino) in self.links:
                os.link(self.links[(st.st_dev, st.st_ino)], name, src_dir_fd=self.dst_root, dst_dir_fd=dst_dir,
                        follow_symlinks=False)
                continue
            if kind == stat.S_IFDIR:
                os.mkdir(name, 0o700, dir_fd=dst_dir)
                src = os.open(name, _NOFOLLOW_READ | os.O_DIRECTORY, dir_fd=src_dir)
                dst = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dst_dir)
                try:
                    _copy_metadata(src, dst, os.fstat(src))
                    self.copy_dir(src, dst, here)
                    _copy_times(dst, os.fstat(src))  # last: filling it changed its times
                finally:
                    os.close(src)
                    os.close(dst)
            elif kind == stat.S_IFREG:
                self.copy_file(src_dir, dst_dir, name)
            elif kind == stat.S_IFLNK:
                os.symlink(os.readlink(name, dir_fd=src_dir), name, dir_fd=dst_dir)  # the link, never its target
                os.chown(name, st.st_uid, st.st_gid, dir_fd=dst_dir, follow_symlinks=False)
                os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dst_dir, follow_symlinks=False)
            elif kind in (stat.S_IFIFO, stat.S_IFCHR, stat.S_IFBLK):
                os.mknod(name, stat.S_IMODE(st.st_mode) | kind, st.st_rdev, dir_fd=dst_dir)
                os.chown(name, st.st_uid, st.st_gid, dir_fd=dst_dir, follow_symlinks=False)
                os.chmod(name, stat.S_IMODE(st.st_mode), dir_fd=dst_dir)  # just made by us: not a link (umask undone)
                os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dst_dir, follow_symlinks=False)
            else:
                self.files -= 1
                continue  # a socket: a live program's, meaningless in a copy (Docker skips them too)
            if kind != stat.S_IFDIR and st.st_nlink > 1:
                self.links[(st.st_dev, st.st_ino)] = here

    def copy_file(self, src_dir: int, dst_dir: int, name: str) -> None:
        src = os.open(name, _NOFOLLOW_READ, dir_fd=src_dir)
        dst = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dst_dir)
        try:
            while sent := os.sendfile(dst, src, None, 1 << 22):
                self.bytes += sent
            st = os.fstat(src)
            _copy_metadata(src, dst, st)
            _copy_times(dst, st)
        finally:
            os.close(src)
            os.close(dst)


def _copy_metadata(src: int, dst: int, st: os.stat_result) -> None:
    """Owner, then mode (chown clears set-id bits), then extended attributes (file capabilities, ACLs)."""
    os.fchown(dst, st.st_uid, st.st_gid)
    os.fchmod(dst, stat.S_IMODE(st.st_mode))
    try:
        names = os.listxattr(src)
    except OSError as e:
        if e.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            return
        raise
    for attr in names:
        try:
            os.setxattr(dst, attr, os.getxattr(src, attr))
        except OSError as e:
            if e.errno not in (errno.ENOTSUP, errno.EOPNOTSUPP):  # the volume's filesystem has no such namespace
                raise


def _copy_times(dst: int, st: os.stat_result) -> None:
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))
