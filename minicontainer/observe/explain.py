"""Narration: the kernel steps of a command, told as a learner would want to read them.

``minicontainer-runtime --explain run ...`` prints, before the program's own output::

    +  0.00 ms  parent  mkdir /sys/fs/cgroup/pids/minicontainer-demo                   ok      0.02 ms
    +  1.93 ms  stage1  unshare(CLONE_NEWNS|CLONE_NEWUTS|CLONE_NEWIPC|CLONE_NEWPID...)  ok      0.09 ms
                        ↳ new namespaces; the PID one takes effect for the children forked next
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TextIO

from minicontainer.observe.events import Event

# Why, for steps whose call does not carry a detail of its own.
WHY = {
    "unshare": "new namespaces for this process",
    "setns": "join an existing namespace",
    "pivot_root": "swap root filesystems",
    "sethostname": "the hostname of the container's own UTS namespace",
    "capset": "the capabilities the program keeps",
    "setresuid": "become the container's user",
    "setresgid": "take the container's group",
    "setgroups": "the supplementary groups",
    "setrlimit": "a resource limit (process.rlimits)",
    "execve": "replace init with the user's program: from here on, it is PID 1",
    "fork": "",
}


HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def format_event(ev: Event, t0_ns: int, width: int = 72) -> str:
    if ev.op in HTTP_METHODS:  # an exchange with a registry: "GET https://..."
        call = f"{ev.op} {ev.args}"
    else:
        call = f"{ev.op}({ev.args})" if ev.op not in ("start",) else f"{ev.op}: {ev.args}"
    head = f"+{(ev.at_ns - t0_ns) / 1e6:8.2f} ms  {ev.side:<6}  "
    if len(call) > width:  # never cut a call short: put the result on a line of its own
        call = f"{call}\n{'':{len(head)}}{'':<{width}}"
    line = f"{head}{call:<{width}}  {ev.result:<8} {ev.ms:6.2f} ms"
    why = ev.detail or WHY.get(ev.op, "")
    if why:
        line += f"\n{'':28}↳ {why}"
    return line


def narrate(events: Iterable[Event], out: TextIO, *, title: str = "") -> None:
    evs = sorted(events, key=lambda e: e.at_ns)
    if not evs:
        return
    if title:
        out.write(f"── {title} " + "─" * max(0, 60 - len(title)) + "\n")
    t0 = evs[0].at_ns
    out.writelines(format_event(ev, t0) + "\n" for ev in evs)
    total = (evs[-1].at_ns + evs[-1].ms * 1e6 - t0) / 1e6
    out.write(f"   {len(evs)} kernel steps in {total:.1f} ms\n")
    out.flush()
