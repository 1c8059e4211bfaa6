"""Devices a container may use: ``--device``, ``--device-cgroup-rule``, and ``--privileged``'s whole /dev.

A container's /dev is a tmpfs of its own holding only harmless devices (``kernel/devices.py``), and
its devices cgroup denies every other one (``engine/confinement.py``).  Giving it a device takes the
two halves of that confinement, one each:

* the **node**: an entry of the OCI config's ``linux.devices`` (type, major, minor, mode, owner),
  which the runtime creates in the container's /dev with ``mknod``;
* the **permission**: an allow rule in ``linux.resources.devices`` (``c 1:3 rw``), which the devices
  cgroup checks at every ``open`` and ``mknod``, whatever nodes exist.

=============================  =================================  ==========================================
flag                           HostConfig field                   what the container gets
=============================  =================================  ==========================================
``--device /dev/sdb``          ``Devices``: PathOnHost,           the node (the host's numbers, mode, owner)
``--device /dev/sdb:/dev/xvdb:r``  PathInContainer,               and a rule allowing ``CgroupPermissions``
                               CgroupPermissions                  (r, w, m); a directory: every device in it
``--device-cgroup-rule``       ``DeviceCgroupRules``              a rule only (``c 42:* rmw``): for nodes
  ``'c 42:* rmw'``                                                made later, inside (mknod) or bound in
``--privileged``               ``Privileged``                     every device node of the host's /dev, and a
                                                                  single rule allowing all of them
=============================  =================================  ==========================================

Docker reads the host's devices when the container starts; this engine also looks at create, so that
a missing device is an error before anything is created (and not a container that cannot start).
"""

from __future__ import annotations

import os
import re
import stat
from typing import NamedTuple

from minicontainer.engine.errors import InvalidParameter

# moby's format for --device-cgroup-rule: type, major:minor (numbers or *), access.
CGROUP_RULE = re.compile(r"^([acb]) ([0-9]+|\*):([0-9]+|\*) ([rwm]{1,3})$")
# What runc leaves out when it copies the host's /dev for a privileged container: the container has
# its own terminals (pts), shared memory, message queues and fd links, and the host's console is not
# the container's.
SKIPPED_DIRS = ("pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev")


class Node(NamedTuple):
    """A device node as the OCI config's ``linux.devices`` lists it."""

    path: str  # where, in the container
    type: str  # c (character), b (block) or p (fifo)
    major: int
    minor: int
    mode: int  # the permission bits
    uid: int
    gid: int

    def oci(self) -> dict:
        return {"path": self.path, "type": self.type, "major": self.major, "minor": self.minor,
                "fileMode": self.mode, "uid": self.uid, "gid": self.gid}

    def rule(self, access: str) -> dict:
        """The devices cgroup's rule that lets the container use this node."""
        return {"allow": True, "type": self.type, "major": self.major, "minor": self.minor, "access": access}


def node_at(path: str) -> Node | None:
    """The device node at ``path`` on the host (not following a last symlink), or None if it is
    something else.  OSError if there is nothing there."""
    st = os.lstat(path)
    kind = "c" if stat.S_ISCHR(st.st_mode) else "b" if stat.S_ISBLK(st.st_mode) else \
        "p" if stat.S_ISFIFO(st.st_mode) else ""
    if not kind:
        return None
    numbers = (os.major(st.st_rdev), os.minor(st.st_rdev)) if kind != "p" else (0, 0)
    return Node(path, kind, *numbers, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)


def host_devices(top: str = "/dev") -> list[Node]:
    """Every device node under the host's /dev, as ``--privileged`` gives them (runc's GetDevices)."""
    out = []
    for entry in sorted(os.scandir(top), key=lambda e: e.name):
        if entry.is_dir(follow_symlinks=False):
            if entry.name not in SKIPPED_DIRS:
                out += host_devices(entry.path)
            continue
        if entry.name == "console":
            continue
        try:
            node = node_at(entry.path)
        except OSError:  # gone since the listing
            continue
        if node is not None:
            out.append(node)
    return out


def parse_mode(mode: str) -> bool:
    """A device's cgroup permissions: some of r, w and m, each once (the docker CLI's validDeviceMode)."""
    return bool(mode) and len(set(mode)) == len(mode) and set(mode) <= set("rwm")


def mapping_nodes(mapping: dict) -> list[Node]:
    """One ``Devices`` entry -> the nodes it gives, each at its path in the container (moby's
    DevicesFromPath: a symlink is followed; a directory gives every device beneath it)."""
    if not isinstance(mapping, dict):
        raise InvalidParameter("HostConfig.Devices: each entry must be an object with PathOnHost, "
                               "PathInContainer and CgroupPermissions")
    host = mapping.get("PathOnHost") or ""
    inside = mapping.get("PathInContainer") or host
    if not host:
        raise InvalidParameter("HostConfig.Devices: PathOnHost is required")
    if not inside.startswith("/"):
        raise InvalidParameter(f"{inside} is not an absolute path")
    resolved = os.path.realpath(host) if os.path.islink(host) else host
    try:
        node = node_at(resolved)
        error = "not a device node"
    except OSError as e:
        node, error = None, e.strerror.lower() if e.strerror else str(e)
    if node is not None:
        nodes = [node._replace(path=inside)]
    else:
        nodes = []
        if os.path.isdir(resolved):
            for where, _dirs, files in os.walk(resolved):
                for name in sorted(files):
                    try:
                        child = node_at(os.path.join(where, name))
                    except OSError:
                        continue
                    if child is not None:
                        nodes.append(child._replace(path=inside + child.path[len(resolved):]))
    if not nodes:  # moby's words
        raise InvalidParameter(f"error gathering device information while adding custom device \"{host}\": {error}")
    for n in nodes:
        if not n.path.startswith("/dev/") or ".." in n.path.split("/"):
            raise InvalidParameter(f"--device {host}:{n.path}: minicontainer makes device nodes only under /dev, in "
                                   "the container's own /dev tmpfs (so that nothing is written into its files); "
                                   f"choose a path such as /dev/{os.path.basename(n.path)}")
    return nodes


def cgroup_rule(text: str) -> dict:
    """``c 1:3 mr`` -> an OCI ``linux.resources.devices`` allow rule (moby's format and message)."""
    m = CGROUP_RULE.match(text if isinstance(text, str) else "")
    if not m:
        raise InvalidParameter(f"invalid device cgroup rule format: '{text}'")
    kind, major, minor, access = m.groups()
    rule: dict = {"allow": True, "type": kind, "access": access}
    for key, value in (("major", major), ("minor", minor)):
        if value != "*":
            rule[key] = int(value)
    return rule


def check(host: dict) -> None:
    """At create: every device given exists on the host, every rule and mode is well-formed."""
    for mapping in host.get("Devices") or []:
        mode = (mapping.get("CgroupPermissions") if isinstance(mapping, dict) else None) or "rwm"
        if not parse_mode(mode):
            raise InvalidParameter(f"bad mode specified: {mode}")
        mapping_nodes(mapping)
    for text in host.get("DeviceCgroupRules") or []:
        cgroup_rule(text)


def apply(config: dict, host: dict) -> None:
    """Add the container's devices (nodes and rules) to its OCI config, after the deny-all rule."""
    linux = config["linux"]
    nodes: list[Node] = []
    rules = linux.setdefault("resources", {}).setdefault("devices", [])
    if host.get("Privileged"):
        nodes = host_devices()
        for mapping in host.get("Devices") or []:
            # As Docker: a device at its own path is already there; one elsewhere is added, with every
            # access (privileged allows them all anyway).
            if mapping.get("PathInContainer", mapping.get("PathOnHost")) != mapping.get("PathOnHost"):
                nodes += mapping_nodes(mapping)
        rules[:] = [{"allow": True, "access": "rwm"}]  # the devices cgroup allows everything
    else:
        for mapping in host.get("Devices") or []:
            given = mapping_nodes(mapping)
            nodes += given
            # (a fifo needs no rule: the devices cgroup knows only character and block devices)
            rules += [n.rule(mapping.get("CgroupPermissions") or "rwm") for n in given if n.type in "cb"]
        rules += [cgroup_rule(text) for text in host.get("DeviceCgroupRules") or []]
    if nodes:
        # A later node at the same path replaces an earlier one, as the runtime makes them in order.
        by_path = {n.path: n for n in nodes}
        linux["devices"] = [n.oci() for n in by_path.values()]
