"""Namespaces: the kernel's way of giving a process its own view of one kind of global resource.

Eight kinds exist.  Each is named three ways, and this table is the one place that ties them:
the OCI ``config.json`` name (``network``), the clone/unshare flag (``CLONE_NEWNET``), and the
file under ``/proc/PID/ns/`` (``net``) whose inode identifies the namespace a process is in.

==========  ================  =========  ======================================================
OCI type    flag              /proc/ns   what the process gets of its own
==========  ================  =========  ======================================================
mount       CLONE_NEWNS       mnt        the mount table: its own root filesystem
uts         CLONE_NEWUTS      uts        hostname and domain name
ipc         CLONE_NEWIPC      ipc        System V IPC and POSIX message queues
pid         CLONE_NEWPID      pid        process IDs: its first process is PID 1
network     CLONE_NEWNET      net        interfaces, addresses, routes, ports, firewall
user        CLONE_NEWUSER     user       user and group IDs: root inside, nobody outside
cgroup      CLONE_NEWCGROUP   cgroup     the view of /proc/self/cgroup: its cgroup looks like /
time        CLONE_NEWTIME     time       the boot and monotonic clocks' offsets
==========  ================  =========  ======================================================
"""

from __future__ import annotations

from typing import NamedTuple

from minicontainer.kernel.syscalls import (
    CLONE_NEWCGROUP,
    CLONE_NEWIPC,
    CLONE_NEWNET,
    CLONE_NEWNS,
    CLONE_NEWPID,
    CLONE_NEWTIME,
    CLONE_NEWUSER,
    CLONE_NEWUTS,
)


class Kind(NamedTuple):
    oci: str  # the name in config.json's linux.namespaces[].type
    flag: int  # the clone(2)/unshare(2)/setns(2) flag
    proc: str  # the file in /proc/PID/ns


KINDS: tuple[Kind, ...] = (
    Kind("mount", CLONE_NEWNS, "mnt"),
    Kind("uts", CLONE_NEWUTS, "uts"),
    Kind("ipc", CLONE_NEWIPC, "ipc"),
    Kind("pid", CLONE_NEWPID, "pid"),
    Kind("network", CLONE_NEWNET, "net"),
    Kind("user", CLONE_NEWUSER, "user"),
    Kind("cgroup", CLONE_NEWCGROUP, "cgroup"),
    Kind("time", CLONE_NEWTIME, "time"),
)

BY_OCI: dict[str, Kind] = {k.oci: k for k in KINDS}
BY_PROC: dict[str, Kind] = {k.proc: k for k in KINDS}
