"""``docker stats``: a container's resource use, read from its cgroup's counters and from /proc.

The kernel counts everything already: CPU time in ``cpuacct.usage`` (v1) or ``cpu.stat`` (v2),
memory in ``memory.usage_in_bytes`` / ``memory.current``, processes in ``pids.current``, block I/O
per device.  A *sample* is those counters read at one moment, shaped as the Engine API's stats
document (``GET /containers/{id}/stats``)::

    {"read": "2026-12-04T21:30:22.123456789Z", "preread": "...", "name": "/web", "id": "...",
     "cpu_stats":    {"cpu_usage": {"total_usage": ns, ...}, "system_cpu_usage": ns, "online_cpus": 2,
                      "throttling_data": {"periods": n, "throttled_periods": n, "throttled_time": ns}},
     "precpu_stats": {... the same, one sample earlier ...},
     "memory_stats": {"usage": bytes, "limit": bytes, "stats": {...memory.stat...}},
     "pids_stats":   {"current": n, "limit": n},
     "blkio_stats":  {"io_service_bytes_recursive": [{"major": 8, "minor": 0, "op": "read", "value": n}]},
     "num_procs": 0}

Counters only ever grow, so a *rate* needs two samples: the client computes CPU % as the container's
CPU time over the host's, between ``precpu_stats`` and ``cpu_stats`` (times the number of CPUs).
That is why a stream's first document has an empty ``precpu_stats``, and why ``stream=false`` waits
for a second sample, a second later, as dockerd does.
"""

from __future__ import annotations

import asyncio
import functools
import os
import time
from collections.abc import AsyncIterator
from typing import Any

from minicontainer.engine.errors import InvalidParameter
from minicontainer.kernel.cgroups import Cgroup, CgroupStats, Limits, cgroup_from_state
from minicontainer.kernel.syscalls import HeldReads, Syscalls

ZERO_TIME = "0001-01-01T00:00:00Z"
DOCKER_INTERVAL = 1.0  # seconds between the documents of a stream, as dockerd sends them
MIN_INTERVAL = 0.05  # the fastest a client may ask for (minicontainer's own ``interval``)
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def rfc3339_nano(ns: int) -> str:
    """Go's RFC 3339 with nanoseconds, as the ``read`` field carries it."""
    seconds, fraction = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{fraction:09d}Z"


_host_cpu: list[int] = [0, 0]  # (when read, in monotonic ns; the value)


def host_cpu_ns() -> int:
    """All CPU time the host has spent since boot, in nanoseconds: the first seven numbers of the
    ``cpu`` line of /proc/stat (user, nice, system, idle, iowait, irq, softirq), in clock ticks.
    It grows by (number of CPUs) seconds every second: the denominator of CPU %.

    The kernel updates it once a clock tick (10 ms): a reading younger than 5 ms is reused, so that
    sampling many containers at once reads the file once."""
    now = time.monotonic_ns()
    if now - _host_cpu[0] > 5_000_000:
        with open("/proc/stat", "rb") as f:
            fields = f.readline().split()[1:8]
        _host_cpu[:] = [now, sum(int(n) for n in fields) * 1_000_000_000 // _CLOCK_TICKS]
    return _host_cpu[1]


def online_cpus() -> int:
    return os.sysconf("SC_NPROCESSORS_ONLN")


@functools.cache
def host_memory() -> int:
    """MemTotal: what an unlimited container's limit is reported as (it does not change: read once)."""
    with open("/proc/meminfo", "rb") as f:
        return int(f.readline().split()[1]) * 1024


def network_counters(pid: int) -> dict[str, dict[str, int]]:
    """The container's interfaces (but loopback) from /proc/PID/net/dev: that file shows the network
    namespace of the process that reads it through, so it is the container's view."""
    out: dict[str, dict[str, int]] = {}
    try:
        with open(f"/proc/{pid}/net/dev") as f:
            lines = f.readlines()[2:]
    except OSError:
        return out
    for line in lines:
        name, _, numbers = line.partition(":")
        name = name.strip()
        if name == "lo":
            continue
        n = [int(x) for x in numbers.split()]
        out[name] = {"rx_bytes": n[0], "rx_packets": n[1], "rx_errors": n[2], "rx_dropped": n[3],
                     "tx_bytes": n[8], "tx_packets": n[9], "tx_errors": n[10], "tx_dropped": n[11]}
    return out


def cpu_part(s: CgroupStats | None, system_ns: int) -> dict[str, Any]:
    """``cpu_stats`` (or ``precpu_stats``) from the cgroup's counters."""
    if s is None:  # the first document of a stream: nothing to compare with yet
        return {"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
                "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}}
    usage: dict[str, Any] = {"total_usage": (s.cpu_usage_usec or 0) * 1000,
                             "usage_in_kernelmode": (s.cpu_system_usec or 0) * 1000,
                             "usage_in_usermode": (s.cpu_user_usec or 0) * 1000}
    if s.cpu_percpu_ns is not None:  # v1 only
        usage["percpu_usage"] = list(s.cpu_percpu_ns)
    return {"cpu_usage": usage, "system_cpu_usage": system_ns, "online_cpus": online_cpus(),
            "throttling_data": {"periods": s.cpu_periods or 0, "throttled_periods": s.cpu_throttled_periods or 0,
                                "throttled_time": (s.cpu_throttled_usec or 0) * 1000}}


class Sample:
    """One reading of a container's counters: the cgroup's numbers, the host's CPU time, when."""

    def __init__(self, cgroup: Cgroup, pid: int) -> None:
        self.at_ns = time.time_ns()
        self.version = cgroup.version
        self.cgroup = cgroup.stats()
        self.system_ns = host_cpu_ns()
        self.networks = network_counters(pid) if pid else {}


def document(container: Any, now: Sample | None, before: Sample | None) -> dict[str, Any]:
    """The Engine API's stats document of ``container`` from two samples (``before`` may be None)."""
    doc: dict[str, Any] = {"name": "/" + container.name, "id": container.id, "read": ZERO_TIME,
                           "preread": ZERO_TIME if before is None else rfc3339_nano(before.at_ns)}
    if now is None:  # not running: dockerd answers with the names only
        return doc
    s = now.cgroup
    memory: dict[str, Any] = {"usage": s.memory_usage or 0,
                              "limit": min(s.memory_limit or host_memory(), host_memory()),
                              "stats": dict(s.memory_detail or {})}
    if now.version == "v1":  # fields only cgroup v1 has
        memory.update(max_usage=s.memory_max_usage, failcnt=s.memory_failcnt or 0)
    pids: dict[str, int] = {"current": s.pids_current or 0}
    if s.pids_limit:
        pids["limit"] = s.pids_limit
    io = [{"major": e.major, "minor": e.minor, "op": e.op, "value": e.value} for e in s.io_bytes or ()]
    doc.update({
        "read": rfc3339_nano(now.at_ns), "num_procs": 0, "pids_stats": pids,
        "cpu_stats": cpu_part(s, now.system_ns),
        "precpu_stats": cpu_part(before.cgroup if before else None, before.system_ns if before else 0),
        "memory_stats": memory,
        "blkio_stats": {"io_service_bytes_recursive": io, "io_serviced_recursive": None,
                        "io_queue_recursive": None, "io_service_time_recursive": None,
                        "io_wait_time_recursive": None, "io_merged_recursive": None,
                        "io_time_recursive": None, "sectors_recursive": None},
    })
    if now.networks:
        doc["networks"] = now.networks
    return doc


class Meter:
    """The engine's stats: which cgroup each running container has, and its samples.

    The cgroup object of a container is built once per start (from the runtime's state.json) and
    kept: a sampler asking ten times a second should cost a few file reads, nothing more.
    """

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.cgroups: dict[str, tuple[str, Cgroup]] = {}  # container ID -> (its StartedAt, its cgroup)

    def cgroup(self, container: Any, sys: Syscalls | None = None) -> Cgroup | None:
        """The running container's cgroup, or None if it is not running.  With ``sys``, a new
        object recording into that trace (a pause, an update: steps --explain tells)."""
        if not container.running:
            self._drop(container.id)
            return None
        if sys is not None:
            return cgroup_from_state(sys, self._state(container).cgroup)
        started = container.state["StartedAt"]
        known = self.cgroups.get(container.id)
        if known is None or known[0] != started:
            self._drop(container.id)
            state = self._state(container)
            known = self.cgroups[container.id] = (started, cgroup_from_state(HeldReads(), state.cgroup))
        return known[1]

    def _state(self, container: Any):
        from minicontainer.runtime import lifecycle

        return lifecycle.State.load(self.engine.runtime_root, container.id[:12])

    def update(self, container: Any, limits: Limits, sys: Syscalls) -> None:
        """New limits into the running cgroup.  On v1 a limit may need a hierarchy the container was
        not in (``--cpuset-cpus``): the runtime's state learns of it, so that delete removes it too."""
        state = self._state(container)
        cgroup = cgroup_from_state(sys, state.cgroup)
        cgroup.update(limits)
        if cgroup.to_state() != state.cgroup:
            state.cgroup = cgroup.to_state()
            state.save()
        self._drop(container.id)

    def sample(self, container: Any) -> Sample | None:
        cgroup = self.cgroup(container)
        return None if cgroup is None else Sample(cgroup, container.state.get("Pid") or 0)

    def forget(self, cid: str) -> None:
        """The container has stopped."""
        self._drop(cid)

    def _drop(self, cid: str) -> None:
        """Close the files of the cgroup object kept for ``cid`` (it is built anew when next read)."""
        known = self.cgroups.pop(cid, None)
        if known is not None:
            known[1].sys.close()

    async def documents(self, ref: str, *, stream: bool = True, one_shot: bool = False,
                        interval: float = DOCKER_INTERVAL) -> AsyncIterator[dict]:
        """What ``GET /containers/{id}/stats`` sends: with ``stream``, a document every ``interval``
        seconds, each compared with the one before; without, one document.

        Without ``stream``, dockerd waits for a second sample an ``interval`` after the first, so
        that the document holds a rate: ``docker stats --no-stream`` shows that second's CPU %.
        With ``one_shot`` it answers at once, with an empty ``precpu_stats`` (a CPU % of 0): for
        a client that wants the counters now, not a rate."""
        if stream and one_shot:
            raise InvalidParameter("cannot have stream=true and one-shot=true")
        if interval < MIN_INTERVAL:
            raise InvalidParameter(f"interval must be at least {MIN_INTERVAL} s")
        container = self.engine.get(ref)
        before = self.sample(container)
        if not stream:
            if before is None:
                yield document(container, None, None)
            elif one_shot:
                yield document(container, before, None)
            else:
                await asyncio.sleep(interval)
                yield document(container, self.sample(container), before)
            return
        yield document(container, before, None)
        while True:
            await asyncio.sleep(interval)
            now = self.sample(container)
            yield document(container, now, before)
            before = now
