"""A container's root filesystem: the image's layers, stacked by overlayfs under a writable layer.

overlayfs (``Documentation/filesystems/overlayfs.rst`` in the kernel) merges directories into one view:

* the **lower** directories, top first: the image's unpacked layers, shared by every container of the
  image and never written to;
* the **upper** directory: the container's own layer.  Every write lands here; a file of a lower layer
  is first *copied up*.  A deletion is recorded as a *whiteout*, a character device 0:0 of the same
  name, and a directory that replaces a lower one is marked *opaque* (``trusted.overlay.opaque=y``),
  exactly the form :mod:`.layers` gives the image's own whiteouts;
* the **work** directory: overlayfs's scratch space (copy-ups are prepared there, then renamed into
  upper), on the same filesystem as upper.

``mount -t overlay overlay -o lowerdir=L2:L1,upperdir=U,workdir=W MERGED`` and ``MERGED`` is the
container's root.  :func:`diff` reads ``upper/`` to say what the container changed (``docker diff``).

Per container (``container_dir``)::

    upper/    the container's writes          work/   overlayfs's scratch space
    merged/   the mount point: the rootfs     l/      short links to the layers (only if needed)

**The page-size limit.**  ``mount(2)`` copies its options string into one page (4096 bytes), and a
layer path in the store is ~100 characters: at about 40 layers the options no longer fit.  Then, as
Docker's overlay2 driver does, we give each layer a short symlink ``l/<n>`` in ``container_dir``,
``chdir`` into ``container_dir`` and mount with relative paths (``lowerdir=l/0:l/1...``); the kernel
resolves them at mount time.  ``chdir`` is process-wide, so the previous working directory is
restored at once (threads of a daemon must not rely on relative paths meanwhile).  Kernels since 6.8
also accept the layers one at a time through the new mount API (``fsconfig(... "lowerdir+" ...)``),
which has no such limit; ``mount(2)`` is kept here because it is the call learners meet everywhere.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat

from minicontainer.kernel.syscalls import MNT_DETACH, KernelError, Syscalls

OPAQUE_XATTR = "trusted.overlay.opaque"
MAX_LAYERS = 500  # overlayfs's own limit on lower layers


def _escape(path: str) -> str:
    """overlayfs splits its options at ',' and lowerdir at ':'; a backslash escapes either."""
    return path.replace("\\", "\\\\").replace(",", "\\,").replace(":", "\\:")


def _options(lowerdirs: list[str], upper: str, work: str) -> str:
    return f"lowerdir={':'.join(_escape(d) for d in lowerdirs)},upperdir={_escape(upper)},workdir={_escape(work)}"


def mount_rootfs(sys: Syscalls, lowerdirs: list[str], container_dir: str) -> str:
    """Mount the layers (``lowerdirs``, top layer first) with a writable layer; returns ``merged/``.

    ``upper/``, ``work/`` and ``merged/`` are created in ``container_dir`` if missing (an existing
    ``upper/`` is kept: a stopped container restarts with its changes).
    """
    if len(lowerdirs) > MAX_LAYERS:
        raise ValueError(f"{len(lowerdirs)} layers: overlayfs stacks at most {MAX_LAYERS}")
    container_dir = os.path.abspath(container_dir)
    upper, work, merged = (os.path.join(container_dir, d) for d in ("upper", "work", "merged"))
    for d in (upper, work, merged):
        os.makedirs(d, mode=0o755, exist_ok=True)
    if not lowerdirs:  # an image without layers: overlayfs still wants a lower directory
        empty = os.path.join(container_dir, "l", "empty")
        os.makedirs(empty, exist_ok=True)
        lowerdirs = [empty]
    options = _options(lowerdirs, upper, work)
    if len(options) < os.sysconf("SC_PAGE_SIZE"):
        sys.mount("overlay", merged, "overlay", 0, options,
                  detail="the image's layers (read-only, top first) under the container's writable layer")
        return merged

    # Too long for one page: short links, and paths relative to container_dir.
    links = os.path.join(container_dir, "l")
    os.makedirs(links, exist_ok=True)
    for i, d in enumerate(lowerdirs):
        link = os.path.join(links, str(i))
        if os.path.islink(link):
            os.unlink(link)
        os.symlink(d, link)
    options = _options([f"l/{i}" for i in range(len(lowerdirs))], "upper", "work")
    cwd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        sys.chdir(container_dir, detail="mount options must fit in one page: use short relative paths")
        sys.mount("overlay", merged, "overlay", 0, options,
                  detail=f"{len(lowerdirs)} layers through short links l/<n> (the options' page-size limit)")
    finally:
        os.fchdir(cwd)
        os.close(cwd)
    return merged


def unmount_rootfs(sys: Syscalls, container_dir: str, *, remove: bool = True) -> None:
    """Unmount ``merged/``, then (unless ``remove`` is false) delete upper, work, merged and l/."""
    container_dir = os.path.abspath(container_dir)
    merged = os.path.join(container_dir, "merged")
    for _ in range(8):  # the same place may have been mounted over more than once
        if not os.path.ismount(merged):
            break
        try:
            sys.umount2(merged, 0, detail="the container's root filesystem")
        except KernelError as e:
            if e.errno != errno.EBUSY:
                raise
            # Something still has files open there (an `export` reading it): detach it now; the
            # kernel frees it when the last of them is closed.
            sys.umount2(merged, MNT_DETACH, detail="busy: detached now, freed when its last reader is done")
    if remove:
        for d in ("merged", "upper", "work", "l"):
            path = os.path.join(container_dir, d)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)  # as root, also overlayfs's own mode-000 work/work


# --- docker diff ----------------------------------------------------------------------------------------


def is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def is_opaque(path: str) -> bool:
    try:
        return os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:  # ENODATA: no such attribute; ENOTSUP: the filesystem has no xattrs
        return False


def _lstat(path: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None


def _hides_lower(layer: str, rel: str) -> bool:
    """Does ``layer`` hide the lower layers' ``rel``: a whiteout, a file or an opaque directory above it?"""
    parts = rel.split("/")
    for i in range(1, len(parts)):
        path = os.path.join(layer, *parts[:i])
        st = _lstat(path)
        if st is None:
            return False
        if not stat.S_ISDIR(st.st_mode) or is_opaque(path):
            return True  # (a whiteout is a character device: not a directory either)
    return False


def lower_lstat(lowerdirs: list[str], rel: str) -> os.stat_result | None:
    """``lstat`` of ``rel`` in the merged view of the lower layers (top first); None if absent there."""
    for layer in lowerdirs:
        st = _lstat(os.path.join(layer, rel))
        if st is not None:
            return None if is_whiteout(st) else st
        if _hides_lower(layer, rel):
            return None
    return None


def lower_children(lowerdirs: list[str], rel: str) -> set[str]:
    """The names in directory ``rel`` of the merged lower layers."""
    seen: dict[str, bool] = {}  # name -> visible (False: a whiteout in a higher layer deleted it)
    for layer in lowerdirs:
        path = os.path.join(layer, rel) if rel else layer
        st = _lstat(path)
        if st is None:
            if _hides_lower(layer, rel):
                break
            continue
        if not stat.S_ISDIR(st.st_mode):
            break
        with os.scandir(path) as it:
            for entry in it:
                if entry.name not in seen:
                    seen[entry.name] = not is_whiteout(entry.stat(follow_symlinks=False))
        if is_opaque(path):
            break
    return {name for name, visible in seen.items() if visible}


def _changed(st: os.stat_result, lower: os.stat_result, upper_path: str, lower_path: str | None) -> bool:
    """As Docker decides: type, mode, owner; for non-directories also size, mtime, device, link target.
    (A file copied up but not modified, e.g. opened for writing and closed, is not a change.)"""
    if stat.S_IFMT(st.st_mode) != stat.S_IFMT(lower.st_mode) or st.st_mode != lower.st_mode or \
            (st.st_uid, st.st_gid) != (lower.st_uid, lower.st_gid):
        return True
    if stat.S_ISDIR(st.st_mode):
        return False
    if (st.st_size, st.st_mtime_ns, st.st_rdev) != (lower.st_size, lower.st_mtime_ns, lower.st_rdev):
        return True
    return bool(stat.S_ISLNK(st.st_mode) and lower_path and os.readlink(upper_path) != os.readlink(lower_path))


def _lower_path(lowerdirs: list[str], rel: str) -> str | None:
    for layer in lowerdirs:
        path = os.path.join(layer, rel)
        if _lstat(path) is not None:
            return path
    return None


def diff(container_dir: str, lowerdirs: list[str]) -> list[tuple[str, str]]:
    """What the container changed, as ``docker diff`` prints it: ``[("C", "/etc"), ("A", "/etc/x"), ...]``.

    ``A`` added (not in the image), ``C`` changed (and every directory with a change inside),
    ``D`` deleted (a whiteout in upper; and each lower child hidden by an opaque directory).  Sorted by
    path.  Works on ``upper/`` alone, so also on a stopped container whose rootfs is unmounted.
    """
    upper = os.path.join(os.path.abspath(container_dir), "upper")
    changes: list[tuple[str, str]] = []

    def walk(rel: str) -> bool:
        """Report the changes below ``rel``; True if there were any."""
        here = os.path.join(upper, rel) if rel else upper
        any_change = False
        with os.scandir(here) as it:
            entries = sorted(it, key=lambda e: e.name)
        for entry in entries:
            child = f"{rel}/{entry.name}" if rel else entry.name
            st = entry.stat(follow_symlinks=False)
            if is_whiteout(st):
                changes.append(("D", "/" + child))
                any_change = True
                continue
            lower = lower_lstat(lowerdirs, child)
            if stat.S_ISDIR(st.st_mode):
                inside = walk(child)
                if is_opaque(entry.path) and lower is not None and stat.S_ISDIR(lower.st_mode):
                    present = set(os.listdir(entry.path))
                    for name in sorted(lower_children(lowerdirs, child) - present):
                        changes.append(("D", f"/{child}/{name}"))
                        inside = True
                if lower is None:
                    changes.append(("A", "/" + child))
                elif inside or _changed(st, lower, entry.path, None):
                    changes.append(("C", "/" + child))
                else:
                    continue
            elif lower is None:
                changes.append(("A", "/" + child))
            elif _changed(st, lower, entry.path, _lower_path(lowerdirs, child)):
                changes.append(("C", "/" + child))
            else:
                continue
            any_change = True
        return any_change

    walk("")
    return sorted(changes, key=lambda c: c[1])
