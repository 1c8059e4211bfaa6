"""An OCI bundle: ``config.json`` plus a root filesystem, turned into typed Python.

The OCI runtime specification (https://github.com/opencontainers/runtime-spec, ``config.md`` and
``config-linux.md``) describes a container as one JSON document.  This module reads it, checks it,
and hands the rest of the runtime a :class:`Spec` in which every field has a type and a default.

A rule of this runtime: **no field is silently ignored.**  A field the spec defines but
minicontainer does not implement is an error that names it (``linux.intelRdt: Intel RDT is not
supported``).  A field the spec does *not* define is another matter: the spec says a runtime "MUST
ignore" unknown properties (so that a config written for a newer spec still runs), so such a field
is skipped, and :attr:`Spec.warnings` says so for the command line to print (a typo shows up).
"""

from __future__ import annotations

import json
import os
from typing import Any, NamedTuple

from minicontainer.kernel.capabilities import CAPABILITIES, CapabilitySets, check_consistent
from minicontainer.kernel.capabilities import names as cap_names
from minicontainer.kernel.capabilities import parse as parse_capabilities
from minicontainer.kernel.cgroups.base import Limits
from minicontainer.kernel.cgroups.devices import CONTAINER_DEVICE_RULES
from minicontainer.kernel.cgroups.devices import parse_rule as parse_device_rule
from minicontainer.kernel.namespaces import BY_OCI
from minicontainer.runtime.errors import RuntimeFailure

MOUNT_TYPES = ("proc", "tmpfs", "devpts", "mqueue", "sysfs", "bind", "cgroup")

# sysctls a container may set: only those that belong to one of its own namespaces.  Anything else
# (kernel.core_pattern, vm.*) is the whole host's, and writing it would change the host.
NAMESPACED_SYSCTLS = ("kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
                      "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced")


# Resource limits a process may set (process.rlimits[].type), as <sys/resource.h> numbers them.
RLIMITS: dict[str, int] = {
    "RLIMIT_CPU": 0, "RLIMIT_FSIZE": 1, "RLIMIT_DATA": 2, "RLIMIT_STACK": 3, "RLIMIT_CORE": 4,
    "RLIMIT_RSS": 5, "RLIMIT_NPROC": 6, "RLIMIT_NOFILE": 7, "RLIMIT_MEMLOCK": 8, "RLIMIT_AS": 9,
    "RLIMIT_LOCKS": 10, "RLIMIT_SIGPENDING": 11, "RLIMIT_MSGQUEUE": 12, "RLIMIT_NICE": 13,
    "RLIMIT_RTPRIO": 14, "RLIMIT_RTTIME": 15,
}


class SpecError(RuntimeFailure):
    """config.json is malformed, incomplete, or asks for what this runtime does not do."""

    def __init__(self, field_path: str, message: str) -> None:
        super().__init__(f"config.json: {field_path}: {message}" if field_path else f"config.json: {message}")
        self.field = field_path


class Mount(NamedTuple):
    destination: str
    type: str
    source: str
    options: list[str]


class Namespace(NamedTuple):
    type: str
    path: str = ""  # join this existing namespace instead of creating a new one


class IdMapping(NamedTuple):
    container_id: int
    host_id: int
    size: int


class Rlimit(NamedTuple):
    type: str
    soft: int
    hard: int


class Device(NamedTuple):
    path: str
    type: str  # c, b, u or p
    major: int
    minor: int
    file_mode: int
    uid: int
    gid: int


class Process(NamedTuple):
    args: list[str]
    env: list[str]
    cwd: str
    uid: int = 0
    gid: int = 0
    additional_gids: list[int] = []  # noqa: RUF012 - never mutated: a NamedTuple is read-only
    umask: int | None = None
    rlimits: list[Rlimit] = []  # noqa: RUF012
    no_new_privileges: bool = False
    oom_score_adj: int | None = None
    # The five capability sets as masks; None when the config has no process.capabilities.
    capabilities: CapabilitySets | None = None
    terminal: bool = False  # stdio is a pseudo-terminal made inside the container (its /dev/pts/0)
    console_size: tuple[int, int] | None = None  # (rows, columns) for that terminal

    def env_dict(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for item in self.env:
            key, _, value = item.partition("=")
            out[key] = value
        return out


class Hook(NamedTuple):
    """A program the runtime runs at one point of the lifecycle, the container's state on its stdin."""

    path: str  # absolute, on the host (startContainer: inside the container)
    args: list[str]
    env: list[str]
    timeout: int | None  # seconds; None = wait as long as it takes


# The hook points, in the order they happen (runtime-spec config.md, "POSIX-platform Hooks").
HOOK_POINTS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")


class Spec(NamedTuple):
    oci_version: str
    bundle: str  # absolute path of the bundle directory
    root_path: str  # absolute path of the root filesystem
    root_readonly: bool
    process: Process
    hostname: str | None
    mounts: list[Mount]
    namespaces: list[Namespace]
    uid_mappings: list[IdMapping]
    gid_mappings: list[IdMapping]
    cgroups_path: str | None
    resources: Limits
    masked_paths: list[str]
    readonly_paths: list[str]
    rootfs_propagation: str
    devices: list[Device]
    sysctl: dict[str, str]
    annotations: dict[str, str]
    hooks: dict[str, list[Hook]] = {}  # noqa: RUF012 - hook point -> hooks, in order
    seccomp: Any = None  # linux.seccomp, checked by kernel.seccomp.check (a Profile), or None
    warnings: list[str] = []  # noqa: RUF012 - what was skipped (unknown fields...), for the CLI to print

    def host_ids(self) -> tuple[int, int]:
        """The host's uid and gid for the container's process.uid/gid (through the id maps, if any)."""
        return (_to_host(self.process.uid, self.uid_mappings, "uid"),
                _to_host(self.process.gid, self.gid_mappings, "gid"))

    def has_namespace(self, kind: str) -> bool:
        return any(ns.type == kind for ns in self.namespaces)

    def new_namespaces(self) -> list[Namespace]:
        return [ns for ns in self.namespaces if not ns.path]


def _to_host(container_id: int, maps: list[IdMapping], what: str) -> int:
    if not maps:
        return container_id
    for m in maps:
        if m.container_id <= container_id < m.container_id + m.size:
            return m.host_id + container_id - m.container_id
    raise SpecError(f"process.user.{what}", f"{container_id} is not mapped by linux.{what}Mappings")


# --- The schema: every field the runtime knows, so that anything else is reported ----------------

# A field this runtime knows of but does not implement, with the reason given to the user.
UNSUPPORTED = {
    "process.apparmorProfile": "AppArmor is not supported by minicontainer-runtime",
    "process.ioPriority": "I/O priority is not supported by minicontainer-runtime",
    "process.scheduler": "scheduler settings are not supported by minicontainer-runtime",
    "linux.intelRdt": "Intel RDT is not supported",
    "linux.personality": "personality is not supported",
    "linux.resources.rdma": "rdma limits are not supported",
    "linux.resources.unified": "raw cgroup v2 files are not supported yet",
    "linux.timeOffsets": "time namespaces are not supported yet",
}

# SELinux labels: with SELinux off (no /sys/fs/selinux) a label means nothing to the kernel, and
# runc accepts and skips it; with SELinux on, applying it is not implemented, so it is refused.
SELINUX_FIELDS = ("process.selinuxLabel", "linux.mountLabel")


def selinux_enabled() -> bool:
    return os.path.exists("/sys/fs/selinux/enforce")


def _asks_for_nothing(value: Any) -> bool:
    """``"terminal": false``, ``null``, ``[]`` or ``{}`` ask for nothing this runtime lacks.

    (Careful: ``0 in (None, False)`` is true in Python, and ``"swappiness": 0`` does ask for
    something, so each case is tested by identity.)"""
    return value is None or value is False or (isinstance(value, (list, dict)) and not value)


class _Reader:
    """Reads one JSON object, remembering which keys were used, so that leftovers can be reported."""

    def __init__(self, data: Any, path: str, warnings: list[str] | None = None) -> None:
        if not isinstance(data, dict):
            raise SpecError(path, f"must be an object, not {type(data).__name__}")
        self.data = data
        self.path = path
        self.used: set[str] = set()
        self.warnings = warnings if warnings is not None else []  # shared by a document's readers

    def _field(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = None, *, required: bool = False) -> Any:
        self.used.add(key)
        if key not in self.data:
            if required:
                raise SpecError(self._field(key), "is required but missing")
            return default
        value = self.data[key]
        if kind is int and isinstance(value, bool) or not isinstance(value, kind):
            want = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            raise SpecError(self._field(key), f"must be {_article(want)}, not {type(value).__name__} {value!r}")
        return value

    def obj(self, key: str, *, required: bool = False) -> _Reader | None:
        value = self.get(key, dict, required=required)
        return None if value is None else _Reader(value, self._field(key), self.warnings)

    def strings(self, key: str, *, required: bool = False) -> list[str]:
        values = self.get(key, list, [], required=required)
        for i, v in enumerate(values):
            if not isinstance(v, str):
                raise SpecError(f"{self._field(key)}[{i}]", f"must be a string, not {v!r}")
        return values

    def objects(self, key: str) -> list[_Reader]:
        return [_Reader(item, f"{self._field(key)}[{i}]", self.warnings)
                for i, item in enumerate(self.get(key, list, []))]

    def finish(self) -> None:
        """Every key must have been read; anything left is unsupported (an error) or unknown (skipped,
        as the spec requires, and remembered in ``warnings``)."""
        for key in self.data:
            if key in self.used:
                continue
            path = self._field(key)
            if path in UNSUPPORTED:
                if _asks_for_nothing(self.data[key]):
                    continue
                raise SpecError(path, UNSUPPORTED[path])
            if path in SELINUX_FIELDS:
                if selinux_enabled() and not _asks_for_nothing(self.data[key]):
                    raise SpecError(path, "SELinux labels are not supported by minicontainer-runtime")
                continue
            self.warnings.append(f"{path}: not a field of the OCI runtime spec that minicontainer-runtime "
                                 "knows: ignored, as the spec requires (a typo?)")


def _article(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


def load(bundle: str) -> Spec:
    """Read ``<bundle>/config.json``: the one entry point from disk to a checked :class:`Spec`."""
    bundle = os.path.abspath(bundle)
    path = os.path.join(bundle, "config.json")
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise SpecError("", f"open '{path}': No such file or directory (is --bundle the directory holding "
                            "config.json? `minicontainer-runtime spec` writes a default one)") from None
    except IsADirectoryError:
        raise SpecError("", f"open '{path}': Is a directory") from None
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise SpecError("", f"'{path}' is not valid JSON: {e}") from None
    return parse(data, bundle)


def parse(data: Any, bundle: str) -> Spec:
    top = _Reader(data, "")
    version = top.get("ociVersion", str, required=True)
    if not version.startswith("1."):
        raise SpecError("ociVersion", f"'{version}' is not a 1.x version of the OCI runtime spec")

    root = top.obj("root", required=True)
    assert root is not None
    root_path = root.get("path", str, required=True)
    root_readonly = root.get("readonly", bool, False)
    root.finish()
    root_abs = os.path.normpath(os.path.join(bundle, root_path))
    if not os.path.isdir(root_abs):
        raise SpecError("root.path", f"'{root_abs}' is not a directory (the bundle's root filesystem is missing)")

    proc_reader = top.obj("process", required=True)
    assert proc_reader is not None
    process = _process(proc_reader)

    hostname = top.get("hostname", str)
    top.get("domainname", str)  # read below with the uts check
    mounts = [_mount(m, bundle) for m in top.objects("mounts")]
    annotations = top.get("annotations", dict, {})

    linux = top.obj("linux") or _Reader({}, "linux")
    namespaces = _namespaces(linux)
    uid_maps = [_idmap(m) for m in linux.objects("uidMappings")]
    gid_maps = [_idmap(m) for m in linux.objects("gidMappings")]
    cgroups_path = linux.get("cgroupsPath", str)
    masked = linux.strings("maskedPaths")
    readonly = linux.strings("readonlyPaths")
    propagation = linux.get("rootfsPropagation", str, "")
    if propagation and propagation not in PROPAGATIONS:
        raise SpecError("linux.rootfsPropagation", f"unknown propagation '{propagation}' (known: "
                        f"{', '.join(PROPAGATIONS)})")
    seccomp_reader = linux.get("seccomp", (dict, type(None)))
    devices = [_device(d) for d in linux.objects("devices")]
    resources = _resources(linux.obj("resources"))
    sysctl = linux.get("sysctl", dict, {})
    linux.finish()
    hooks = _hooks(top.obj("hooks"))
    top.finish()
    seccomp = None
    if seccomp_reader is not None:
        from minicontainer.kernel import seccomp as seccomp_module  # only a config that asks pays its import

        try:
            seccomp = seccomp_module.check(seccomp_reader)
        except ValueError as e:
            raise SpecError("linux.seccomp", str(e)) from None

    types = [ns.type for ns in namespaces]
    if (uid_maps or gid_maps) and "user" not in types:
        raise SpecError("linux.uidMappings", "id mappings need a user namespace in linux.namespaces")
    new_user_namespace = "user" in types and not any(ns.type == "user" and ns.path for ns in namespaces)
    if new_user_namespace and (not uid_maps or not gid_maps):
        raise SpecError("linux.uidMappings", "a new user namespace needs both uidMappings and gidMappings")
    joined_user = any(ns.type == "user" and ns.path for ns in namespaces)
    if joined_user and (uid_maps or gid_maps):
        raise SpecError("linux.uidMappings", "the user namespace is joined by path: its id maps are already "
                                             "written; remove uidMappings and gidMappings")
    caps = process.capabilities
    if caps and caps.bounding & (1 << CAPABILITIES["CAP_MKNOD"]) and "user" not in types \
            and not resources.devices:
        # Without device rules nothing would stop root in the container from making and opening /dev/sda.
        raise SpecError("process.capabilities.bounding", "CAP_MKNOD without linux.resources.devices would let "
                        "the container create and open the host's disks: add device rules (as Docker does: "
                        "deny all, then allow the container's own devices)")
    for key in sysctl:
        _check_sysctl(key, types, {ns.type: ns.path for ns in namespaces if ns.path})
    dev_tmpfs = any(m.destination == "/dev" and m.type == "tmpfs" for m in mounts)
    for i, d in enumerate(devices):
        if not dev_tmpfs or not d.path.startswith("/dev/") or ".." in d.path.split("/"):
            raise SpecError(f"linux.devices[{i}].path", f"'{d.path}': devices are made only inside a tmpfs "
                            "mounted at /dev (so that nothing is written into the image)")
    if "mount" not in types:
        raise SpecError("linux.namespaces", "minicontainer-runtime needs a mount namespace (add "
                                            "{\"type\": \"mount\"}): the root filesystem is built in it")
    if hostname is not None and "uts" not in types:
        raise SpecError("hostname", "setting a hostname needs a new uts namespace in linux.namespaces "
                                    "(else it would change the host's)")
    if data.get("domainname") is not None:
        raise SpecError("domainname", "setting a domain name is not supported yet")
    if not any(m.type == "proc" and m.destination == "/proc" for m in mounts):
        raise SpecError("mounts", "there is no proc mount at /proc; minicontainer-runtime needs one (the "
                                  "container's init reopens its start signal through /proc/self/fd)")

    spec = Spec(oci_version=version, bundle=bundle, root_path=root_abs, root_readonly=root_readonly,
                process=process, hostname=hostname, mounts=mounts, namespaces=namespaces,
                uid_mappings=uid_maps, gid_mappings=gid_maps, cgroups_path=cgroups_path,
                resources=resources, masked_paths=masked, readonly_paths=readonly,
                rootfs_propagation=propagation, devices=devices,
                sysctl={str(k): str(v) for k, v in sysctl.items()},
                annotations={str(k): str(v) for k, v in annotations.items()},
                hooks=hooks, seccomp=seccomp, warnings=top.warnings)
    spec.host_ids()  # the process's user must be mapped: fail now, not in the child
    return spec


PROPAGATIONS = ("private", "rprivate", "slave", "rslave", "shared", "rshared", "unbindable", "runbindable")


def _hooks(r: _Reader | None) -> dict[str, list[Hook]]:
    if r is None:
        return {}
    out: dict[str, list[Hook]] = {}
    for point in HOOK_POINTS:
        for item in r.objects(point):
            path = item.get("path", str, required=True)
            if not path.startswith("/"):
                raise SpecError(f"{item.path}.path", f"'{path}' must be an absolute path")
            timeout = item.get("timeout", int)
            if timeout is not None and timeout <= 0:
                raise SpecError(f"{item.path}.timeout", f"{timeout} must be more than zero seconds")
            hook = Hook(path=path, args=item.strings("args") or [path], env=item.strings("env"), timeout=timeout)
            item.finish()
            out.setdefault(point, []).append(hook)
    r.finish()
    return out


def _check_sysctl(key: str, namespace_types: list[str], joined: dict[str, str]) -> None:
    if "/" in key or ".." in key or not key:
        raise SpecError(f"linux.sysctl.{key}", "is not a sysctl name")
    if key in NAMESPACED_SYSCTLS or key.startswith("fs.mqueue."):
        need = "ipc"
    elif key.startswith("net."):
        need = "network"
    else:
        raise SpecError(f"linux.sysctl.{key}", "belongs to the whole host, not to one of the container's "
                        "namespaces: setting it would change the host")
    if need not in namespace_types:
        raise SpecError(f"linux.sysctl.{key}", f"needs a new {need} namespace of the container's own")
    if joined.get(need) and _same_file(joined[need], f"/proc/self/ns/{BY_OCI[need].proc}"):
        # Joined by path, but the namespace is the runtime's own: the host's, for the runtime on the host.
        raise SpecError(f"linux.sysctl.{key}", f"the {need} namespace joined ({joined[need]}) is the host's: "
                        "setting it would change the host")


def _same_file(a: str, b: str) -> bool:
    try:
        sa, sb = os.stat(a), os.stat(b)
    except OSError:
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def parse_process(data: Any) -> Process:
    """A ``process`` object on its own (``minicontainer-runtime exec --process FILE``), as strictly
    checked as the one inside config.json."""
    return _process(_Reader(data, "process"))


def _process(r: _Reader) -> Process:
    args = r.strings("args", required=True)
    if not args:
        raise SpecError("process.args", "must name the program to run (it is empty)")
    cwd = r.get("cwd", str, required=True)
    if not cwd.startswith("/"):
        raise SpecError("process.cwd", f"'{cwd}' must be an absolute path")
    env = r.strings("env")
    for i, item in enumerate(env):
        if "=" not in item:
            raise SpecError(f"process.env[{i}]", f"'{item}' must have the form KEY=value")
    user = r.obj("user") or _Reader({}, "process.user")
    uid = user.get("uid", int, 0)
    gid = user.get("gid", int, 0)
    umask = user.get("umask", int)
    additional = user.get("additionalGids", list, [])
    if not all(isinstance(g, int) and not isinstance(g, bool) for g in additional):
        raise SpecError("process.user.additionalGids", "must be a list of integers")
    if user.get("username", str):
        raise SpecError("process.user.username", "is for Windows containers; use uid and gid")
    user.finish()
    rlimits = []
    seen: set[str] = set()
    for item in r.objects("rlimits"):
        kind = item.get("type", str, required=True)
        if kind not in RLIMITS:
            raise SpecError(f"{item.path}.type", f"unknown rlimit '{kind}' (known: {', '.join(RLIMITS)})")
        if kind in seen:
            raise SpecError(f"{item.path}.type", f"'{kind}' is given twice")
        seen.add(kind)
        soft = _rlimit_value(item.get("soft", int, required=True))
        hard = _rlimit_value(item.get("hard", int, required=True))
        if hard != INFINITY and (soft == INFINITY or soft > hard):
            raise SpecError(item.path, f"soft limit {soft} is above hard limit {hard}")
        item.finish()
        rlimits.append(Rlimit(kind, soft, hard))
    caps_reader = r.obj("capabilities")
    capabilities = None
    if caps_reader is not None:
        masks = {}
        for k in ("bounding", "effective", "inheritable", "permitted", "ambient"):
            try:
                masks[k] = parse_capabilities(caps_reader.strings(k), f"process.capabilities.{k}")
            except ValueError as e:
                raise SpecError("", str(e)) from None
        caps_reader.finish()
        capabilities = CapabilitySets(**masks)
        skipped = capabilities.ambient & ~(capabilities.permitted & capabilities.inheritable)
        if skipped:
            # The kernel raises an ambient capability only if it is permitted and inheritable.  runc
            # tries each one and goes on when the kernel refuses (its own `runc spec` lists ambient
            # capabilities without inheritable ones); we skip them up front, and say so.
            r.warnings.append(f"process.capabilities.ambient: {', '.join(cap_names(skipped))} not in both "
                              "permitted and inheritable: the kernel cannot raise them; skipped, as runc does")
            capabilities = capabilities._replace(ambient=capabilities.ambient & ~skipped)
        try:
            check_consistent(capabilities)
        except ValueError as e:
            raise SpecError("process.capabilities", str(e)) from None
    nnp = r.get("noNewPrivileges", bool, False)
    oom = r.get("oomScoreAdj", int)
    if oom is not None and not -1000 <= oom <= 1000:
        raise SpecError("process.oomScoreAdj", f"{oom} is outside -1000..1000")
    terminal = r.get("terminal", bool, False)
    console_size = None
    size = r.obj("consoleSize")
    if size is not None:
        console_size = (size.get("height", int, 0), size.get("width", int, 0))
        size.finish()
    r.finish()
    return Process(args=args, env=env, cwd=cwd, uid=uid, gid=gid, additional_gids=additional, umask=umask,
                   rlimits=rlimits, no_new_privileges=nnp, oom_score_adj=oom, capabilities=capabilities,
                   terminal=terminal, console_size=console_size)


INFINITY = -1  # resource.RLIM_INFINITY: what Python passes to setrlimit for "unlimited"


def _rlimit_value(value: int) -> int:
    """OCI writes "unlimited" as 2**64-1 (the C value of RLIM_INFINITY); Python wants -1."""
    return INFINITY if value < 0 or value >= 2**63 else value


def _mount(r: _Reader, bundle: str) -> Mount:
    dest = r.get("destination", str, required=True)
    if not dest.startswith("/"):
        raise SpecError(f"{r.path}.destination", f"'{dest}' must be an absolute path")
    options = r.strings("options")
    kind = r.get("type", str, "")
    source = r.get("source", str, "")
    if "bind" in options or "rbind" in options:
        kind = "bind"
    if kind not in MOUNT_TYPES:
        raise SpecError(f"{r.path}.type", f"mount type '{kind}' is not supported (supported: proc, tmpfs, devpts, "
                                          "mqueue, sysfs, and bind mounts)")
    if kind == "bind" and not source:
        raise SpecError(f"{r.path}.source", "a bind mount needs a source")
    if kind == "bind" and not source.startswith("/"):
        source = os.path.join(bundle, source)  # relative sources are relative to the bundle
    for key in ("uidMappings", "gidMappings"):
        if r.data.get(key):
            raise SpecError(f"{r.path}.{key}", "id-mapped mounts are not supported yet")
        r.used.add(key)
    r.finish()
    return Mount(destination=dest, type=kind, source=source or kind, options=options)


def _namespaces(linux: _Reader) -> list[Namespace]:
    out: list[Namespace] = []
    for item in linux.objects("namespaces"):
        kind = item.get("type", str, required=True)
        if kind == "time":
            raise SpecError(f"{item.path}.type", "time namespaces are not supported yet")
        if kind not in BY_OCI:
            raise SpecError(f"{item.path}.type", f"unknown namespace type '{kind}' (known: {', '.join(BY_OCI)})")
        if any(ns.type == kind for ns in out):
            raise SpecError(f"{item.path}.type", f"namespace '{kind}' is listed twice")
        path = item.get("path", str, "")
        if path and not os.path.exists(path):
            raise SpecError(f"{item.path}.path", f"'{path}' does not exist (is the namespace's process gone?)")
        item.finish()
        out.append(Namespace(kind, path))
    return out


def _idmap(r: _Reader) -> IdMapping:
    m = IdMapping(r.get("containerID", int, required=True), r.get("hostID", int, required=True),
                  r.get("size", int, required=True))
    r.finish()
    if m.size < 1:
        raise SpecError(f"{r.path}.size", "must be at least 1")
    return m


def _device(r: _Reader) -> Device:
    path = r.get("path", str, required=True)
    kind = r.get("type", str, required=True)
    if kind not in ("c", "b", "u", "p"):
        raise SpecError(f"{r.path}.type", f"'{kind}' must be c, b, u or p")
    d = Device(path=path, type=kind, major=r.get("major", int, 0), minor=r.get("minor", int, 0),
               file_mode=r.get("fileMode", int, 0o666), uid=r.get("uid", int, 0), gid=r.get("gid", int, 0))
    r.finish()
    return d


def _block_io(r: _Reader | None, limits: dict[str, Any]) -> None:
    if r is None:
        return
    limits["blkio_weight"] = r.get("weight", int)
    limits["blkio_leaf_weight"] = r.get("leafWeight", int)
    weights = []
    for d in r.objects("weightDevice"):
        weights.append((d.get("major", int, required=True), d.get("minor", int, required=True),
                        d.get("weight", int), d.get("leafWeight", int)))
        d.finish()
    limits["blkio_weight_devices"] = tuple(weights)
    throttle = []
    for key, knob in (("throttleReadBpsDevice", "read_bps_device"), ("throttleWriteBpsDevice", "write_bps_device"),
                      ("throttleReadIOPSDevice", "read_iops_device"),
                      ("throttleWriteIOPSDevice", "write_iops_device")):
        for d in r.objects(key):
            throttle.append((knob, d.get("major", int, required=True), d.get("minor", int, required=True),
                             d.get("rate", int, required=True)))
            d.finish()
    limits["blkio_throttle"] = tuple(throttle)
    r.finish()


def _hugepage(r: _Reader) -> tuple[str, int]:
    size = r.get("pageSize", str, required=True)
    limit = r.get("limit", int, required=True)
    r.finish()
    return size, limit


def _resources(r: _Reader | None) -> Limits:
    if r is None:
        return Limits()
    limits: dict[str, Any] = {}
    mem = r.obj("memory")
    if mem is not None:
        limits["memory_limit"] = mem.get("limit", int)
        limits["memory_reservation"] = mem.get("reservation", int)
        limits["memory_swap"] = mem.get("swap", int)
        limits["memory_kernel"] = mem.get("kernel", int)
        limits["memory_kernel_tcp"] = mem.get("kernelTCP", int)
        swappiness = mem.get("swappiness", int)
        if swappiness is not None and not 0 <= swappiness <= 100:
            raise SpecError(f"{mem.path}.swappiness", f"{swappiness} is outside 0..100")
        limits["memory_swappiness"] = swappiness
        limits["oom_kill_disable"] = mem.get("disableOOMKiller", bool)
        for key in ("useHierarchy", "checkBeforeUpdate"):
            if not _asks_for_nothing(mem.data.get(key)):
                raise SpecError(f"{mem.path}.{key}", "is not supported by minicontainer-runtime")
            mem.used.add(key)
        mem.finish()
    cpu = r.obj("cpu")
    if cpu is not None:
        limits["cpu_shares"] = cpu.get("shares", int)
        limits["cpu_quota"] = cpu.get("quota", int)
        limits["cpu_period"] = cpu.get("period", int)
        limits["cpuset_cpus"] = cpu.get("cpus", str) or None
        limits["cpuset_mems"] = cpu.get("mems", str) or None
        limits["cpu_rt_runtime"] = cpu.get("realtimeRuntime", int) or None
        limits["cpu_rt_period"] = cpu.get("realtimePeriod", int) or None
        for key in ("idle", "burst"):
            if not _asks_for_nothing(cpu.data.get(key)):
                raise SpecError(f"{cpu.path}.{key}", "is not supported by minicontainer-runtime")
            cpu.used.add(key)
        cpu.finish()
    rules = []
    for i, item in enumerate(r.get("devices", list, [])):
        try:
            rules.append(parse_device_rule(item if isinstance(item, dict) else {}, f"linux.resources.devices[{i}]"))
        except ValueError as e:
            raise SpecError("", str(e)) from None
    if rules:
        # As runc: the devices every container needs (and mknod of any node, never its use) come after
        # the config's rules, so they win.  The nodes listed in linux.devices get no rule of their own:
        # the config says what may be done with them (Docker's `--device /dev/sdb:/dev/sdb:r`: read only).
        rules += CONTAINER_DEVICE_RULES
    limits["devices"] = tuple(rules)
    _block_io(r.obj("blockIO"), limits)
    limits["hugepage_limits"] = tuple(_hugepage(h) for h in r.objects("hugepageLimits"))
    net = r.obj("network")
    if net is not None:
        limits["net_class_id"] = net.get("classID", int)
        prios = []
        for p in net.objects("priorities"):
            prios.append((p.get("name", str, required=True), p.get("priority", int, required=True)))
            p.finish()
        limits["net_priorities"] = tuple(prios)
        net.finish()
    pids = r.obj("pids")
    if pids is not None:
        limits["pids_limit"] = pids.get("limit", int, required=True)
        pids.finish()
    block_io = r.obj("blockIO")
    if block_io is not None:  # only the weight: the per-device weights and throttles are not done yet
        limits["blkio_weight"] = block_io.get("weight", int)
        block_io.finish()
    r.finish()
    # OCI: a CPU value of 0 means "not set" (the kernel would turn shares=0 into 2, its minimum).
    for key in ("cpu_shares", "cpu_quota", "cpu_period"):
        if limits.get(key) == 0:
            limits[key] = None
    swap, memory = limits.get("memory_swap"), limits.get("memory_limit")
    # OCI's swap is memory *plus* swap, as cgroup v1's memory.memsw: it cannot be below memory.
    if swap not in (None, -1) and (memory in (None, -1) or swap < memory):
        raise SpecError("linux.resources.memory.swap", f"{swap} must be at least memory.limit ({memory}): "
                                                       "it counts memory plus swap")
    return Limits(**limits)
