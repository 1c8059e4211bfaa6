"""``minicontainer system df`` and ``system prune``: the engine's disk, as docker shows and frees it.

``system prune`` is a client's sequence, as the docker CLI's: ``POST /containers/prune``, then
``/networks/prune``, ``/images/prune`` (only the dangling ones; every unused one with ``-a``) and
``/build/prune``, the first error stopping it.  The order matters: an image is unused only once the
stopped containers made of it are gone.
"""

from __future__ import annotations

import argparse
import sys

from minicontainer.cli.format import table
from minicontainer.units import human_size


def cmd_df(args: argparse.Namespace) -> int:
    from minicontainer.cli.containers import client

    df = client().json("GET", "/system/df")
    images, containers = df.get("Images") or [], df.get("Containers") or []
    used = [i for i in images if i.get("Containers", 0) > 0]
    images_size = df.get("LayersSize", 0)
    # docker's estimate of what removing the unused images frees: all but what only used images need
    kept = sum(i["Size"] - i["SharedSize"] for i in used if i.get("SharedSize", -1) >= 0)
    running = [c for c in containers if c.get("State") in ("running", "paused", "restarting")]
    written = sum(c.get("SizeRw", 0) for c in containers)
    rows = [["Images", len(images), len(used), human_size(images_size), _reclaimable(images_size - kept, images_size)],
            ["Containers", len(containers), len(running), human_size(written),
             _reclaimable(written - sum(c.get("SizeRw", 0) for c in running), written)],
            ["Local Volumes", len(df.get("Volumes") or []), 0, human_size(0), human_size(0)],
            ["Build Cache", len(df.get("BuildCache") or []), 0, human_size(0), human_size(0)]]
    sys.stdout.write(table(["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"], [[str(x) for x in r] for r in rows]))
    return 0


def _reclaimable(size: int, total: int) -> str:
    size = max(size, 0)
    return f"{human_size(size)} ({size * 100 // total}%)" if total else human_size(size)


def cmd_prune(args: argparse.Namespace) -> int:
    from minicontainer.cli.containers import client, confirmed, print_deleted
    from minicontainer.cli.images import print_deleted_images
    from minicontainer.client.api import filters_json

    images = "all images without at least one container associated to them" if args.all else "all dangling images"
    if not args.force and not confirmed(
            "WARNING! This will remove:\n  - all stopped containers\n  - all networks not used by at least one "
            f"container\n  - {images}\n  - unused build cache\n"):
        return 0
    api = client()
    filters = filters_json(args.filter)
    freed = 0
    result = api.json("POST", "/containers/prune", {"filters": filters})
    print_deleted("Containers", result.get("ContainersDeleted"))
    freed += result.get("SpaceReclaimed") or 0
    result = api.json("POST", "/networks/prune", {"filters": filters})
    print_deleted("Networks", result.get("NetworksDeleted"))
    result = api.json("POST", "/images/prune",
                      {"filters": filters_json([*args.filter, f"dangling={str(not args.all).lower()}"])})
    print_deleted_images(result)
    freed += result.get("SpaceReclaimed") or 0
    result = api.json("POST", "/build/prune", {"filters": filters, "all": int(args.all) or None})
    print_deleted("build cache objects", result.get("CachesDeleted"))
    freed += result.get("SpaceReclaimed") or 0
    print(f"Total reclaimed space: {human_size(freed)}")
    return 0


def add_commands(commands: argparse._SubParsersAction) -> None:
    group = commands.add_parser("system", help="the engine's disk use (df) and clean-up (prune)")
    sub = group.add_subparsers(dest="system_command", metavar="COMMAND", required=True)
    p = sub.add_parser("df", help="disk space used by images and containers")
    p.set_defaults(handler=cmd_df)
    p = sub.add_parser("prune", help="remove stopped containers, unused networks, dangling images, build cache")
    p.add_argument("-a", "--all", action="store_true", help="every image no container uses, not only dangling ones")
    p.add_argument("-f", "--force", action="store_true", help="do not ask for confirmation")
    p.add_argument("--filter", action="append", default=[], help="until=24h, label=KEY[=VALUE]")
    p.set_defaults(handler=cmd_prune)
