"""``docker run``'s resource flags, from the Engine API's HostConfig to the OCI runtime's ``linux.resources``.

Docker's names and units differ from the kernel's, and this module is the translation:

=====================  ========================  ===============================================
HostConfig             docker flag               OCI ``linux.resources`` (cgroup v1 / v2 file)
=====================  ========================  ===============================================
Memory                 ``-m``                    memory.limit  (memory.limit_in_bytes / memory.max)
MemorySwap             ``--memory-swap``         memory.swap, memory *plus* swap; by default 2 x Memory
MemoryReservation      ``--memory-reservation``  memory.reservation (soft_limit_in_bytes / memory.low)
NanoCpus               ``--cpus 0.5``            cpu.quota 50000 per cpu.period 100000 (cfs_quota_us / cpu.max)
CpuQuota, CpuPeriod    ``--cpu-quota/-period``   the same, given directly in microseconds
CpuShares              ``--cpu-shares``          cpu.shares (cpu.shares / cpu.weight, converted)
CpusetCpus, -Mems      ``--cpuset-cpus``         cpu.cpus, cpu.mems (cpuset.cpus, cpuset.mems)
PidsLimit              ``--pids-limit``          pids.limit (pids.max)
BlkioWeight            ``--blkio-weight``        blockIO.weight (blkio.weight / io.weight)
MemorySwappiness       ``--memory-swappiness``   memory.swappiness (memory.swappiness; v1 only)
OomKillDisable         ``--oom-kill-disable``    memory.disableOOMKiller (memory.oom_control; v1 only)
CgroupParent           ``--cgroup-parent``       linux.cgroupsPath PARENT/minicontainer-ID, beneath the daemon's cgroup
=====================  ========================  ===============================================

Values are checked here, with dockerd's own messages, before anything is created (``-m 4m`` is
refused: below 6 MB a container cannot even start).  ``docker update`` goes through the same
checks, then changes the running container's cgroup.
"""

from __future__ import annotations

import os

from minicontainer.engine.errors import Conflict, InvalidParameter
from minicontainer.kernel.cgroups import Limits

CPU_PERIOD = 100_000  # microseconds: the CFS period docker uses for --cpus
MIN_MEMORY = 6 * 1024 * 1024  # dockerd's floor for a memory limit or reservation

# The HostConfig resource fields honoured, with their "not set" value.
FIELDS = {"Memory": 0, "MemorySwap": 0, "MemoryReservation": 0, "NanoCpus": 0, "CpuShares": 0, "CpuQuota": 0,
          "CpuPeriod": 0, "CpusetCpus": "", "CpusetMems": "", "PidsLimit": None, "BlkioWeight": 0}
# What ``docker update`` may send: the Resources part of a HostConfig, and the restart policy.  The
# field table (engine/fields.py) says which are honoured; the others must be zero.
UPDATABLE = (*FIELDS, "CpuRealtimePeriod", "CpuRealtimeRuntime", "CpuCount", "CpuPercent", "KernelMemory",
             "KernelMemoryTCP", "MemorySwappiness", "OomKillDisable", "BlkioWeightDevice", "BlkioDeviceReadBps",
             "BlkioDeviceWriteBps", "BlkioDeviceReadIOps", "BlkioDeviceWriteIOps", "IOMaximumIOps",
             "IOMaximumBandwidth", "Ulimits", "DeviceRequests", "CgroupParent", "Devices", "DeviceCgroupRules",
             "RestartPolicy")
NOT_UPDATABLE = ("Ulimits", "Devices", "DeviceCgroupRules", "OomKillDisable", "MemorySwappiness", "CgroupParent")


def _is_unset(value: object) -> bool:
    return value in (None, 0, "")


def online_cpus() -> str:
    """The CPUs this host has online, as the kernel lists them (``0-1``): cpuset.cpus may only name these."""
    with open("/sys/devices/system/cpu/online") as f:
        return f.read().strip()


def parse_cpuset(text: str) -> list[int]:
    """``0-2,5`` -> [0, 1, 2, 5]; ValueError if it is not that syntax."""
    out: list[int] = []
    for part in text.split(","):
        first, dash, last = part.strip().partition("-")
        if not first.isdigit() or dash and not last.isdigit():
            raise ValueError(text)
        out.extend(range(int(first), int(last if dash else first) + 1))
    return out


def check(host: dict, *, creating: bool = True) -> None:
    """dockerd's checks of the resource fields (``verifyContainerSettings``), each a 400 with its words."""
    memory, swap = host.get("Memory") or 0, host.get("MemorySwap") or 0
    reservation = host.get("MemoryReservation") or 0
    if memory and memory < MIN_MEMORY:
        raise InvalidParameter("Minimum memory limit allowed is 6MB")
    if reservation and reservation < MIN_MEMORY:
        raise InvalidParameter("Minimum memory reservation allowed is 6MB")
    if memory > 0 and reservation > 0 and memory < reservation:
        raise InvalidParameter("Minimum memory limit can not be less than memory reservation limit, see usage")
    if creating and swap > 0 and not memory:
        raise InvalidParameter("You should always set the Memory limit when using Memoryswap limit, see usage")
    if swap > 0 and memory > 0 and swap < memory:
        raise InvalidParameter("Minimum memoryswap limit should be larger than memory limit, see usage")
    nano, period, quota = host.get("NanoCpus") or 0, host.get("CpuPeriod") or 0, host.get("CpuQuota") or 0
    if nano and period:
        raise InvalidParameter("Conflicting options: Nano CPUs and CPU Period cannot both be set")
    if nano and quota:
        raise InvalidParameter("Conflicting options: Nano CPUs and CPU Quota cannot both be set")
    n = os.cpu_count() or 1
    if nano < 0 or nano > n * 1_000_000_000:
        raise InvalidParameter(f"range of CPUs is from 0.01 to {n}.00, as there are only {n} CPUs available")
    if period and not 1000 <= period <= 1_000_000:
        raise InvalidParameter("CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)")
    if 0 < quota < 1000:
        raise InvalidParameter("CPU cfs quota can not be less than 1ms (i.e. 1000)")
    shares = host.get("CpuShares") or 0
    if shares < 0:
        raise InvalidParameter(f"invalid CPU shares ({shares}): value must be a positive integer")
    check_memory_knobs(host)
    check_cgroup_parent(host)
    weight = host.get("BlkioWeight") or 0
    if weight and not 10 <= weight <= 1000:
        raise InvalidParameter("Range of blkio weight is from 10 to 1000")
    for key, what in (("CpusetCpus", "cpus"), ("CpusetMems", "mems")):
        text = host.get(key) or ""
        if not text:
            continue
        try:
            wanted = set(parse_cpuset(text))
        except ValueError:
            raise InvalidParameter(f"Invalid value {text} for cpuset {what}") from None
        if what == "cpus" and not wanted <= set(parse_cpuset(online_cpus())):
            raise InvalidParameter(f"Requested CPUs are not available - requested {text}, available: {online_cpus()}")


def check_memory_knobs(host: dict, v1_memory: bool | None = None) -> None:
    """--oom-kill-disable and --memory-swappiness exist only in cgroup v1's memory controller
    (memory.oom_control, memory.swappiness).  Docker drops them with a warning elsewhere; refused here."""
    swappiness = host.get("MemorySwappiness")
    asked = [flag for flag, on in (("--oom-kill-disable", host.get("OomKillDisable")),
                                   ("--memory-swappiness", swappiness not in (None, -1))) if on]
    if not asked:
        return
    if v1_memory is None:
        from minicontainer.kernel.cgroups.layout import detect

        v1_memory = "memory" in detect().v1
    if not v1_memory:
        raise InvalidParameter(f"{' and '.join(asked)}: this host's memory controller is cgroup v2's, which has "
                               "no such setting (Docker drops it with a warning; minicontainer refuses rather than "
                               "ignore it): leave it out")


def check_cgroup_parent(host: dict) -> None:
    """--cgroup-parent: a path *beneath the daemon's own cgroup* (``classroom/alice``), so that the
    engine only ever creates, writes and removes cgroups below its own.  Docker also takes absolute
    paths anywhere in the host's tree; refused here, with what to give instead."""
    parent = host.get("CgroupParent") or ""
    if not isinstance(parent, str):
        raise InvalidParameter("HostConfig.CgroupParent must be a string")
    if parent.startswith("/") or ".." in parent.split("/") or parent.endswith(".slice"):
        raise InvalidParameter(f"--cgroup-parent {parent}: minicontainer creates cgroups only beneath the daemon's "
                               "own cgroup (never one it did not make): give a relative path such as 'classroom/alice'")


def place_in_parent(config: dict, host: dict) -> None:
    """The container's cgroup beneath --cgroup-parent: ``linux.cgroupsPath`` ``PARENT/minicontainer-ID``,
    which the runtime takes from its own cgroup; a parent it creates, it removes with the container
    (unless another container's cgroup is in it by then)."""
    parent = (host.get("CgroupParent") or "").strip("/")
    if parent:
        config["linux"]["cgroupsPath"] = f"{parent}/{config['linux']['cgroupsPath']}"


def with_default_swap(host_config: dict) -> dict:
    """dockerd writes the default swap (as much again as the memory limit) into the HostConfig, so
    that ``inspect`` shows what applies."""
    if host_config.get("Memory") and not host_config.get("MemorySwap"):
        host_config["MemorySwap"] = 2 * host_config["Memory"]
    return host_config


def limits(host: dict) -> Limits:
    """A HostConfig's resource fields as the runtime's limits (None: not set)."""
    nano = host.get("NanoCpus") or 0
    pids = host.get("PidsLimit")
    return Limits(
        memory_limit=host.get("Memory") or None,
        memory_swap=(host.get("MemorySwap") or 2 * host["Memory"]) if host.get("Memory") else
        (-1 if host.get("MemorySwap") == -1 else None),
        memory_reservation=host.get("MemoryReservation") or None,
        cpu_shares=host.get("CpuShares") or None,
        cpu_quota=nano * CPU_PERIOD // 1_000_000_000 if nano else host.get("CpuQuota") or None,
        cpu_period=CPU_PERIOD if nano else host.get("CpuPeriod") or None,
        cpuset_cpus=host.get("CpusetCpus") or None,
        cpuset_mems=host.get("CpusetMems") or None,
        pids_limit=None if pids is None or pids == 0 else pids,
        blkio_weight=host.get("BlkioWeight") or None,
        memory_swappiness=None if host.get("MemorySwappiness") in (None, -1) else host["MemorySwappiness"],
        oom_kill_disable=True if host.get("OomKillDisable") else None,
    )


def oci_resources(limits: Limits) -> dict:
    """``linux.resources`` of config.json (only what is set)."""
    out: dict[str, dict] = {}
    for section, key, value in (("memory", "limit", limits.memory_limit), ("memory", "swap", limits.memory_swap),
                                ("memory", "reservation", limits.memory_reservation),
                                ("cpu", "shares", limits.cpu_shares), ("cpu", "quota", limits.cpu_quota),
                                ("cpu", "period", limits.cpu_period), ("cpu", "cpus", limits.cpuset_cpus),
                                ("cpu", "mems", limits.cpuset_mems), ("pids", "limit", limits.pids_limit),
                                ("blockIO", "weight", limits.blkio_weight),
                                ("memory", "swappiness", limits.memory_swappiness),
                                ("memory", "disableOOMKiller", limits.oom_kill_disable)):
        if value is not None:
            out.setdefault(section, {})[key] = value
    return out


def update(current: dict, body: dict) -> tuple[dict, Limits]:
    """``docker update``: the new resource fields of a HostConfig, and the limits that change.

    Zero (or absent) means "unchanged"; ``PidsLimit`` 0 or -1 means "unlimited".  dockerd's extra
    rules for an update: a new memory limit may not pass the swap limit already set unless the swap
    changes too, and ``--cpus`` cannot replace a quota or period given directly (nor the reverse)."""
    from minicontainer.engine import fields

    # The body is the Resources fields and RestartPolicy: the field table says which are honoured.
    body = fields.canonical(body, fields.HOST_CONFIG)
    table = {k: v for k, v in fields.HOST_CONFIG.items() if k in UPDATABLE}
    for key in NOT_UPDATABLE:  # honoured at create, but a running container's are not changed here
        table[key] = fields.refused(f"{fields.HOST_CONFIG[key].what} of a created container: recreate it")
    fields.refuse_unhonoured(body, table, api="update")
    given = {k: body[k] for k in FIELDS if k in body and not (_is_unset(body[k]) and k != "PidsLimit")}
    if given.get("PidsLimit") is None:
        given.pop("PidsLimit", None)
    check(given, creating=False)
    for new, old, word in (("NanoCpus", "CpuQuota", "CPU Quota"), ("NanoCpus", "CpuPeriod", "CPU Period")):
        if given.get(new) and current.get(old):
            raise Conflict(f"Conflicting options: Nano CPUs cannot be updated as {word} has already been set")
        if given.get(old) and current.get(new):
            raise Conflict(f"Conflicting options: {word} cannot be updated as NanoCPUs has already been set")
    memory, swap = given.get("Memory"), given.get("MemorySwap")
    if memory and not swap and (current.get("MemorySwap") or 0) > 0 and memory > current["MemorySwap"]:
        raise InvalidParameter("Memory limit should be smaller than already set memoryswap limit, update the "
                               "memoryswap at the same time")
    merged = {**current, **given}
    check(merged, creating=False)
    if "PidsLimit" in given and given["PidsLimit"] <= 0:
        given["PidsLimit"] = merged["PidsLimit"] = -1
    whole = limits(merged)
    changed = {name: getattr(whole, name) for name in Limits._fields if _changes(name, given)}
    return {k: merged[k] for k in FIELDS}, Limits(**changed)


# The limits each HostConfig field sets.
_SETS = {"Memory": ("memory_limit",), "MemorySwap": ("memory_swap",), "MemoryReservation": ("memory_reservation",),
         "NanoCpus": ("cpu_quota", "cpu_period"), "CpuQuota": ("cpu_quota",), "CpuPeriod": ("cpu_period",),
         "CpuShares": ("cpu_shares",), "CpusetCpus": ("cpuset_cpus",), "CpusetMems": ("cpuset_mems",),
         "PidsLimit": ("pids_limit",), "BlkioWeight": ("blkio_weight",)}


def _changes(limit: str, given: dict) -> bool:
    return any(limit in _SETS[field] for field in given)
