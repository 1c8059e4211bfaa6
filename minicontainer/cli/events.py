"""``minicontainer events``: what happens to containers and images, as it happens (``docker events``).

One ``GET /events`` request whose reply never ends (until ``--until``, or Ctrl-C): the daemon writes
a JSON message per event, and each is printed as docker prints it::

    2026-12-04T21:30:22.123456789Z container start 3f2a... (image=busybox, name=web)

``--since`` and ``--until`` take what docker takes (``10m``, ``1h30m``, an RFC 3339 time, Unix
seconds); the client turns them into Unix seconds, as the docker CLI does, before sending them.
"""

from __future__ import annotations

import argparse
import sys
import time


def timestamp(text: str | None, now: float | None = None) -> str | None:
    """docker's ``--since``/``--until``: a Go duration before now (``10m``, ``1h30m``, ``0s``), Unix
    seconds (``1700000000.5``), or an RFC 3339 date or time -> Unix ``seconds.nanoseconds`` for the API."""
    from minicontainer.units import point_in_time_ns

    if not text:
        return None
    ns = point_in_time_ns(text, None if now is None else int(now * 1e9))
    seconds, fraction = divmod(abs(ns), 1_000_000_000)
    return f"{'-' if ns < 0 else ''}{seconds}.{fraction:09d}"


def line(message: dict) -> str:
    """docker's default output: local time with nanoseconds, type, action, actor, sorted attributes."""
    nanos = message.get("timeNano") or message.get("time", 0) * 1_000_000_000
    seconds, fraction = divmod(nanos, 1_000_000_000)
    local = time.localtime(seconds)
    offset = time.strftime("%z", local)
    zone = "Z" if offset in ("+0000", "-0000") else f"{offset[:3]}:{offset[3:]}"
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", local) + f".{fraction:09d}{zone}"
    actor = message.get("Actor") or {}
    attrs = actor.get("Attributes") or {}
    text = f"{stamp} {message.get('Type')} {message.get('Action')} {actor.get('ID')}"
    if attrs:
        text += " (" + ", ".join(f"{k}={v}" for k, v in sorted(attrs.items())) + ")"
    return text


def cmd_events(args: argparse.Namespace) -> int:
    from minicontainer.cli.containers import client
    from minicontainer.client.api import filters_json

    params = {"since": timestamp(args.since), "until": timestamp(args.until),
              "filters": filters_json(args.filter) if args.filter else None}
    if args.format:
        from minicontainer.cli.format import go_template, json_dumps

    for message in client().stream_json("GET", "/events", params):
        if args.format == "json" or args.format == "{{json .}}":
            print(json_dumps(message))
        elif args.format:
            print(go_template(args.format.replace("\\t", "\t"), message))
        else:
            print(line(message))
        sys.stdout.flush()
    return 0


def add_commands(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("events", help="show what happens to containers and images, as it happens",
                            description="Stream the daemon's events (create, start, die, oom, kill, stop, pull, "
                                        "tag...). Runs until --until, or Ctrl-C.")
    p.add_argument("--since", help="replay the events since this time (10m, an RFC 3339 time, Unix seconds)")
    p.add_argument("--until", help="stop streaming at this time")
    p.add_argument("-f", "--filter", action="append", default=[],
                   help="type=, event=, container=, image=, label= (repeat to combine)")
    p.add_argument("--format", help="a Go template ({{.Action}}), or json")
    p.set_defaults(handler=cmd_events)
