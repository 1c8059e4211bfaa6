"""Every field of ``POST /containers/create``, and what this engine does with it: the field table.

Docker's create body is a container ``Config`` (what to run: Cmd, Env, User...) with a
``HostConfig`` (how this host runs it: limits, namespaces, mounts, ports...) and a
``NetworkingConfig``.  Docker defines about a hundred fields; minicontainer honours some of them.
The rule this module keeps: **nothing accepted and ignored**.  A field we do not honour is refused
with a 400 that names it, unless its value is zero or Docker's default (the docker CLI sends every
field, most of them empty: ``"CpuShares": 0``, ``"Dns": []``, ``"NetworkMode": "default"``).
A learner who gets exit 0 must be able to believe the option worked.

How to read (and edit) the table: one row per field, keyed by its JSON name.

* ``shown`` is what ``inspect`` shows when the client left the field at zero: the value the engine
  really applies (``ShmSize``: the 64 MiB tmpfs on /dev/shm; ``IpcMode``: ``private``).
* ``honoured=True``: the engine does what the field says; ``inspect`` shows the value given.
* ``honoured=False``: only zero, ``shown`` or one of ``also`` passes; anything else is refused, and
  the message says ``what`` it is (the flag a learner typed).
* ``also``: values that ask for the default by another name (``NetworkMode: "default"``).

When you make the engine honour a field, flip its row to ``honoured=True`` (and make sure
``shown`` is right), and test the field through the docker CLI: the row is the whole change here.
Docker's own checks of the values (``Minimum memory limit allowed is 6MB``) are in :func:`check`.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

from minicontainer.engine import confinement, logs, process_settings, resources, restart
from minicontainer.engine.errors import InvalidParameter
from minicontainer.engine.namespaces import SHM_SIZE  # the tmpfs on /dev/shm: Docker's default too


class Field(NamedTuple):
    shown: Any
    honoured: bool = False
    what: str = ""
    also: tuple = ()


def honoured(shown: Any = None, what: str = "") -> Field:
    return Field(shown, True, what)


def refused(what: str, shown: Any = None, also: tuple = ()) -> Field:
    return Field(shown, False, what, also)


# --- Config: what to run ------------------------------------------------------------------------
CONFIG: dict[str, Field] = {
    "Hostname": honoured("", "-h, --hostname"),
    "Domainname": refused("--domainname (the runtime does not set a UTS domain name yet)", ""),
    "User": honoured("", "-u, --user"),
    "AttachStdin": honoured(False),
    "AttachStdout": honoured(True),
    "AttachStderr": honoured(True),
    "ExposedPorts": honoured(None, "--expose: a note for readers, as in Docker (publishing is -p)"),
    "Tty": honoured(False, "-t"),
    "OpenStdin": honoured(False, "-i"),
    "StdinOnce": honoured(False),
    "Env": honoured([], "-e, --env"),
    "Cmd": honoured(None),
    "Healthcheck": refused("--health-cmd: health checks", None),
    "ArgsEscaped": refused("ArgsEscaped (Windows only)", None),
    "Image": honoured(""),
    "Volumes": honoured(None, "anonymous volumes (VOLUME, -v /path): engine/mounts.py"),
    "WorkingDir": honoured("", "-w, --workdir"),
    "Entrypoint": honoured(None, "--entrypoint"),
    "NetworkDisabled": honoured(False, "no network: as --network none, a namespace with only lo"),
    "MacAddress": refused("--mac-address", ""),
    "OnBuild": refused("ONBUILD triggers (for builds)", None),
    "Labels": honoured({}, "-l, --label"),
    "StopSignal": honoured("SIGTERM", "--stop-signal"),
    "StopTimeout": honoured(None, "--stop-timeout"),
    "Shell": refused("SHELL (for builds)", None),
}

# --- HostConfig: how this host runs it ---------------------------------------------------------------
HOST_CONFIG: dict[str, Field] = {
    # what the engine does
    "AutoRemove": honoured(False, "--rm"),
    "ConsoleSize": honoured([0, 0]),
    "Init": honoured(None, "--init"),
    # the limits (engine/resources.py: HostConfig -> the OCI config's linux.resources -> cgroup files)
    "Memory": honoured(0, "-m, --memory"),
    "MemorySwap": honoured(0, "--memory-swap"),
    "MemoryReservation": honoured(0, "--memory-reservation"),
    "NanoCpus": honoured(0, "--cpus"),
    "CpuShares": honoured(0, "-c, --cpu-shares"),
    "CpuPeriod": honoured(0, "--cpu-period"),
    "CpuQuota": honoured(0, "--cpu-quota"),
    "CpusetCpus": honoured("", "--cpuset-cpus"),
    "CpusetMems": honoured("", "--cpuset-mems"),
    "PidsLimit": honoured(None, "--pids-limit"),
    "BlkioWeight": honoured(0, "--blkio-weight (where the kernel's blkio controller has a weight)"),
    # fixed by the engine: only the value it applies passes
    "LogConfig": Field({"Type": "json-file", "Config": {}}, True, "--log-driver, --log-opt",  # engine/logs.py
                       ({"Type": "", "Config": {}}, {"Type": ""}, {"Type": "", "Config": None})),
    "RestartPolicy": honoured({"Name": "no", "MaximumRetryCount": 0}, "--restart"),  # engine/restart.py
    # namespaces shared instead of made (engine/namespaces.py checks the values)
    "IpcMode": honoured("private", "--ipc"),
    "PidMode": honoured("", "--pid"),
    "UTSMode": honoured("", "--uts"),
    "CgroupnsMode": honoured("private", "--cgroupns"),
    "UsernsMode": refused("--userns", ""),
    "ShmSize": honoured(SHM_SIZE, "--shm-size"),  # engine/namespaces.py: the /dev/shm tmpfs
    "Isolation": refused("--isolation", "", ("default",)),
    "MemorySwappiness": Field(None, True, "--memory-swappiness (cgroup v1)", (-1,)),  # engine/resources.py
    # not yet: resources
    "CpuRealtimePeriod": refused("--cpu-rt-period", 0),
    "CpuRealtimeRuntime": refused("--cpu-rt-runtime", 0),
    "CpuCount": refused("--cpu-count (Windows only)", 0),
    "CpuPercent": refused("--cpu-percent (Windows only)", 0),
    "KernelMemory": refused("--kernel-memory", 0),
    "KernelMemoryTCP": refused("kernel TCP memory", 0),
    "OomKillDisable": honoured(False, "--oom-kill-disable (cgroup v1)"),  # engine/resources.py
    "OomScoreAdj": honoured(0, "--oom-score-adj"),  # engine/process_settings.py
    "BlkioWeightDevice": refused("--blkio-weight-device", []),
    "BlkioDeviceReadBps": refused("--device-read-bps", []),
    "BlkioDeviceWriteBps": refused("--device-write-bps", []),
    "BlkioDeviceReadIOps": refused("--device-read-iops", []),
    "BlkioDeviceWriteIOps": refused("--device-write-iops", []),
    "IOMaximumIOps": refused("--io-maxiops (Windows only)", 0),
    "IOMaximumBandwidth": refused("--io-maxbandwidth (Windows only)", 0),
    "Ulimits": honoured([], "--ulimit"),  # engine/process_settings.py
    "CgroupParent": honoured("", "--cgroup-parent"),  # engine/resources.py
    "Cgroup": refused("--cgroup", ""),
    # networks (engine/networks.py)
    "NetworkMode": honoured("bridge", "--network"),
    "PortBindings": honoured({}, "-p, --publish"),
    "PublishAllPorts": honoured(False, "-P, --publish-all"),
    "Dns": honoured([], "--dns"),
    "DnsOptions": honoured([], "--dns-option"),
    "DnsSearch": honoured([], "--dns-search"),
    "ExtraHosts": honoured(None, "--add-host"),
    "Links": refused("--link (legacy links: use a user-defined network, where names resolve)", None),
    # mounts (engine/mounts.py checks the values)
    "Binds": honoured(None, "-v, --volume: bind mounts and volumes"),
    "Mounts": honoured(None, "--mount"),
    "VolumeDriver": honoured("", "--volume-driver: the driver of the volumes it creates (local only: the volume "
                                 "store refuses others)"),
    "VolumesFrom": honoured(None, "--volumes-from"),
    "Tmpfs": honoured(None, "--tmpfs"),
    "StorageOpt": refused("--storage-opt", None),
    # confinement (engine/confinement.py, devices.py, sysctls.py, process_settings.py)
    "Privileged": honoured(False, "--privileged"),  # engine/confinement.py
    "CapAdd": honoured(None, "--cap-add"),  # engine/confinement.py
    "CapDrop": honoured(None, "--cap-drop"),
    "SecurityOpt": honoured(None, "--security-opt: seccomp=unconfined|PROFILE.json, no-new-privileges"),
    "ReadonlyRootfs": honoured(False, "--read-only"),
    "MaskedPaths": refused("masked paths", None),
    "ReadonlyPaths": refused("read-only paths", None),
    "Devices": honoured([], "--device"),  # engine/devices.py
    "DeviceCgroupRules": honoured(None, "--device-cgroup-rule"),
    "DeviceRequests": refused("--gpus", None),
    "GroupAdd": honoured(None, "--group-add"),  # engine/process_settings.py
    "Sysctls": honoured(None, "--sysctl"),  # engine/sysctls.py
    # other
    "ContainerIDFile": honoured("", "--cidfile: written by the client, not the engine"),
    "Runtime": refused("--runtime", "", ("minicontainer-runtime",)),
    "Annotations": refused("--annotation", None),
}

# --- NetworkingConfig: which networks to join ----------------------------------------------------
NETWORKING_CONFIG: dict[str, Field] = {
    "EndpointsConfig": honoured(None, "--network, --ip, --network-alias"),
}

# The log drivers Docker has (of which this engine writes json-file only): another name is a typo.
LOG_DRIVERS = ("none", "local", "json-file", "syslog", "journald", "gelf", "fluentd", "awslogs", "splunk",
               "etwlogs", "gcplogs", "logentries")

SECTIONS = {"": CONFIG, "HostConfig.": HOST_CONFIG, "NetworkingConfig.": NETWORKING_CONFIG}


def is_zero(value: Any) -> bool:
    """Go's zero values, as the docker CLI sends them for every flag not given; a struct whose fields
    are all zero is zero too (``{"default": {"IPAMConfig": null, "Aliases": null, ...}}``).  A map's
    keys are its content: ``{"/data": {}}`` (a volume) is not zero, though its value is."""
    if isinstance(value, dict):
        return all(re.fullmatch(r"[A-Za-z]\w*", k) and is_zero(v) for k, v in value.items())
    if isinstance(value, list):  # [] and ConsoleSize's [0, 0]
        return all(type(v) is int and v == 0 for v in value)
    return value in (None, False, 0, "")


def _means_default(field: Field, value: Any) -> bool:
    if is_zero(value) or value == field.shown:
        return True
    for alias in field.also:
        if value == alias or isinstance(alias, dict) and isinstance(value, dict) and \
                all(value.get(k) == v for k, v in alias.items()) and \
                all(is_zero(v) for k, v in value.items() if k not in alias):
            return True
    return False


def canonical(body: dict, table: dict[str, Field]) -> dict:
    """Go matches JSON names without regard to case (``cpushares`` is ``CpuShares``): so do we."""
    names = {name.lower(): name for name in table}
    return {names.get(key.lower(), key): value for key, value in body.items()}


def check(body: dict) -> dict:
    """The create body, its names made canonical, after Docker's checks of the values and ours: a
    field this engine does not honour must be zero or Docker's default.  Raises InvalidParameter
    (400) before anything is looked up or created, as moby's ``verifyContainerSettings`` does."""
    body = canonical(body, {**CONFIG, "HostConfig": Field(None), "NetworkingConfig": Field(None)})
    for key in ("HostConfig", "NetworkingConfig"):
        if body.get(key) is not None and not isinstance(body[key], dict):
            raise InvalidParameter(f"{key} must be a JSON object")
    host = body["HostConfig"] = canonical(body.get("HostConfig") or {}, HOST_CONFIG)
    process_settings.with_default_ulimits(host)  # the daemon's default-ulimits, as Docker merges them
    body["NetworkingConfig"] = canonical(body.get("NetworkingConfig") or {}, NETWORKING_CONFIG)
    _check_values(body, host)
    for prefix, table in SECTIONS.items():
        section = body if not prefix else body[prefix.rstrip(".")]
        refuse_unhonoured({k: v for k, v in section.items() if prefix or k not in ("HostConfig", "NetworkingConfig")},
                          table, prefix)
    return body


def refuse_unhonoured(section: dict, table: dict[str, Field], prefix: str = "", api: str = "create") -> None:
    """A field the engine does not honour must be zero or its default; an unknown one must be zero."""
    for key, value in section.items():
        field = table.get(key)
        if field is None:
            if not is_zero(value):  # a newer client's field (sent empty) passes; a typo does not
                raise InvalidParameter(f"unknown field {prefix}{key}: Docker's {api} API has no such field")
            continue
        if not field.honoured and not _means_default(field, value):
            raise InvalidParameter(_refusal(prefix + key, field, value))


def _refusal(name: str, field: Field, value: Any) -> str:
    import json

    given = json.dumps(value)
    default = "" if field.shown in (None, "", 0, False, [], {}) else f" (or {json.dumps(field.shown)}, what it does)"
    return (f"{name}={given} ({field.what}) is not supported by this engine yet: minicontainer refuses it rather "
            f"than ignore it; leave it unset{default}")


def _check_values(body: dict, host: dict) -> None:
    """Docker's own checks of the values the engine honours (moby's daemon/daemon_unix.go), in its words."""
    resources.check(host)  # the limits' values: memory, CPUs, cpuset, blkio weight
    confinement.check(host)  # capability names, --security-opt, the seccomp profile
    swappiness = host.get("MemorySwappiness")
    if swappiness is not None and swappiness != -1 and not 0 <= swappiness <= 100:
        raise InvalidParameter(f"Invalid value: {swappiness}, valid memory swappiness range is 0-100")
    if (host.get("ShmSize") or 0) < 0:
        raise InvalidParameter("SHM size can not be less than 0")
    oom = host.get("OomScoreAdj") or 0
    if not -1000 <= oom <= 1000:
        raise InvalidParameter(f"Invalid value {oom}, range for oom score adj is [-1000, 1000]")
    restart.check(host)  # the restart policy
    driver = (host.get("LogConfig") or {}).get("Type") or ""
    if driver and driver not in LOG_DRIVERS:
        raise InvalidParameter(f"logger: no log driver named '{driver}' is registered")
    logs.check(host)  # the log driver and its options this engine honours
    workdir = body.get("WorkingDir") or ""
    if workdir and not workdir.startswith("/"):
        raise InvalidParameter(f"the working directory '{workdir}' is invalid, it needs to be an absolute path")
    size = host.get("ConsoleSize") or [0, 0]
    if not (isinstance(size, list) and len(size) == 2 and all(isinstance(n, int) and 0 <= n < 65536 for n in size)):
        raise InvalidParameter(f"HostConfig.ConsoleSize must be [rows, columns], not {size!r}")


def shown(section: dict[str, Field], given: dict) -> dict:
    """A whole Config or HostConfig as ``inspect`` shows it: every field, the value given where the
    engine honours it, else what the engine really applies."""
    out = {}
    for key, field in section.items():
        value = given.get(key)
        # the value given where the engine honours it ("": Go's unset string), or where it names the
        # default (Isolation "default")
        # (an int 0 means "not set" where the default is not 0: ShmSize; so does an alias: MemorySwappiness -1)
        unset = value in (None, "") or type(value) is int and value == 0 and field.shown or value in field.also
        given_shown = field.honoured and not unset or value in field.also and field.shown == ""
        out[key] = value if given_shown else field.shown
    return out
