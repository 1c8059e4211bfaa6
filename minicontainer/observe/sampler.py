"""Record a container's resource use over time, into a plain series a learner can print and index.

::

    box = client.containers.run("busybox", "sh -c 'while :; do :; done'", detach=True, nano_cpus=500_000_000)
    series = box.sample(duration=5)          # or: sample([box, other], duration=5)
    len(series); series[-1].cpu              # 0.5: half of one CPU, as --cpus 0.5 allows
    series.column("throttled")               # CFS periods in which the quota ran out, cumulative
    print(series)                            # a table: seconds, MiB, CPUs, processes...

Each :class:`Point` comes from one stats document the daemon streams
(``GET /containers/{id}/stats?interval=...``): the memory in use against its limit, the CPU used
since the point before (in CPUs: CPU seconds per second), the throttled periods, the processes
against their limit, the bytes read and written.  The container's events while sampling (an
``oom`` kill, ``die``, ``pause``, ``update``...) are kept too, as :class:`Mark`\\ s on the same clock.

Standard library only; :mod:`minicontainer.observe.plots` draws a series with matplotlib.
"""

from __future__ import annotations

import calendar
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

from minicontainer.client.http import ProtocolError
from minicontainer.observe.stats import block_io, memory_used

MiB = 1024 * 1024


class Point(NamedTuple):
    """A container's use at one moment ``t`` (seconds since the sampling began)."""

    t: float
    memory: int  # bytes in use, as docker stats counts them (page cache the kernel can drop left out)
    memory_limit: int | None  # bytes; None: no limit
    cpu: float  # CPUs used since the point before: 0.5 is half of one CPU
    cpu_limit: float | None  # CPUs the quota allows (--cpus); None: no quota
    throttled: int  # CFS periods in which the quota ran out, since the start (cumulative)
    periods: int  # CFS periods in which the container ran, since the start
    pids: int  # processes and threads
    pids_limit: int | None
    read_bytes: int  # block I/O since the start
    written_bytes: int


class Mark(NamedTuple):
    """An event of the container while it was sampled: ``oom``, ``die``, ``kill``, ``pause``..."""

    t: float
    action: str
    attributes: dict


class Series:
    """One container's points and marks, oldest first.  ``series[i]`` is a :class:`Point`."""

    def __init__(self, name: str, cid: str) -> None:
        self.name = name
        self.id = cid
        self.points: list[Point] = []
        self.marks: list[Mark] = []

    def __len__(self) -> int:
        return len(self.points)

    def __getitem__(self, index: int) -> Point:
        return self.points[index]

    def __iter__(self) -> Iterator[Point]:
        return iter(self.points)

    def column(self, field: str) -> list:
        """One field of every point: ``series.column("memory")``."""
        return [getattr(p, field) for p in self.points]

    def mark(self, action: str) -> Mark | None:
        """The first mark of that action (``"oom"``), or None."""
        return next((m for m in self.marks if m.action == action), None)

    def __repr__(self) -> str:
        head = f"{'t (s)':>7} {'memory (MiB)':>13} {'limit':>8} {'CPU (CPUs)':>11} {'quota':>6} " \
               f"{'throttled':>9} {'pids':>5} {'limit':>6}"
        lines = [f"{self.name} ({self.id[:12]}): {len(self)} points", head]
        for p in self.points:
            lines.append(f"{p.t:7.2f} {p.memory / MiB:13.2f} {_opt(p.memory_limit, MiB):>8} {p.cpu:11.3f} "
                         f"{_opt(p.cpu_limit):>6} {p.throttled:9d} {p.pids:5d} {_opt(p.pids_limit):>6}")
        lines += [f"{m.t:7.2f} event: {m.action} {m.attributes}" for m in self.marks]
        return "\n".join(lines)


def _opt(value: float | None, unit: float = 1) -> str:
    return "-" if value is None else f"{value / unit:g}"


def parse_read(text: str) -> float:
    """``2026-12-04T21:30:22.123456789Z`` -> Unix seconds."""
    whole, _, fraction = text.rstrip("Z").partition(".")
    return calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S")) + float("0." + (fraction or "0"))


def cpu_limit(host_config: dict) -> float | None:
    """The CPUs a container's quota allows: ``--cpus`` (NanoCpus), or CpuQuota over CpuPeriod."""
    if host_config.get("NanoCpus"):
        return host_config["NanoCpus"] / 1e9
    quota, period = host_config.get("CpuQuota") or 0, host_config.get("CpuPeriod") or 100_000
    return quota / period if quota > 0 else None


class Sampler:
    """Samples containers in background threads until :meth:`stop` (or ``duration``, or until every
    one of them has stopped).  ``on_point(series, point)`` is called as points arrive (live plots)."""

    def __init__(self, client: Any, containers: list[Any], *, interval: float = 0.1,
                 on_point: Callable[[Series, Point], None] | None = None) -> None:
        self.client = client
        self.api = client.api
        self.containers = containers
        self.interval = interval
        self.on_point = on_point
        self.series = [Series(c.name, c.id) for c in containers]
        self.started = time.time()
        self.host_memory = int(self.api.json("GET", "/info").get("MemTotal") or 0)
        self._responses: list[Any] = []
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()

    def start(self) -> Sampler:
        self.started = time.time()
        self._spawn(self._events)
        for container, series in zip(self.containers, self.series, strict=True):
            self._spawn(self._follow, container, series)
        return self

    def _spawn(self, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _open(self, path: str, params: dict) -> Any:
        resp = self.api.request("GET", path, params)
        with self._lock:
            if self._stopping.is_set():
                resp.close()
                return None
            self._responses.append(resp)
        return resp

    def _follow(self, container: Any, series: Series) -> None:
        """One container's stats stream -> its points; ends when the container has stopped."""
        host = self.api.json("GET", f"/containers/{container.id}/json")["HostConfig"]
        quota = cpu_limit(host)
        resp = self._open(f"/containers/{container.id}/stats", {"stream": 1, "interval": self.interval})
        if resp is None:
            return
        before = None
        try:
            for line in resp:
                doc = json.loads(line)
                if doc.get("read", "").startswith("0001"):
                    return  # stopped: nothing more to count
                if series.marks and series.marks[-1].action == "update":
                    host = self.api.json("GET", f"/containers/{container.id}/json")["HostConfig"]
                    quota = cpu_limit(host)
                if before is not None:
                    point = self._point(doc, before, quota)
                    series.points.append(point)
                    if self.on_point:
                        self.on_point(series, point)
                before = doc
        except (OSError, ValueError, ProtocolError):
            return  # the stream was closed under us (stop)

    def _point(self, doc: dict, before: dict, quota: float | None) -> Point:
        at, then = parse_read(doc["read"]), parse_read(before["read"])
        used = doc["cpu_stats"]["cpu_usage"]["total_usage"] - before["cpu_stats"]["cpu_usage"]["total_usage"]
        throttling = doc["cpu_stats"].get("throttling_data") or {}
        limit = doc["memory_stats"].get("limit") or 0
        pids = doc.get("pids_stats") or {}
        read, written = block_io(doc)
        return Point(t=at - self.started, memory=memory_used(doc),
                     memory_limit=None if not limit or limit >= self.host_memory else limit,
                     cpu=used / 1e9 / (at - then) if at > then else 0.0, cpu_limit=quota,
                     throttled=throttling.get("throttled_periods", 0), periods=throttling.get("periods", 0),
                     pids=pids.get("current", 0), pids_limit=pids.get("limit"), read_bytes=read,
                     written_bytes=written)

    def _events(self) -> None:
        by_id = {s.id: s for s in self.series}
        resp = self._open("/events", {"filters": json.dumps({"type": ["container"], "container": list(by_id)})})
        if resp is None:
            return
        try:
            for line in resp:
                message = json.loads(line)
                series = by_id.get(message["Actor"]["ID"])
                if series is not None:
                    series.marks.append(Mark(message["timeNano"] / 1e9 - self.started, message["Action"],
                                             message["Actor"]["Attributes"]))
        except (OSError, ValueError, ProtocolError):
            return  # closed under us

    def running(self) -> bool:
        """Are some of the containers still being sampled?"""
        return any(t.is_alive() for t in self._threads[1:])

    def wait(self, duration: float) -> None:
        deadline = time.monotonic() + duration
        while self.running() and time.monotonic() < deadline:
            time.sleep(min(0.05, self.interval))
        self.stop()

    def stop(self) -> list[Series]:
        """End every stream (shutting the sockets down wakes the threads reading them)."""
        time.sleep(0.05)  # the events of a container's end come a moment after its last document
        with self._lock:
            self._stopping.set()
            responses, self._responses = self._responses, []
        for resp in responses:
            try:
                resp.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread in self._threads:
            thread.join(timeout=2)
        for resp in responses:
            resp.close()
        return self.series


def sample(containers: Any, duration: float = 10.0, *, interval: float = 0.1, client: Any = None,
           on_point: Callable[[Series, Point], None] | None = None) -> Any:
    """Sample one container (-> a :class:`Series`) or a list of them (-> a list) for ``duration``
    seconds, every ``interval`` seconds, or until they have all stopped."""
    many = isinstance(containers, (list, tuple))
    boxes = list(containers) if many else [containers]
    client = client or boxes[0].client
    sampler = Sampler(client, boxes, interval=interval, on_point=on_point).start()
    sampler.wait(duration)
    return sampler.series if many else sampler.series[0]
