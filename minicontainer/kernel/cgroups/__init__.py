"""Control groups: how the kernel limits and accounts a container's resources.

Namespaces decide what a container can *see*; cgroups decide how much it can *use*.  This package
puts each container in a cgroup of its own, beneath the cgroup minicontainer itself runs in:

* :mod:`.layout` finds the cgroup filesystems and our place in them (v1, v2 or hybrid host);
* :mod:`.base` holds what every cgroup shares: :class:`Limits`, :class:`CgroupStats`, the
  life cycle of :class:`Cgroup`, and :class:`CgroupError`;
* :mod:`.v1` and :mod:`.v2` are the two kernel interfaces, side by side, so they can be compared.

The runtime uses two entry points::

    cg = open_cgroup(sys, config["linux"]["cgroupsPath"])   # at create
    cg.create(); cg.apply(spec.resources); cg.add_process(pid)
    state["cgroup"] = cg.to_state()

    cg = cgroup_from_state(sys, state["cgroup"])            # later, in another process: delete
    cg.kill_all(); cg.destroy()
"""

from __future__ import annotations

from minicontainer.kernel.cgroups.base import Cgroup, CgroupError, CgroupStats, Limits
from minicontainer.kernel.cgroups.layout import Layout, detect
from minicontainer.kernel.cgroups.v1 import CgroupV1
from minicontainer.kernel.cgroups.v2 import CgroupV2
from minicontainer.kernel.syscalls import Syscalls

__all__ = [
    "Cgroup", "CgroupError", "CgroupStats", "CgroupV1", "CgroupV2", "Layout", "Limits",
    "cgroup_from_state", "detect", "open_cgroup",
]


def open_cgroup(sys: Syscalls, path: str, *, layout: Layout | None = None) -> Cgroup:
    """The container cgroup for OCI ``linux.cgroupsPath`` ``path``, on this host's layout.

    Nothing is created yet (call :meth:`Cgroup.create`), but the path is checked now: it must lie
    beneath this process's own cgroup in every hierarchy used.
    """
    layout = layout or detect()
    if layout.mode == "v2":
        return CgroupV2.open(sys, layout, path)
    # v1, and hybrid: there the controllers live in the v1 hierarchies; the controller-less
    # cgroup2 mount is systemd's business.
    return CgroupV1.open(sys, layout, path)


def cgroup_from_state(sys: Syscalls, state: dict) -> Cgroup:
    """Rebuild a cgroup object from :meth:`Cgroup.to_state`, e.g. in ``minicontainer delete``."""
    common = {"cgroups_path": state["cgroups_path"], "paths": dict(state["paths"]),
              "own_dirs": dict(state["own_dirs"]), "created": list(state["created"])}
    if state["version"] == "v2":
        return CgroupV2(sys, **common)
    if state["version"] == "v1":
        return CgroupV1(sys, **common, planned=state.get("planned"))
    raise CgroupError(f"unknown cgroup version {state['version']!r} in the container's state")
