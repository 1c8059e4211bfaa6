"""``--sysctl``: kernel settings of the container's own namespaces (``HostConfig.Sysctls``).

``/proc/sys`` holds the kernel's settings, most of them the whole machine's (``vm.swappiness``,
``kernel.core_pattern``).  Some belong to a namespace instead, and each namespace has its own copy:
the network ones (``net.*``) to the network namespace, the System V IPC and POSIX message-queue
limits (``kernel.shm*``, ``kernel.msg*``, ``kernel.sem``, ``fs.mqueue.*``) to the IPC namespace.
Only those may be set for a container, and only if it really has that namespace of its own: a
container on ``--network host`` setting ``net.ipv4.ip_forward`` would change the host's.

The runtime writes them (``/proc/sys/net/ipv4/ip_forward``) inside the container, after its /proc is
mounted and before /proc/sys is made read-only (``runtime/init.py``).  The list and the messages are
Docker's (the docker CLI's whitelist, then runc's namespace checks); this engine checks both at create.
"""

from __future__ import annotations

import os

from minicontainer.engine.errors import InvalidParameter

# The IPC namespace's settings (the docker CLI's list), and the prefixes of whole namespaced families.
IPC_SYSCTLS = ("kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall", "kernel.shmmax",
               "kernel.shmmni", "kernel.shm_rmid_forced")
IPC_PREFIXES = ("fs.mqueue.",)
NET_PREFIXES = ("net.",)


def namespace_of(name: str) -> str:
    """Which namespace a sysctl belongs to ("ipc" or "network"); "" if it is the whole host's."""
    if name in IPC_SYSCTLS or name.startswith(IPC_PREFIXES):
        return "ipc"
    if name.startswith(NET_PREFIXES):
        return "network"
    return ""


def check(host: dict) -> None:
    """At create: each sysctl namespaced, and its namespace the container's own (400 otherwise)."""
    sysctls = host.get("Sysctls") or {}
    if not isinstance(sysctls, dict):
        raise InvalidParameter("HostConfig.Sysctls must be an object: {\"net.ipv4.ip_forward\": \"1\"}")
    for name, value in sysctls.items():
        if not isinstance(value, str):
            raise InvalidParameter(f"HostConfig.Sysctls: the value of {name} must be a string, not {value!r}")
        kind = namespace_of(name) if "/" not in name and ".." not in name else ""
        if not kind:  # the docker CLI's words, then why
            raise InvalidParameter(f"sysctl '{name}={value}' is not allowed: it is not one of a namespace's own (net.*, "
                                   "kernel.msg*, kernel.sem, kernel.shm*, fs.mqueue.*), so setting it would change "
                                   "the whole host")
        if kind == "ipc" and (host.get("IpcMode") or "") == "host":  # runc's words
            raise InvalidParameter(f"sysctl \"{name}\" is not allowed in the hosts ipc namespace (--ipc host)")
        if kind == "network" and (host.get("NetworkMode") or "") == "host":
            raise InvalidParameter(f"sysctl \"{name}\" not allowed in host network namespace (--network host)")


# What Docker sets in every network namespace of a container's own (since 20.10): ping without
# CAP_NET_RAW (ICMP echo sockets for every group), and ports below 1024 without CAP_NET_BIND_SERVICE.
# Harmless there: the namespace, its addresses and ports are the container's alone.  --sysctl wins.
NETWORK_DEFAULTS = {"net.ipv4.ping_group_range": "0 2147483647", "net.ipv4.ip_unprivileged_port_start": "0"}


def apply(config: dict, host: dict) -> None:
    """The sysctls into the OCI config's ``linux.sysctl``, for the runtime to write: Docker's defaults
    for a network namespace of the container's own, then --sysctl's."""
    mode = host.get("NetworkMode") or ""
    wanted = {}
    if mode != "host" and not mode.startswith("container:"):
        wanted = {k: v for k, v in NETWORK_DEFAULTS.items()
                  if os.path.exists("/proc/sys/" + k.replace(".", "/"))}  # (an older kernel may lack one)
    wanted.update(host.get("Sysctls") or {})
    if wanted:
        config["linux"].setdefault("sysctl", {}).update(wanted)
