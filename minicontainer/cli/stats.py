"""``minicontainer stats``: the running containers' CPU, memory, network, block I/O and processes.

Without names, every running container; ``--no-stream`` prints one table and returns, otherwise the
table is redrawn every second until Ctrl-C.  The numbers come from ``GET /containers/{id}/stats``
and are computed as the docker CLI computes them (:mod:`minicontainer.observe.stats`).

``--no-stream`` asks for one document per container (``stream=false``, all at once, a thread each),
which the daemon makes from two readings a second apart: the table shows that second's CPU %, as
the docker CLI's does.  (``one-shot=true`` would answer at once, but with no earlier reading to
compare with: a CPU % of 0.)  ``--plot FILE.png`` samples for ``--duration`` seconds and draws the
series instead.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time


def _targets(api, names: list[str], all_: bool) -> list[str]:
    if names:
        return names
    return [c["Id"] for c in api.json("GET", "/containers/json", {"all": int(all_)})]


def _table(docs: list[tuple[str, dict]], args: argparse.Namespace) -> str:
    from minicontainer.cli.format import formatted
    from minicontainer.observe.stats import DEFAULT_FORMAT, TITLES, columns

    rows = [columns(doc, no_trunc=args.no_trunc, name=name) for name, doc in docs]
    return formatted(args.format or DEFAULT_FORMAT, rows, TITLES)


def _no_stream(api, refs: list[str]) -> list[tuple[str, dict | str]]:
    """One document per container, a second in the making each: asked in parallel, so the table
    takes one second, not one per container.  An error comes back as its message."""
    from concurrent.futures import ThreadPoolExecutor

    from minicontainer.client.api import APIError

    def one(ref: str) -> dict | str:
        try:
            return api.json("GET", f"/containers/{ref}/stats", {"stream": 0})
        except APIError as e:
            return e.message

    with ThreadPoolExecutor(max_workers=min(32, len(refs) or 1)) as pool:
        return list(zip(refs, pool.map(one, refs), strict=True))


class _Follower(threading.Thread):
    """One container's stream of documents; the newest is kept for the next redraw."""

    def __init__(self, api, ref: str) -> None:
        super().__init__(daemon=True)
        self.api, self.ref = api, ref
        self.latest: dict | None = None
        self.error: str | None = None

    def run(self) -> None:
        from minicontainer.client.api import APIError

        try:
            for doc in self.api.stream_json("GET", f"/containers/{self.ref}/stats", {"stream": 1}):
                self.latest = doc
        except (APIError, OSError) as e:
            self.error = getattr(e, "message", str(e))


def cmd_stats(args: argparse.Namespace) -> int:
    from minicontainer.cli.containers import client

    if args.plot:
        return _plot(args)
    api = client()
    code = 0
    if args.no_stream:
        docs = []
        for ref, doc in _no_stream(api, _targets(api, args.containers, args.all)):
            if isinstance(doc, str):
                print(f"Error response from daemon: {doc}", file=sys.stderr)
                code = 1
            else:
                docs.append((ref if args.containers else None, doc))
        if docs or not args.containers:
            sys.stdout.write(_table(docs, args))
        return code
    followers: dict[str, _Follower] = {}
    while True:
        for ref in _targets(api, args.containers, args.all):
            if ref not in followers:
                followers[ref] = _Follower(api, ref)
                followers[ref].start()
        time.sleep(1)
        docs = [(ref if args.containers else None, f.latest) for ref, f in followers.items() if f.latest]
        for ref, f in list(followers.items()):
            if f.error and args.containers:
                print(f"Error response from daemon: {f.error}", file=sys.stderr)
                return 1
            if not f.is_alive() and not args.containers:
                del followers[ref]  # gone: it leaves the table, as in docker's
        sys.stdout.write("\033[2J\033[H" + _table(docs, args))  # clear the screen, redraw
        sys.stdout.flush()


def _plot(args: argparse.Namespace) -> int:
    from minicontainer.client import from_env
    from minicontainer.observe import plots
    from minicontainer.observe.sampler import sample

    client = from_env()
    names = _targets(client.api, args.containers, args.all)
    if not names:
        print("no running container to sample: start one, or name it", file=sys.stderr)
        return 1
    series = sample([client.containers.get(n) for n in names], duration=args.duration, interval=args.interval,
                    client=client)
    figure = plots.overview(series)
    figure.savefig(args.plot, dpi=100)
    print(f"{args.plot}: {len(series)} series of {max(len(s) for s in series)} samples over {args.duration:g} s")
    return 0


def add_commands(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("stats", help="show containers' resource use (CPU, memory, I/O, processes)",
                            description="A live table of the containers' resource use, as docker stats; "
                                        "with --plot, a PNG of it over time.")
    p.add_argument("containers", nargs="*", metavar="CONTAINER")
    p.add_argument("-a", "--all", action="store_true", help="all containers (by default only the running)")
    p.add_argument("--no-stream", action="store_true", help="one table (CPU %% over one second), no redraws")
    p.add_argument("--no-trunc", action="store_true", help="full container IDs")
    p.add_argument("--format", help='a Go template: "table {{.Name}}\\t{{.CPUPerc}}", or {{json .}}')
    p.add_argument("--plot", metavar="FILE.png", help="sample, then draw memory, CPU and processes over time")
    p.add_argument("--duration", type=float, default=10.0, help="seconds to sample with --plot (10)")
    p.add_argument("--interval", type=float, default=0.2, help="seconds between samples with --plot (0.2)")
    p.set_defaults(handler=cmd_stats)
