"""``volume create|ls|inspect|rm|prune``: the engine's named volumes, as ``docker volume`` shows them.

Each is a request to the daemon's ``/volumes`` routes (see :mod:`minicontainer.engine.volumes` for
what a volume is); the output, the questions and the exit codes are docker's.
"""

from __future__ import annotations

import argparse
import json
import sys

from minicontainer.units import human_size

LS_TITLES = {"Driver": "DRIVER", "Name": "VOLUME NAME", "Scope": "SCOPE", "Mountpoint": "MOUNTPOINT",
             "Labels": "LABELS", "Links": "LINKS", "Size": "SIZE"}
PRUNE_WARNING = "WARNING! This will remove {} local volumes not used by at least one container."


def daemon_client():
    from minicontainer.cli.containers import client

    return client()


def _pairs(given: list[str], what: str) -> dict[str, str]:
    """``-o type=tmpfs`` / ``--label team=a`` -> a dict; a label may be a bare key (its value empty)."""
    out = {}
    for item in given:
        key, eq, value = item.partition("=")
        if not key or (what == "opt" and not eq):
            raise SystemExit(_usage(f'invalid argument "{item}" for "--{what}" flag: expected KEY=VALUE', "create"))
        out[key] = value
    return out


def _usage(message: str, command: str) -> int:
    print(f"{message}\nSee 'minicontainer volume {command} --help'.", file=sys.stderr)
    return 125


def cmd_create(args: argparse.Namespace) -> int:
    body = {"Name": args.name or "", "Driver": args.driver, "DriverOpts": _pairs(args.opt, "opt"),
            "Labels": _pairs(args.label, "label")}
    print(daemon_client().json("POST", "/volumes/create", None, body)["Name"])
    return 0


def _row(volume: dict) -> dict:
    """The fields ``volume ls --format`` knows (docker's names); Links and Size are docker's ``N/A``
    outside ``system df -v``."""
    labels = ",".join(f"{k}={v}" for k, v in sorted((volume.get("Labels") or {}).items()))
    usage = volume.get("UsageData") or {}
    return {"Driver": volume["Driver"], "Name": volume["Name"], "Scope": volume.get("Scope", "local"),
            "Mountpoint": volume.get("Mountpoint", ""), "Labels": labels,
            "Links": str(usage["RefCount"]) if usage else "N/A",
            "Size": human_size(usage["Size"]) if usage and usage["Size"] >= 0 else "N/A",
            "Availability": "N/A", "Group": "N/A", "Status": "N/A"}  # (cluster volumes': swarm's)


def cmd_ls(args: argparse.Namespace) -> int:
    from minicontainer.cli.format import formatted
    from minicontainer.client.api import filters_json

    reply = daemon_client().json("GET", "/volumes", {"filters": filters_json(args.filter)})
    for warning in reply.get("Warnings") or []:
        print(warning, file=sys.stderr)
    rows = [_row(v) for v in sorted(reply.get("Volumes") or [], key=lambda v: v["Name"])]
    if args.format == "json" and not args.quiet:  # docker's shorthand: each row as one JSON object
        for row in rows:
            print(json.dumps(dict(sorted(row.items())), separators=(",", ":")))
        return 0
    fmt = "{{.Name}}" if args.quiet else (args.format or "table {{.Driver}}\t{{.Name}}")
    sys.stdout.write(formatted(fmt, rows, LS_TITLES))
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from minicontainer.cli.images import print_inspected
    from minicontainer.cli.network import per_object

    found, code = per_object(args.volumes, lambda api, name: api.json("GET", f"/volumes/{name}"))
    print_inspected(found, args.format)
    return code


def cmd_rm(args: argparse.Namespace) -> int:
    from minicontainer.cli.network import per_object

    def remove(api, name: str) -> None:
        api.request("DELETE", f"/volumes/{name}", {"force": int(args.force) or None}).read()
        print(name)
    return per_object(args.volumes, remove)[1]


def cmd_prune(args: argparse.Namespace) -> int:
    from minicontainer.cli.containers import confirmed, print_deleted
    from minicontainer.client.api import filters_json

    filters = list(args.filter)
    if args.all:
        if any(f.split("=", 1)[0] == "all" for f in filters):
            print("Error: conflicting options: cannot specify both --all and --filter all=1", file=sys.stderr)
            return 125
        filters.append("all=true")
    if not args.force and not confirmed(PRUNE_WARNING.format("all" if args.all else "anonymous")):
        return 0
    result = daemon_client().json("POST", "/volumes/prune", {"filters": filters_json(filters)})
    print_deleted("Volumes", result.get("VolumesDeleted"))
    print(f"Total reclaimed space: {human_size(result.get('SpaceReclaimed') or 0)}")
    return 0


def add_commands(commands: argparse._SubParsersAction) -> None:
    volume = commands.add_parser("volume", help="manage volumes (create, ls, inspect, rm, prune)")
    sub = volume.add_subparsers(dest="volume_command", metavar="COMMAND", required=True)
    p = sub.add_parser("create", help="create a volume (a random name if none is given)")
    p.add_argument("name", nargs="?", default="")
    p.add_argument("-d", "--driver", default="local", help="local (the only driver)")
    p.add_argument("-o", "--opt", action="append", default=[],
                   help="the local driver's options: type=, device=, o= (as mount(8)'s -t, device and -o)")
    p.add_argument("--label", action="append", default=[], help="KEY=VALUE")
    p.set_defaults(handler=cmd_create)
    for name in ("ls", "list"):
        p = sub.add_parser(name, help="list volumes")
        p.add_argument("-q", "--quiet", action="store_true", help="only the names")
        p.add_argument("-f", "--filter", action="append", default=[],
                       help="name=REGEXP, label=KEY[=VALUE], driver=local, dangling=true|false")
        p.add_argument("--format", help="a Go template: {{.Name}} {{.Driver}} {{.Mountpoint}} {{.Labels}}...")
        p.set_defaults(handler=cmd_ls)
    p = sub.add_parser("inspect", help="a volume's details, as JSON")
    p.add_argument("volumes", nargs="+", metavar="volume")
    p.add_argument("-f", "--format")
    p.set_defaults(handler=cmd_inspect)
    for name in ("rm", "remove"):
        p = sub.add_parser(name, help="remove volumes (not one a container uses)")
        p.add_argument("-f", "--force", action="store_true", help="no error for a volume that is not there")
        p.add_argument("volumes", nargs="+", metavar="volume")
        p.set_defaults(handler=cmd_rm)
    p = sub.add_parser("prune", help="remove the anonymous volumes no container uses (all of them with -a)")
    p.add_argument("-a", "--all", action="store_true", help="named volumes too, not only anonymous ones")
    p.add_argument("-f", "--force", action="store_true", help="do not ask for confirmation")
    p.add_argument("--filter", action="append", default=[], help="label=KEY[=VALUE], label!=KEY[=VALUE]")
    p.set_defaults(handler=cmd_prune)
