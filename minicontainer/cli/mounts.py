"""``run``/``create``'s mount flags: -v/--volume, --mount, --tmpfs, --read-only, --volumes-from.

As the docker CLI does, this side only *reads* the flags into the create body: ``-v /host:/ctr`` and
``-v NAME:/ctr`` go to ``HostConfig.Binds``, ``-v /ctr`` alone (an anonymous volume) to
``Config.Volumes``, ``--mount``'s comma-separated fields become a ``HostConfig.Mounts`` object,
``--tmpfs /run:size=64m`` a ``HostConfig.Tmpfs`` entry.  The daemon checks them all
(engine/mounts.py): a bind of a path that does not exist is refused there.
"""

from __future__ import annotations

import argparse
import os

# --mount's keys (docker's names, aliases included) -> where each goes in the Mount object.
_KEYS = {"type": "Type", "source": "Source", "src": "Source", "target": "Target", "dst": "Target",
         "destination": "Target", "readonly": "ReadOnly", "ro": "ReadOnly"}
_BOOLEANS = {"": True, "true": True, "1": True, "false": False, "0": False}


def add_run_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("-v", "--volume", action="append", default=[], metavar="SRC:DST[:ro]",
                   help="bind a host directory (/host/dir:/path), mount a named volume (NAME:/path), or an "
                        "anonymous volume (/path); :ro for read-only")
    p.add_argument("--mount", action="append", default=[], metavar="FIELDS",
                   help="type=bind|volume|tmpfs,source=...,target=...[,readonly][,bind-propagation=...]"
                        "[,volume-nocopy][,volume-label=K=V][,tmpfs-size=64m][,tmpfs-mode=1777]")
    p.add_argument("--tmpfs", action="append", default=[], metavar="PATH[:OPTIONS]",
                   help="a tmpfs (memory) at PATH, e.g. /run:size=64m")
    p.add_argument("--read-only", action="store_true", help="make the root filesystem read-only")
    p.add_argument("--volumes-from", action="append", default=[], metavar="CONTAINER[:ro]",
                   help="mount what another container mounts")
    p.add_argument("--volume-driver", default="", metavar="DRIVER", help="the driver of the volumes it creates (local)")


def mounts_body(args: argparse.Namespace, body: dict) -> None:
    """Put the mount flags into a ContainerCreate body, as docker's CLI does."""
    host = body["HostConfig"]
    binds, volumes = [], {}
    for spec in args.volume:
        if ":" not in spec:
            volumes[spec] = {}  # a path alone: an anonymous volume
            continue
        source, rest = spec.split(":", 1)
        if source == "." or source.startswith(("./", "../")) or source == "..":
            source = os.path.abspath(source)  # relative to here, as the docker CLI reads it
        binds.append(f"{source}:{rest}")
    tmpfs = {}
    for spec in args.tmpfs:
        path, _, options = spec.partition(":")
        tmpfs[path] = options
    host.update({"Binds": binds or None, "Mounts": [parse_mount(spec) for spec in args.mount] or None,
                 "Tmpfs": tmpfs or None, "ReadonlyRootfs": args.read_only, "VolumesFrom": args.volumes_from or None,
                 "VolumeDriver": args.volume_driver})
    if volumes:
        body["Volumes"] = volumes


def parse_mount(spec: str) -> dict:
    """``--mount type=bind,src=/x,dst=/y,readonly`` -> a Mount object of the Engine API (docker's keys)."""
    import csv

    def bad(why: str) -> ValueError:
        return ValueError(f'invalid argument "{spec}" for "--mount" flag: {why}')

    mount: dict = {"Type": "volume"}  # docker's default type
    bind: dict = {}
    volume: dict = {}
    tmpfs: dict = {}
    for item in next(csv.reader([spec])):
        key, eq, value = item.partition("=")
        key = key.strip().lower()
        if key in ("readonly", "ro", "volume-nocopy", "bind-nonrecursive") and not eq:
            value = ""
        elif not eq:
            raise bad(f"invalid field '{item}' must be a key=value pair")
        if key in ("readonly", "ro", "volume-nocopy", "bind-nonrecursive"):
            if value.lower() not in _BOOLEANS:
                raise bad(f"invalid value for {key}: {value}")
            flag = _BOOLEANS[value.lower()]
            {"readonly": mount, "ro": mount, "volume-nocopy": volume, "bind-nonrecursive": bind}[key][
                {"readonly": "ReadOnly", "ro": "ReadOnly", "volume-nocopy": "NoCopy",
                 "bind-nonrecursive": "NonRecursive"}[key]] = flag
        elif key in _KEYS:
            mount[_KEYS[key]] = value
        elif key == "bind-propagation":
            bind["Propagation"] = value
        elif key == "volume-label":
            name, _, label = value.partition("=")
            volume.setdefault("Labels", {})[name] = label
        elif key == "volume-driver":
            volume.setdefault("DriverConfig", {})["Name"] = value
        elif key == "volume-opt":
            name, _, opt = value.partition("=")
            volume.setdefault("DriverConfig", {}).setdefault("Options", {})[name] = opt
        elif key == "volume-subpath":
            volume["Subpath"] = value
        elif key == "tmpfs-size":
            from minicontainer.cli.run import parse_bytes

            try:
                tmpfs["SizeBytes"] = parse_bytes(value)
            except argparse.ArgumentTypeError as e:
                raise bad(str(e)) from None
        elif key == "tmpfs-mode":
            try:
                tmpfs["Mode"] = int(value, 8)
            except ValueError:
                raise bad(f"invalid tmpfs-mode {value!r}: an octal mode, such as 1777") from None
        else:
            raise bad(f"unexpected key '{key}' in '{item}'")
    for options, name, kind in ((bind, "BindOptions", "bind"), (volume, "VolumeOptions", "volume"),
                                (tmpfs, "TmpfsOptions", "tmpfs")):
        if options:
            if mount["Type"] != kind:
                raise bad(f"cannot mix '{kind}-*' options with mount type '{mount['Type']}'")
            mount[name] = options
    if not mount.get("Target"):
        raise bad("target is required")
    return mount
