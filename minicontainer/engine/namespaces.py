"""Docker's namespace-sharing options: which of a container's namespaces are its own.

By default a container gets a new namespace of every kind (see ``runtime/defaults.py``).  Each of
these ``docker run`` flags, and the HostConfig field behind it, gives one back:

=================  ==================  =====================================================================
flag               HostConfig field    what the container then shares
=================  ==================  =====================================================================
``--pid host``     ``PidMode``         the host's processes: ``ps`` inside lists them all; no PID 1 of its own
``--pid container:NAME``               another container's processes: a sidecar that debugs or signals them
``--uts host``     ``UTSMode``         the host's hostname (and changing it would change the host's)
``--ipc host``     ``IpcMode``         the host's System V IPC and POSIX message queues, and its /dev/shm
                                       (``--shm-size`` sizes a container's *own* /dev/shm only)
``--ipc container:NAME``               another container's
``--cgroupns host`` ``CgroupnsMode``   the host's view of cgroups: /proc/self/cgroup shows the full path
=================  ==================  =====================================================================

(``--network host|none`` is the networks' concern, in their own module.)  In the runtime's config
(OCI runtime spec, ``linux.namespaces``) "host" means the namespace is *left out*, so the process stays
in the one it was born in, and "container:NAME" means an entry with a ``path``, ``/proc/PID/ns/KIND``
of that container's PID 1, which stage1 joins with ``setns`` before it creates the others.  Removing
one namespace at a time is the clearest way to see what each one did.
"""

from __future__ import annotations

from collections.abc import Callable

from minicontainer.engine.errors import Conflict, InvalidParameter

SHM_SIZE = 64 * 1024 * 1024  # /dev/shm's tmpfs when --shm-size is not given: Docker's default

# HostConfig field -> (the OCI namespace type, the modes it accepts besides "container:NAME", default).
MODES: dict[str, tuple[str, tuple[str, ...], str]] = {
    "PidMode": ("pid", ("", "host"), ""),
    "UTSMode": ("uts", ("", "host"), ""),
    "IpcMode": ("ipc", ("", "private", "host"), "private"),
    "CgroupnsMode": ("cgroup", ("", "private", "host"), "private"),
}
JOINABLE = ("PidMode", "IpcMode")  # the fields whose "container:NAME" Docker accepts


def check(host: dict, hostname: str, find: Callable[[str], object]) -> dict[str, str]:
    """The modes a create body asks for, checked, as the container's HostConfig records them.

    ``find`` looks a container up by name or ID (NotFound if there is none); a shared container is
    recorded by its full ID, so that a rename does not change what is joined."""
    modes = {}
    for field, (_kind, accepted, default) in MODES.items():
        mode = host.get(field) or ""
        if not isinstance(mode, str):
            raise InvalidParameter(f"HostConfig.{field} must be a string, not {type(mode).__name__}")
        if mode.startswith("container:") and field in JOINABLE:
            other = find(mode[len("container:"):])
            mode = f"container:{other.id}"
        elif mode not in accepted:
            choices = ", ".join(f"'{m}'" for m in accepted if m) + (", 'container:NAME'" if field in JOINABLE else "")
            raise InvalidParameter(f"invalid {field} '{mode}': minicontainer supports {choices}")
        modes[field] = mode or default
    if modes["UTSMode"] == "host" and hostname:
        raise InvalidParameter("conflicting options: hostname and the UTS mode")  # docker's words
    size = host.get("ShmSize") or 0
    if size and size != SHM_SIZE and modes["IpcMode"] != "private":
        # Docker would silently use the other /dev/shm, whatever its size: refused instead.
        raise InvalidParameter(f"--shm-size has no effect with --ipc {modes['IpcMode'].split(':')[0]}: /dev/shm is "
                               "then the one shared, with its own size; leave --shm-size out")
    return modes


def apply(runtime_config: dict, host: dict, pid_of: Callable[[str], int]) -> None:
    """Change the runtime config's ``linux.namespaces`` (and what depends on them) for the modes in
    a container's HostConfig.  ``pid_of`` gives a running container's PID 1 on the host."""
    namespaces = runtime_config["linux"]["namespaces"]
    for field, (kind, _accepted, _default) in MODES.items():
        mode = host.get(field) or ""
        if mode == "host":
            namespaces[:] = [ns for ns in namespaces if ns["type"] != kind]
        elif mode.startswith("container:"):
            other = mode[len("container:"):]
            pid = pid_of(other)
            if not pid:
                raise Conflict(f"cannot join {kind.upper()} of a non running container: {other}")  # docker's
            for ns in namespaces:
                if ns["type"] == kind:
                    ns["path"] = f"/proc/{pid}/ns/{kind}"
    if host.get("UTSMode") == "host":
        runtime_config.pop("hostname", None)  # without a UTS namespace of its own, it would be the host's
    for mount in runtime_config["mounts"]:
        if mount["destination"] != "/dev/shm":
            continue
        if host.get("IpcMode") == "host":
            # As Docker does: the host's /dev/shm, so that shared memory is shared for POSIX shm_open too.
            mount.update(type="bind", source="/dev/shm", options=["rbind", "nosuid", "noexec", "nodev"])
        else:  # --shm-size: the size of the container's own tmpfs, in bytes (Docker's default 64 MiB)
            mount["options"] = [o for o in mount["options"] if not o.startswith("size=")] + \
                [f"size={host.get('ShmSize') or SHM_SIZE}"]
