"""``minicontainer pause``, ``unpause`` and ``update``: a running container's cgroup, changed.

``pause`` freezes every process of the container (the cgroup freezer), ``unpause`` thaws them;
``update`` changes its limits while it runs (``update -m 128m web``), as docker's commands do.
"""

from __future__ import annotations

import argparse


def cmd_pause(args: argparse.Namespace) -> int:
    from minicontainer.cli.containers import _each

    return _each(args, lambda api, ref: api.request("POST", f"/containers/{ref}/pause").read())


def cmd_unpause(args: argparse.Namespace) -> int:
    from minicontainer.cli.containers import _each

    return _each(args, lambda api, ref: api.request("POST", f"/containers/{ref}/unpause").read())


def cmd_update(args: argparse.Namespace) -> int:
    from minicontainer.cli.containers import _each, resource_fields

    body = {k: v for k, v in resource_fields(args).items() if v not in (0, "", None)}
    if args.pids_limit is not None:
        body["PidsLimit"] = args.pids_limit  # 0 and -1 mean "unlimited" here, not "unchanged"
    if args.restart:
        body["RestartPolicy"] = args.restart
    if not body:
        import sys

        print("You must provide one or more flags when using this command.", file=sys.stderr)
        return 125
    return _each(args, lambda api, ref: api.json("POST", f"/containers/{ref}/update", body=body))


def add_commands(commands: argparse._SubParsersAction) -> None:
    from minicontainer.cli.containers import add_resource_flags, restart_policy

    for name, handler, text in (("pause", cmd_pause, "freeze every process of containers (cgroup freezer)"),
                                ("unpause", cmd_unpause, "thaw paused containers")):
        p = commands.add_parser(name, help=text)
        p.add_argument("containers", nargs="+", metavar="CONTAINER")
        p.add_argument("--explain", action="store_true", help="narrate the kernel steps on stderr")
        p.set_defaults(handler=handler)
    p = commands.add_parser("update", help="change running containers' limits (memory, CPU, processes...)",
                            description="Change the resource limits of containers, running or not: the kernel "
                                        "enforces the new ones at once.")
    add_resource_flags(p)
    p.add_argument("--restart", type=restart_policy, metavar="POLICY",
                   help="the restart policy from now on: no, always, unless-stopped, on-failure[:N]")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    p.add_argument("--explain", action="store_true", help="narrate the kernel steps on stderr")
    p.set_defaults(handler=cmd_update)
