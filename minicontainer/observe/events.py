"""Structured events: the trace of every kernel step a container takes.

Each call the runtime makes into the kernel (``unshare``, ``mount``, ``pivot_root``, a write to a
cgroup file...) becomes one :class:`Event`: what was done, with which arguments, what came back and
how long it took.  The events are the teaching backbone of minicontainer: ``--explain`` narrates them
(:mod:`minicontainer.observe.explain`), the state directory keeps them as JSON lines, and the
notebooks draw them as a timeline.

Times are taken from ``CLOCK_MONOTONIC``, which every process on the host shares, so events recorded
in the container's own processes (the child side) line up with the parent's on one time axis.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from typing import NamedTuple


class Event(NamedTuple):
    """One step: ``op(args) -> result`` done by ``side`` at ``at_ns``, taking ``ms``."""

    op: str  # the kernel operation or runtime step: "unshare", "mount", "write", "fork", ...
    args: str  # its arguments as a learner would write them: "CLONE_NEWPID|CLONE_NEWNS"
    result: str = "ok"  # "ok", a value ("pid 4242"), or the error name ("EPERM")
    ms: float = 0.0  # how long the call took
    side: str = "parent"  # which process did it: parent, stage1 (namespaces), init (PID 1)
    at_ns: int = 0  # CLOCK_MONOTONIC when the call started
    errno: int = 0  # non-zero when the call failed
    detail: str = ""  # a note on why, for steps whose reason is not obvious from the call

    def to_json(self) -> str:
        return json.dumps(self._asdict(), separators=(",", ":"))

    @classmethod
    def from_dict(cls, d: dict) -> Event:
        return cls(**{k: d[k] for k in cls._fields if k in d})


class Trace:
    """Collects the events of one process; listeners see each event as it is recorded."""

    def __init__(self, side: str = "parent") -> None:
        self.side = side
        self.events: list[Event] = []
        self.listeners: list[Callable[[Event], None]] = []

    def record(self, op: str, args: str, result: str = "ok", *, start_ns: int | None = None,
               errno: int = 0, detail: str = "") -> Event:
        now = time.monotonic_ns()
        start = now if start_ns is None else start_ns
        ev = Event(op=op, args=args, result=result, ms=(now - start) / 1e6, side=self.side,
                   at_ns=start, errno=errno, detail=detail)
        self.add(ev)
        return ev

    def add(self, ev: Event) -> None:
        self.events.append(ev)
        for listener in self.listeners:
            listener(ev)

    def extend(self, events: Iterable[Event]) -> None:
        for ev in events:
            self.add(ev)

    def __iter__(self) -> Iterator[Event]:
        return iter(self.events)


def write_jsonl(path: str, events: Iterable[Event]) -> None:
    """Append events to a JSON-lines file (the state directory's ``events.jsonl``)."""
    with open(path, "a", encoding="utf-8") as f:
        f.writelines(ev.to_json() + "\n" for ev in events)


def read_jsonl(path: str) -> list[Event]:
    try:
        with open(path, encoding="utf-8") as f:
            return [Event.from_dict(json.loads(line)) for line in f if line.strip()]
    except FileNotFoundError:
        return []
