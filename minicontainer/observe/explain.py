"""Narration: the kernel steps of a command, told as a learner would want to read them.

``minicontainer-runtime --explain run ...`` prints, before the program's own output::

    +  0.00 ms  parent  mkdir /sys/fs/cgroup/pids/minicontainer-demo                   ok      0.02 ms
    +  1.93 ms  stage1  unshare(CLONE_NEWNS|CLONE_NEWUTS|CLONE_NEWIPC|CLONE_NEWPID...)  ok      0.09 ms
                        ↳ new namespaces; the PID one takes effect for the children forked next
"""

from __future__ import annotations

import os
import re
import textwrap
from collections.abc import Iterable, Iterator
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
WIDTH = 100  # a terminal's columns: every line of the narration fits
HEAD = 22    # "+    1.93 ms  stage1  "
TAIL = 20    # "  ok         0.09 ms"
FOLD = 3     # this many like steps in a row (the same call, one argument apart) become one line

# Long paths that say little, told shorter: relative to the container's own directory (merged/proc,
# upper, stdout.raw), an image layer by its chain ID's first 12 digits, a runtime state directory
# from runtime/, the cgroups a daemon's own cgroup nests them in as "…".
SHORTER = [
    (re.compile(r"/[^\s,:=]*?/containers/[0-9a-f]{64}/"), ""),
    (re.compile(r"/[^\s,:=]*?/image/layers/sha256/([0-9a-f]{12})[0-9a-f]{52}/diff"), r"layers/\1"),
    (re.compile(r"/[^\s,:=]*?/(runtime/[0-9a-f]{12}/)"), r"\1"),
    (re.compile(r"(/sys/fs/cgroup/[\w,]+/)(?:[^\s/]+/)+(minicontainer-[0-9a-f]{12})"), r"\1…/\2"),
]


def shorten(text: str, paths: dict[str, str] | None = None) -> str:
    """``text`` with the long paths it names told short: ``paths`` maps a prefix to what to say
    instead (``{"/var/lib/minicontainer/containers/1e06.../": ""}``: relative to the container)."""
    for long, short in (paths or {}).items():
        text = text.replace(long, short)
    for pattern, replacement in SHORTER:
        text = pattern.sub(replacement, text)
    return text


def format_event(ev: Event, t0_ns: int, width: int = WIDTH, paths: dict[str, str] | None = None,
                 times: int = 1, why: str | None = None) -> str:
    """One step, in ``width`` columns: time, side, the call (wrapped if long), result and duration,
    then why.  ``times``: how many like steps this line stands for."""
    if ev.op in HTTP_METHODS:  # an exchange with a registry: "GET https://..."
        call = f"{ev.op} {ev.args}"
    else:
        call = f"{ev.op}({ev.args})" if ev.op not in ("start",) else f"{ev.op}: {ev.args}"
    call = shorten(call, paths) + (f" ×{times}" if times > 1 else "")
    head = f"+{(ev.at_ns - t0_ns) / 1e6:8.2f} ms  {ev.side:<6}  "
    tail = f"  {ev.result:<8} {ev.ms:6.2f} ms"
    room = max(width - len(head) - len(tail), 20)
    # never cut a call short: it goes on over more lines; a registry's URL and its challenge stay whole
    # (to be copied and tried), on lines of their own if need be
    http = ev.op in HTTP_METHODS
    pieces = [call] if http else _wrap(call, room, width - len(head))
    lines = [f"{'' if i else head}{piece}" if not i else f"{'':{len(head)}}{piece}" for i, piece in enumerate(pieces)]
    if len(pieces[-1]) <= room:
        lines[-1] = f"{lines[-1]:<{len(head) + room}}{tail}"
    else:
        lines.append(f"{'':{len(head) + room}}{tail}")
    why = shorten(ev.detail or WHY.get(ev.op, ""), paths) if why is None else why
    if why and http:
        lines.append(f"{'':{HEAD + 2}}↳ {why}")
    elif why:
        lines += textwrap.wrap(why, width, initial_indent=f"{'':{HEAD + 2}}↳ ", subsequent_indent=f"{'':{HEAD + 4}}")
    return "\n".join(lines)


def _wrap(text: str, first: int, rest: int) -> list[str]:
    """``text`` in lines of ``first`` columns, then ``rest``: broken at spaces, a word longer than a
    whole line cut where it must (a path)."""
    lines = [""]
    for word in text.split(" "):
        limit = first if len(lines) == 1 else rest
        if lines[-1] and len(lines[-1]) + 1 + len(word) > limit:
            lines.append("")
            limit = rest
        lines[-1] = f"{lines[-1]} {word}" if lines[-1] else word
        while len(lines[-1]) > limit:
            # at a separator if there is one: after "CLONE_NEWPID|" or "a,", before "/tasks"
            head = lines[-1][:limit]
            at = max(head.rfind("|") + 1, head.rfind(",") + 1, head.rfind("/")) or limit
            lines[-1], cut = lines[-1][:at], lines[-1][at:]
            lines.append(cut)
            limit = rest
    return lines


def _alike(a: Event, b: Event) -> bool:
    """Two steps that differ in one argument only, both ok: 29 capabilities dropped one by one, a
    cgroup made in each of six hierarchies."""
    if (a.op, a.side, a.result, a.errno, b.result, b.errno) != (b.op, b.side, "ok", 0, "ok", 0):
        return False
    first_a, _, rest_a = a.args.partition(", ")
    first_b, _, rest_b = b.args.partition(", ")
    return a.detail == b.detail or first_a == first_b and bool(rest_a) and bool(rest_b)


def _folded_why(run: list[Event], room: int) -> str:
    """What a run of like steps did: their common detail, or the part that differs, listed (as
    many as fit in ``room`` columns, then how many in all)."""
    details = [ev.detail for ev in run]
    if len(set(details)) == 1:
        return details[0]
    suffix = os.path.commonprefix([d[::-1] for d in details])[::-1]
    said = f"each{suffix}: " if suffix else ""
    names = [d[: len(d) - len(suffix)] for d in details]
    for shown in range(len(names), 0, -1):
        text = said + ", ".join(names[:shown]) + ("" if shown == len(names) else f", … ({len(names)} in all)")
        if len(text) <= room:
            return text
    return said + f"{len(names)} of them"


def folded(events: list[Event], room: int = WIDTH - HEAD - 4) -> Iterator[tuple[Event, int, str | None]]:
    """The events, each run of :data:`FOLD` or more like steps as one: (event, how many, why)."""
    i = 0
    while i < len(events):
        j = i + 1
        while j < len(events) and _alike(events[i], events[j]):
            j += 1
        if j - i >= FOLD:
            run = events[i:j]
            total = sum(ev.ms for ev in run)
            yield run[0]._replace(ms=total), len(run), _folded_why(run, room)
            i = j
        else:
            yield events[i], 1, None
            i += 1


def narrate(events: Iterable[Event], out: TextIO, *, title: str = "", paths: dict[str, str] | None = None,
            width: int = WIDTH) -> None:
    evs = sorted(events, key=lambda e: e.at_ns)
    if not evs:
        return
    if title:
        out.write(f"── {title} " + "─" * max(0, 60 - len(title)) + "\n")
    t0 = evs[0].at_ns
    out.writelines(format_event(ev, t0, width, paths, times, why) + "\n"
                   for ev, times, why in folded(evs, width - HEAD - 4))
    total = (evs[-1].at_ns + evs[-1].ms * 1e6 - t0) / 1e6
    out.write(f"   {len(evs)} kernel steps in {total:.1f} ms\n")
    out.flush()
