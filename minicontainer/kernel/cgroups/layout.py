"""Where the cgroup filesystems are mounted, and where this process sits in them.

Linux hosts come in three cgroup layouts, and ``/proc/self/mountinfo`` tells which one this is:

* **v2 (unified)**: a single ``cgroup2`` filesystem, usually at ``/sys/fs/cgroup``.  Every
  controller (memory, cpu, pids...) lives in that one tree.  Modern distributions use this.
* **v1 (legacy)**: one ``cgroup`` filesystem per controller, or per group of co-mounted controllers
  (``/sys/fs/cgroup/memory``, ``/sys/fs/cgroup/cpu,cpuacct``...).  The mount's *super options*
  say which controllers it carries.  Mounts carrying a name (``name=systemd``) and no controller
  are systemd's bookkeeping, of no use for limits.
* **hybrid**: v1 controller mounts *and* a ``cgroup2`` mount (often ``/sys/fs/cgroup/unified``)
  that carries no controllers, only used by systemd to track processes.  For limits it behaves as v1.

``/proc/self/cgroup`` then says which cgroup this process is in, one line per hierarchy
(``4:memory:/user.slice``; on v2 the single line ``0::/user.slice/...``).  minicontainer creates
container cgroups only beneath those, so we must know them per controller: on v1 they can differ.
"""

from __future__ import annotations

import os
import posixpath
from typing import NamedTuple

from minicontainer.kernel.cgroups.base import CgroupError

# The controllers a v1 ``cgroup`` mount can carry.  A mount's super options also hold flags
# (``rw``, ``clone_children``, ``release_agent=...``), so controllers are picked out by name.
V1_CONTROLLERS = frozenset({
    "cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "net_cls", "net_prio", "blkio",
    "perf_event", "hugetlb", "pids", "rdma", "misc",
})

UNIFIED = ""  # the key of the v2 line in /proc/self/cgroup ("0::/path") and in Layout.own


class Layout(NamedTuple):
    """The cgroup filesystems of this host, as this process sees them."""

    mode: str  # "v1", "v2" or "hybrid"
    v1: dict[str, str]  # controller -> mount point; co-mounted controllers share one
    unified: str | None  # the cgroup2 mount point, if any
    own: dict[str, str]  # controller ("" for the v2 line) -> our cgroup path, from /proc/self/cgroup
    # mount point -> the cgroup path the mount shows at its top (mountinfo's 4th field).  Usually
    # "/"; inside a container that was given a sub-tree of the host's cgroups, it is that sub-tree.
    mount_roots: dict[str, str]

    def own_path(self, controller: str) -> str:
        """Our cgroup path for ``controller`` ("" for the unified hierarchy)."""
        if controller in self.own:
            return self.own[controller]
        raise CgroupError(f"/proc/self/cgroup does not say which {controller or 'cgroup2'} cgroup this "
                          "process is in: is the cgroup filesystem mounted as the kernel sees it?")

    def mountpoint(self, controller: str) -> str:
        """Where the hierarchy carrying ``controller`` ("" for cgroup2) is mounted."""
        mount = self.unified if controller == UNIFIED else self.v1.get(controller)
        if mount is None:
            raise CgroupError(f"no cgroup hierarchy carries the {controller or 'cgroup2'} controller here")
        return mount

    def dir_of(self, controller: str, cgroup_path: str) -> str:
        """The directory of the cgroup ``cgroup_path`` (as /proc/self/cgroup writes it)."""
        mount = self.mountpoint(controller)
        top = self.mount_roots.get(mount, "/")
        relative = posixpath.relpath(cgroup_path, top)
        if relative == ".." or relative.startswith("../"):
            raise CgroupError(f"the cgroup {cgroup_path} is not visible under {mount}, which shows only "
                              f"{top}: mount the cgroup filesystem afresh (in a new cgroup namespace)")
        return mount if relative == "." else os.path.join(mount, relative)

    def own_dir(self, controller: str) -> str:
        """The directory of our own cgroup in the hierarchy carrying ``controller``."""
        return self.dir_of(controller, self.own_path(controller))

    def controllers_v2(self) -> set[str]:
        """The controllers the unified hierarchy offers our own cgroup (its ``cgroup.controllers``).

        Only these can be switched on for the cgroups we create below it: a parent *delegates* a
        controller to its children by listing it in its ``cgroup.subtree_control``.
        """
        if self.unified is None or UNIFIED not in self.own:
            return set()
        try:
            with open(os.path.join(self.own_dir(UNIFIED), "cgroup.controllers"), encoding="utf-8") as f:
                return set(f.read().split())
        except OSError:
            return set()


def _unescape(field_text: str) -> str:
    r"""mountinfo writes spaces, tabs, newlines and backslashes in paths as octal: ``\040``."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field_text = field_text.replace(code, char)
    return field_text


def parse_mountinfo(text: str, root: str = "") -> tuple[dict[str, str], str | None, dict[str, str]]:
    """The cgroup mounts in ``/proc/self/mountinfo``: (v1 controller -> mount point, cgroup2 mount
    point, mount point -> cgroup root shown there).  ``root`` prefixes every mount point."""
    v1: dict[str, str] = {}
    unified: str | None = None
    roots: dict[str, str] = {}
    for line in text.splitlines():
        # "36 25 0:31 / /sys/fs/cgroup/memory rw,nosuid shared:15 - cgroup cgroup rw,memory"
        # optional fields come before the lone "-"; the filesystem type and super options after it.
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        before, after = left.split(), right.split()
        if len(before) < 5 or len(after) < 3:
            continue
        mount_root, mountpoint = _unescape(before[3]), root + _unescape(before[4])
        fstype, super_options = after[0], after[2].split(",")
        if fstype == "cgroup2" and unified is None:
            unified = mountpoint
            roots[mountpoint] = mount_root
        elif fstype == "cgroup":
            controllers = [opt for opt in super_options if opt in V1_CONTROLLERS]
            # Named hierarchies (name=systemd) carry no controller: nothing to limit there.
            for controller in controllers:
                v1.setdefault(controller, mountpoint)  # the first mount wins if one is bound twice
            if controllers:
                roots.setdefault(mountpoint, mount_root)
    return v1, unified, roots


def parse_self_cgroup(text: str) -> dict[str, str]:
    """``/proc/self/cgroup``: controller ("" for v2) -> this process's cgroup path."""
    own: dict[str, str] = {}
    for line in text.splitlines():
        # "4:memory:/user.slice"  "2:cpu,cpuacct:/"  "1:name=systemd:/..."  "0::/user.slice/..."
        parts = line.strip().split(":", 2)
        if len(parts) != 3:
            continue
        _hierarchy_id, controllers, path = parts
        if controllers == "":
            own[UNIFIED] = path
            continue
        for controller in controllers.split(","):
            if not controller.startswith("name="):
                own[controller] = path
    return own


def detect(mountinfo: str | None = None, self_cgroup: str | None = None, root: str = "") -> Layout:
    """Work out the host's cgroup layout.

    With no arguments it reads ``/proc/self/mountinfo`` and ``/proc/self/cgroup``.  Tests pass their
    own text, and ``root``: a directory prefixed to every path, holding a fake cgroup tree.
    """
    if mountinfo is None:
        with open(root + "/proc/self/mountinfo", encoding="utf-8") as f:
            mountinfo = f.read()
    if self_cgroup is None:
        with open(root + "/proc/self/cgroup", encoding="utf-8") as f:
            self_cgroup = f.read()
    v1, unified, roots = parse_mountinfo(mountinfo, root)
    own = parse_self_cgroup(self_cgroup)
    if not v1 and unified is None:
        raise CgroupError("no cgroup filesystem is mounted (see /proc/self/mountinfo): mount one with "
                          "`mount -t cgroup2 none /sys/fs/cgroup`")
    if v1 and unified is not None:
        mode = "hybrid"
    elif unified is not None:
        mode = "v2"
    else:
        mode = "v1"
    return Layout(mode=mode, v1=v1, unified=unified, own=own, mount_roots=roots)
