"""The engine as a whole: ``docker version``, ``docker info``, and ``docker system df``.

``system df``: what the engine's objects take on disk, and how much a prune would give back.

Images share layers (two images ``FROM busybox`` store busybox's layer once), so an image has two
sizes: ``Size``, all its layers, and ``SharedSize``, the part other images use too.  A container's
own size is its overlay's upper layer (``SizeRw``: what it wrote); with its image's it is
``SizeRootFs``.  ``LayersSize`` counts each layer once: what the store really holds.  A volume's
``UsageData`` is its bytes and the number of containers that use it.
"""

from __future__ import annotations

import logging
import os
import platform
from collections import Counter
from collections.abc import Callable
from typing import Any

from minicontainer import __version__
from minicontainer.engine.errors import InvalidParameter

VERSION = __version__  # the engine reports the package's version
log = logging.getLogger(__name__)

DF_TYPES = ("container", "image", "volume", "build-cache")


def disk_used(path: str) -> int:
    """The bytes of the files under ``path`` (as ``du --apparent-size`` counts them)."""
    total = 0
    for top, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(top, name)).st_size
            except OSError:
                pass
    return total


class SystemUsage:
    """``GET /system/df``, for :class:`~minicontainer.engine.service.Engine` (which inherits this)."""

    containers: dict
    store: Any
    volumes: Any  # engine/volumes.py's VolumeStore
    images: Callable[..., list[dict]]
    _summary: Callable[[Any], dict]

    def disk_usage(self, types: list[str] | None = None) -> dict:
        for t in types or []:
            if t not in DF_TYPES:
                raise InvalidParameter(f"unknown object type: {t}")
        wanted = set(types or DF_TYPES)
        users = Counter(c.record["Image"] for c in self.containers.values())
        layer_users: Counter = Counter()
        chains = {image.id: image.chain_ids for image in self.store.images()}
        for ids in chains.values():
            layer_users.update(set(ids))
        out: dict = {"LayersSize": sum(self.store.layer(c).size for c in layer_users)}
        if "image" in wanted:
            images = []
            for summary in self.images():
                shared = sum(self.store.layer(c).size for c in chains.get(summary["Id"], ()) if layer_users[c] > 1)
                images.append({**summary, "Containers": users[summary["Id"]], "SharedSize": shared})
            out["Images"] = images
        if "container" in wanted:
            out["Containers"] = []
            for c in self.containers.values():
                written = disk_used(c.path("upper"))
                image_size = sum(self.store.layer(x).size for x in chains.get(c.record["Image"], ()))
                out["Containers"].append({**self._summary(c), "SizeRw": written, "SizeRootFs": written + image_size})
        if "volume" in wanted:
            # (not those with mount options: their data is elsewhere, as dockerd counts)
            out["Volumes"] = [v.inspect(self.volumes.usage(v)) for v in self.volumes.list() if not v.needs_mount]
        if "build-cache" in wanted:
            out["BuildCache"] = []  # nor a build cache: never null, the docker CLI counts it
        return out


class SystemInfo:
    """``GET /version`` and ``GET /info``, for :class:`~minicontainer.engine.service.Engine` (which
    inherits this): what this engine is, and the host it runs on."""

    containers: dict
    store: Any
    data_root: str

    def version(self) -> dict:
        u = os.uname()
        """What ``docker version`` shows of the server; the API versions are the daemon's to add (the
        engine speaks no HTTP: daemon/routing.py has them)."""
        return {"Platform": {"Name": "minicontainer"}, "Version": VERSION,
                "GitCommit": "n/a", "GoVersion": f"python{platform.python_version()}",
                "Os": "linux", "Arch": {"x86_64": "amd64", "aarch64": "arm64"}.get(u.machine, u.machine),
                "KernelVersion": u.release, "BuildTime": "",
                "Components": [{"Name": "Engine", "Version": VERSION,
                                "Details": {"Os": "linux", "KernelVersion": u.release}},
                               {"Name": "minicontainer-runtime", "Version": VERSION, "Details": {}}]}

    def info(self) -> dict:
        from minicontainer.kernel.cgroups.layout import detect

        u = os.uname()
        running = sum(c.running for c in self.containers.values())
        paused = sum(bool(c.state.get("Paused")) for c in self.containers.values())
        try:
            mode = detect().mode
        except Exception:  # noqa: BLE001 - info must answer even without cgroups
            mode = "unknown"
        with open("/proc/meminfo") as f:
            mem_total = int(f.readline().split()[1]) * 1024
        return {"ID": "", "Debug": log.isEnabledFor(logging.DEBUG), "Containers": len(self.containers),
                "ContainersRunning": running - paused, "ContainersPaused": paused,
                "ContainersStopped": len(self.containers) - running, "Images": len(self.store.images()),
                "Driver": "overlay2", "MemoryLimit": True, "SwapLimit": True, "CgroupDriver": "cgroupfs",
                "CgroupVersion": "2" if mode == "v2" else "1", "KernelVersion": u.release,
                "OperatingSystem": _os_name(), "OSType": "linux",
                "Architecture": u.machine, "NCPU": os.cpu_count(), "MemTotal": mem_total, "Name": u.nodename,
                "ServerVersion": VERSION, "DockerRootDir": self.data_root, "Runtimes": {"minicontainer-runtime": {}},
                "DefaultRuntime": "minicontainer-runtime", "LoggingDriver": "json-file", "Plugins": {},
                "Labels": [], "ExperimentalBuild": False, "Warnings": [f"cgroup layout: {mode}"] if mode == "hybrid"
                else []}


def _os_name() -> str:
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "Linux"
