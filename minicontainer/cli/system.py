"""``minicontainer system df`` and ``system prune``: the engine's disk, as docker shows and frees it.

``system prune`` is a client's sequence, as the docker CLI's: ``POST /containers/prune``, then
``/networks/prune``, ``/volumes/prune`` (only with ``--volumes``: the unused anonymous ones),
``/images/prune`` (only the dangling ones; every unused one with ``-a``) and ``/build/prune``, the
first error stopping it.  The order matters: an image is unused only once the
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
    volumes = df.get("Volumes") or []
    in_use = [v for v in volumes if v["UsageData"]["RefCount"] > 0]
    volumes_size = sum(max(v["UsageData"]["Size"], 0) for v in volumes)
    rows = [["Images", len(images), len(used), human_size(images_size), _reclaimable(images_size - kept, images_size)],
            ["Containers", len(containers), len(running), human_size(written),
             _reclaimable(written - sum(c.get("SizeRw", 0) for c in running), written)],
            ["Local Volumes", len(volumes), len(in_use), human_size(volumes_size),
             _reclaimable(volumes_size - sum(max(v["UsageData"]["Size"], 0) for v in in_use), volumes_size)],
            ["Build Cache", len(df.get("BuildCache") or []), 0, human_size(0), human_size(0)]]
    if args.verbose:
        _df_verbose(df)
        return 0
    sys.stdout.write(table(["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"], [[str(x) for x in r] for r in rows]))
    return 0


def _df_verbose(df: dict) -> None:
    """``system df -v``: each image, container and volume with its own sizes, as docker lists them."""
    from minicontainer.cli.containers import _trunc, ago_unix
    from minicontainer.cli.images import split_repo_tag

    rows = []
    for i in df.get("Images") or []:
        for repo, tag in [split_repo_tag(t) for t in i.get("RepoTags") or []] or [("<none>", "<none>")]:
            rows.append([repo, tag, i["Id"].split(":", 1)[-1][:12], ago_unix(i.get("Created", 0)),
                         human_size(i["Size"]), human_size(i["SharedSize"]),
                         human_size(i["Size"] - i["SharedSize"]), str(i.get("Containers", 0))])
    sys.stdout.write("Images space usage:\n\n" + table(["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE",
                                                         "SHARED SIZE", "UNIQUE SIZE", "CONTAINERS"], rows))
    rows = [[c["Id"][:12], c["Image"], f'"{_trunc(c["Command"], 20)}"',
             str(sum(m.get("Type") == "volume" for m in c.get("Mounts") or [])), human_size(c.get("SizeRw", 0)),
             ago_unix(c["Created"]), c["Status"], ",".join(n.lstrip("/") for n in c["Names"])]
            for c in df.get("Containers") or []]
    sys.stdout.write("\nContainers space usage:\n\n" + table(["CONTAINER ID", "IMAGE", "COMMAND", "LOCAL VOLUMES",
                                                                "SIZE", "CREATED", "STATUS", "NAMES"], rows))
    rows = [[v["Name"], str(v["UsageData"]["RefCount"]), human_size(v["UsageData"]["Size"])]
            for v in df.get("Volumes") or []]
    sys.stdout.write("\nLocal Volumes space usage:\n\n" + table(["VOLUME NAME", "LINKS", "SIZE"], rows))
    sys.stdout.write("\nBuild cache usage: 0B\n\n"
                     + table(["CACHE ID", "CACHE TYPE", "SIZE", "CREATED", "LAST USED", "USAGE", "SHARED"], []))


def _reclaimable(size: int, total: int) -> str:
    size = max(size, 0)
    return f"{human_size(size)} ({size * 100 // total}%)" if total else human_size(size)


def cmd_prune(args: argparse.Namespace) -> int:
    from minicontainer.cli.containers import client, confirmed, print_deleted
    from minicontainer.cli.images import print_deleted_images
    from minicontainer.client.api import filters_json

    images = "all images without at least one container associated to them" if args.all else "all dangling images"
    volumes = "  - all anonymous volumes not used by at least one container\n" if args.volumes else ""
    if not args.force and not confirmed(
            "WARNING! This will remove:\n  - all stopped containers\n  - all networks not used by at least one "
            f"container\n{volumes}  - {images}\n  - unused build cache\n"):
        return 0
    api = client()
    filters = filters_json(args.filter)
    freed = 0
    result = api.json("POST", "/containers/prune", {"filters": filters})
    print_deleted("Containers", result.get("ContainersDeleted"))
    freed += result.get("SpaceReclaimed") or 0
    result = api.json("POST", "/networks/prune", {"filters": filters})
    print_deleted("Networks", result.get("NetworksDeleted"))
    if args.volumes:
        result = api.json("POST", "/volumes/prune", {"filters": filters})
        print_deleted("Volumes", result.get("VolumesDeleted"))
        freed += result.get("SpaceReclaimed") or 0
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
    p = sub.add_parser("df", help="disk space used by images, containers and volumes")
    p.add_argument("-v", "--verbose", action="store_true", help="each image, container and volume")
    p.set_defaults(handler=cmd_df)
    p = sub.add_parser("prune", help="remove stopped containers, unused networks, dangling images, build cache")
    p.add_argument("-a", "--all", action="store_true", help="every image no container uses, not only dangling ones")
    p.add_argument("--volumes", action="store_true", help="the anonymous volumes no container uses too")
    p.add_argument("-f", "--force", action="store_true", help="do not ask for confirmation")
    p.add_argument("--filter", action="append", default=[], help="until=24h, label=KEY[=VALUE]")
    p.set_defaults(handler=cmd_prune)
