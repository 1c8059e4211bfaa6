"""A container's mounts: bind mounts, volumes, tmpfs, a read-only root, ``--volumes-from``.

A container's root filesystem is its image plus a writable layer of its own, and it goes with the
container.  What must outlive a container, or be shared with the host or with other containers, is
*mounted* into it instead, at a path of its choosing:

* a **bind mount** (``-v /host/dir:/data``, ``--mount type=bind``) shows a directory (or file) of the
  host at that path: the same inode, no copy.  What the container writes there, the host sees;
* a **volume** (``-v NAME:/data``, ``--mount type=volume``) is a directory the engine keeps for you
  (``engine/volumes.py``), by name, mounted the same way.  An *anonymous* volume (the image's
  ``VOLUME /data``, or ``-v /data``) has a random name and goes when its container is removed with
  ``rm -v`` (or ``run --rm``).  The first time an empty volume is mounted, the image's content at
  that path is copied into it (``nocopy`` says not to), so that ``-v pgdata:/var/lib/postgresql``
  starts from what the image had there;
* a **tmpfs** (``--tmpfs /run:size=64m``, ``--mount type=tmpfs``) is memory, gone at the stop;
* ``--read-only`` makes the root filesystem read-only: only the mounts above stay writable;
* ``--volumes-from OTHER[:ro]`` mounts what another container mounts (binds and volumes).

This module reads the four places the Engine API puts them (``HostConfig.Binds``, ``HostConfig.Mounts``,
``HostConfig.Tmpfs``, ``HostConfig.VolumesFrom``, plus ``Config.Volumes`` and the image's ``Volumes``)
into **one checked list** of :class:`MountPoint`, with Docker's rules and messages, before anything is
created; then (:class:`ContainerMounts`) creates the volumes, keeps the list with the container
(``mounts.json``) and, at each start, writes it into the bundle's OCI ``mounts``.  The runtime does
the mounting (``kernel/mounts.mount_one``): every target opened inside the root with
``openat2(RESOLVE_IN_ROOT)``, read-only binds read-only with every mount beneath them too.

**A bind of a host path that does not exist is refused**, for ``-v`` too, where Docker would create an
empty directory: a typo would otherwise silently give an empty directory.  Create it first.

Mounting a host directory is root's power: whoever may use the daemon's socket may bind ``/`` into a
container and do as root there.  That is why the group that may use it is worth root (README).
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
import re
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from minicontainer.engine.errors import InvalidParameter, NotFound
from minicontainer.engine.volumes import check_name, check_options
from minicontainer.kernel.mounts import FLAG_OPTIONS

PROPAGATIONS = ("private", "rprivate", "shared", "rshared", "slave", "rslave")
DEFAULT_PROPAGATION = "rprivate"  # a bind's, as Docker's: nothing mounted on either side crosses over
# What a tmpfs takes besides mount(8)'s flag words (the kernel's tmpfs(5) options).
TMPFS_DATA = ("size", "mode", "uid", "gid", "nr_inodes", "nr_blocks", "huge", "mpol")
# Docker's defaults for every tmpfs: no set-uid programs, no device files, nothing executed from it.
TMPFS_DEFAULTS = ["noexec", "nosuid", "nodev"]
MOUNTS_FILE = "mounts.json"  # the checked list, kept with the container for each start


@dataclass
class MountPoint:
    """One mount of a container, checked: what ``inspect`` lists under ``Mounts``, and what the
    runtime needs to mount it."""

    type: str  # "bind", "volume" or "tmpfs"
    destination: str  # in the container, absolute, clean
    source: str = ""  # bind: the host path; volume: the volume's directory on the host
    name: str = ""  # volume: its name ("" until an anonymous one is created)
    driver: str = ""  # volume: "local"
    rw: bool = True
    mode: str = ""  # as given in Binds ("ro", "rw,rshared"...): inspect shows it
    propagation: str = ""  # bind: rprivate unless asked
    recursive: bool = True  # bind: the mounts beneath the source come along (rbind)
    copy: bool = True  # volume: fill it from the image at its first use
    anonymous: bool = False  # volume: made for this container, removed with it by `rm -v`
    subpath: str = ""  # volume: a directory inside it, mounted instead of the whole
    tmpfs: str = ""  # tmpfs: options for the kernel ("size=64m,mode=1777")
    labels: dict[str, str] = field(default_factory=dict)  # volume: for its creation
    driver_opts: dict[str, str] = field(default_factory=dict)
    listed: bool = True  # in inspect's Mounts (HostConfig.Tmpfs's are not, in Docker)

    def inspect(self) -> dict:
        """As ``docker inspect`` shows it (a MountPoint of the Engine API)."""
        named = {"Name": self.name} if self.type == "volume" else {}
        driver = {"Driver": self.driver} if self.type == "volume" else {}
        return {"Type": self.type, **named, "Source": self.source, "Destination": self.destination, **driver,
                "Mode": self.mode, "RW": self.rw, "Propagation": self.propagation}

    def oci(self) -> dict:
        """The runtime-spec mount entry: binds and volumes are bind mounts of a host directory."""
        if self.type == "tmpfs":
            options = TMPFS_DEFAULTS + [o for o in self.tmpfs.split(",") if o] + ([] if self.rw else ["ro"])
            return {"destination": self.destination, "type": "tmpfs", "source": "tmpfs", "options": options}
        source = os.path.join(self.source, self.subpath) if self.subpath else self.source
        options = ["rbind" if self.recursive else "bind", "rw" if self.rw else "ro",
                   self.propagation or DEFAULT_PROPAGATION]
        return {"destination": self.destination, "type": "bind", "source": source, "options": options}


def invalid_spec(raw: str, why: str = "") -> InvalidParameter:
    return InvalidParameter(f"invalid volume specification: '{raw}'" + (f": {why}" if why else ""))


def invalid_config(kind: str, why: str) -> InvalidParameter:
    return InvalidParameter(f'invalid mount config for type "{kind}": {why}')


def check_target(target: str) -> str:
    """A mount's place in the container: absolute, and not ``/`` itself.  Returns it cleaned."""
    if not target:
        raise ValueError("field Target must not be empty")
    if not target.startswith("/"):
        raise ValueError(f"invalid mount path: '{target}' mount path must be absolute")
    clean = posixpath.normpath(target)
    if clean in ("/", "//"):
        raise ValueError("invalid specification: destination can't be '/'")
    return clean


def missing_source(path: str) -> str:
    return (f"bind source path does not exist: {path} (Docker would create an empty directory there; "
            f"minicontainer refuses, so that a typo does not quietly give you an empty one: create it first, "
            f"mkdir -p {path})")


# --- HostConfig.Binds: "SRC:DST[:MODE]" -----------------------------------------------------------


def _mode_words(mode: str) -> dict[str, str]:
    """``ro,rshared,nocopy`` -> one word per kind; refuses what is not a mode, or two of a kind."""
    kinds: dict[str, str] = {}
    for word in mode.split(",") if mode else []:
        if word in ("rw", "ro"):
            kind = "rw"
        elif word in PROPAGATIONS:
            kind = "propagation"
        elif word == "nocopy":
            kind = "copy"
        elif word in ("z", "Z"):
            raise ValueError(f"invalid mode: {mode} ('{word}' asks for an SELinux relabel of the source, which "
                             "this engine does not do: minicontainer refuses it rather than ignore it; leave it out)")
        elif word in ("consistent", "cached", "delegated", "ro-non-recursive", "ro-force-recursive", "rro"):
            raise ValueError(f"invalid mode: {mode} ('{word}' is not supported by this engine: minicontainer "
                             "refuses it rather than ignore it; read-only binds are read-only recursively, "
                             "submounts included)")
        else:
            raise ValueError(f"invalid mode: {mode}")
        if kind in kinds:
            raise ValueError(f"invalid mode: {mode}")
        kinds[kind] = word
    return kinds


def parse_bind(raw: str) -> MountPoint:
    """One ``HostConfig.Binds`` entry, as Docker reads it: ``/host:/ctr[:mode]`` is a bind mount (the
    source is absolute), ``name:/ctr[:mode]`` a named volume, ``/ctr`` alone an anonymous volume.
    Raises InvalidParameter with Docker's message."""
    parts = raw.split(":")
    if not parts[0] or len(parts) > 3:
        raise invalid_spec(raw)
    if len(parts) == 2 and _is_mode(parts[1]):
        raise invalid_spec(raw)  # "/foo:rw": a volume cannot be only a destination and a mode
    source, target, mode = ("", parts[0], "") if len(parts) == 1 else (parts[0], parts[1], parts[2] if
                                                                        len(parts) == 3 else "")
    try:
        words = _mode_words(mode)
    except ValueError as e:
        raise InvalidParameter(str(e)) from None
    kind = "bind" if source.startswith("/") else "volume"
    try:
        if kind == "bind" and "copy" in words:
            raise ValueError(str(invalid_config("bind", "field VolumeOptions must not be specified")))
        if kind == "volume" and "propagation" in words:
            raise ValueError(str(invalid_config("volume", "field BindOptions must not be specified")))
        destination = check_target(target)
        if kind == "bind" and not os.path.exists(source):
            raise ValueError(missing_source(source))
    except ValueError as e:
        raise invalid_spec(raw, str(e)) from None
    if kind == "volume" and source:
        check_name(source)  # the volume store's rule and words: `create my/vol: "my/vol" includes...`
    rw = words.get("rw") != "ro"
    if kind == "bind":
        return MountPoint("bind", destination, source=posixpath.normpath(source), rw=rw, mode=mode,
                          propagation=words.get("propagation", DEFAULT_PROPAGATION))
    return MountPoint("volume", destination, name=source, rw=rw, mode=mode,
                      copy="copy" not in words, anonymous=not source)


def _is_mode(text: str) -> bool:
    try:
        _mode_words(text)
    except ValueError:
        return False
    return True


# --- HostConfig.Mounts: {"Type": ..., "Source": ..., "Target": ...} ------------------------------------

# Each object's fields, and what this engine does with them: None = honoured; a text = refused unless
# zero, with that reason.
MOUNT_FIELDS: dict[str, str | None] = {
    "Type": None, "Source": None, "Target": None, "ReadOnly": None, "Consistency": "macOS's consistency modes",
    "BindOptions": None, "VolumeOptions": None, "TmpfsOptions": None, "ImageOptions": "image mounts",
    "ClusterOptions": "swarm's cluster volumes",
}
BIND_OPTIONS: dict[str, str | None] = {
    "Propagation": None, "NonRecursive": None, "ReadOnlyForceRecursive": None,
    "CreateMountpoint": "CreateMountpoint (bind-create-src): minicontainer does not create a missing source; "
                        "create it first",
    "ReadOnlyNonRecursive": "ReadOnlyNonRecursive: read-only binds are read-only recursively here",
}
VOLUME_OPTIONS: dict[str, str | None] = {"NoCopy": None, "Labels": None, "DriverConfig": None, "Subpath": None}
TMPFS_OPTIONS: dict[str, str | None] = {"SizeBytes": None, "Mode": None, "Options": None}


def _fields(obj: Any, table: dict[str, str | None], where: str, kind: str) -> dict:
    """An object's fields, their names made canonical (Go ignores case), the unsupported refused."""
    if obj is None:
        return {}
    if not isinstance(obj, dict):
        raise invalid_config(kind, f"{where} must be a JSON object")
    names = {name.lower(): name for name in table}
    out = {}
    for key, value in obj.items():
        name = names.get(key.lower())
        if name is None:
            if value in (None, False, 0, "", [], {}):
                continue  # a newer client's field, sent empty
            raise invalid_config(kind, f"unknown field {where}{key}: Docker's Mount has no such field")
        if table[name] is not None and value not in (None, False, 0, "", [], {}, "default"):
            raise invalid_config(kind, f"{where}{name}={json.dumps(value)} ({table[name]}) is not supported by this "
                                       "engine: minicontainer refuses it rather than ignore it")
        out[name] = value
    return out


def parse_mount(spec: Any) -> MountPoint:
    """One ``HostConfig.Mounts`` object (``--mount``, docker-py's ``Mount``), checked as Docker does."""
    if not isinstance(spec, dict):
        raise InvalidParameter("HostConfig.Mounts must be a list of objects")
    kind = str(next((v for k, v in spec.items() if k.lower() == "type"), "") or "")
    if kind not in ("bind", "volume", "tmpfs"):
        why = "mount type unknown" if kind not in ("image", "npipe", "cluster") else \
            f"{kind} mounts are not supported by this engine: minicontainer refuses them rather than ignore them"
        raise invalid_config(kind, why)
    m = _fields(spec, MOUNT_FIELDS, "", kind)
    bind = _fields(m.get("BindOptions"), BIND_OPTIONS, "BindOptions.", kind)
    vol = _fields(m.get("VolumeOptions"), VOLUME_OPTIONS, "VolumeOptions.", kind)
    tmp = _fields(m.get("TmpfsOptions"), TMPFS_OPTIONS, "TmpfsOptions.", kind)
    source, read_only = m.get("Source") or "", bool(m.get("ReadOnly"))
    try:
        destination = check_target(m.get("Target") or "")
        for present, name, allowed in ((m.get("BindOptions") is not None, "BindOptions", ("bind",)),
                                       (m.get("VolumeOptions") is not None, "VolumeOptions", ("volume",)),
                                       (m.get("TmpfsOptions") is not None, "TmpfsOptions", ("tmpfs",))):
            if present and kind not in allowed:
                raise ValueError(f"field {name} must not be specified")
        if kind == "bind":
            if not source:
                raise ValueError("field Source must not be empty")
            if not source.startswith("/"):
                raise ValueError(f"invalid mount path: '{source}' mount path must be absolute")
            propagation = bind.get("Propagation") or DEFAULT_PROPAGATION
            if propagation not in PROPAGATIONS:
                raise ValueError(f"invalid propagation mode: {propagation}")
            if not os.path.exists(source):
                raise ValueError(f"bind source path does not exist: {source}")
            return MountPoint("bind", destination, source=posixpath.normpath(source), rw=not read_only,
                              propagation=propagation, recursive=not bind.get("NonRecursive"))
        if kind == "volume":
            if source:
                check_name(source)
            return _volume_mount(destination, source, read_only, vol)
        if source:
            raise ValueError("field Source must not be specified")
        return MountPoint("tmpfs", destination, rw=not read_only, tmpfs=tmpfs_options(tmp))
    except ValueError as e:
        raise invalid_config(kind, str(e)) from None


def _volume_mount(destination: str, source: str, read_only: bool, vol: dict) -> MountPoint:
    subpath = vol.get("Subpath") or ""
    if not source and subpath:
        raise ValueError("must not set Subpath when using anonymous volumes")
    elif not source and read_only:
        raise ValueError("must not set ReadOnly mode when using anonymous volumes")
    if subpath and (subpath.startswith("/") or ".." in subpath.split("/")):
        raise ValueError("subpath must be a relative path within the volume")
    driver = _fields(vol.get("DriverConfig"), {"Name": None, "Options": None}, "VolumeOptions.DriverConfig.",
                     "volume")
    check_options(source or "(anonymous)", dict(driver.get("Options") or {}))
    # the driver: the volume store's to accept (local) or refuse, when it creates the volume
    return MountPoint("volume", destination, name=source, driver=driver.get("Name") or "", rw=not read_only,
                      copy=not vol.get("NoCopy"), anonymous=not source, subpath=posixpath.normpath(subpath)
                      if subpath else "", labels=dict(vol.get("Labels") or {}),
                      driver_opts=dict(driver.get("Options") or {}))


def tmpfs_options(opts: dict) -> str:
    """TmpfsOptions -> the kernel's words, as Docker writes them (``size=64m,mode=1777``)."""
    words = []
    mode = opts.get("Mode") or 0
    if mode:
        if not isinstance(mode, int) or not 0 <= mode <= 0o7777:
            raise ValueError(f"invalid tmpfs mode: {mode!r}")
        words.append(f"mode={mode:o}")
    size = opts.get("SizeBytes") or 0
    if size:
        if not isinstance(size, int) or size < 0:
            raise ValueError(f"invalid tmpfs size: {size!r}")
        for suffix, unit in (("g", 1 << 30), ("m", 1 << 20), ("k", 1 << 10), ("", 1)):
            if size % unit == 0:
                words.append(f"size={size // unit}{suffix}")
                break
    for option in opts.get("Options") or []:
        if not isinstance(option, list) or option[:1] not in (["exec"], ["noexec"]) or len(option) != 1:
            raise ValueError(f"invalid option: {option!r} (TmpfsOptions.Options takes [\"exec\"] or [\"noexec\"])")
        words.append(option[0])
    return ",".join(words)


# --- HostConfig.Tmpfs: {"/run": "rw,noexec,size=64m"} ----------------------------------------------------


def parse_tmpfs(destination: str, options: Any) -> MountPoint:
    if not isinstance(options, str):
        raise InvalidParameter(f"HostConfig.Tmpfs[{destination!r}] must be a string of mount options")
    try:
        target = check_target(destination)
    except ValueError as e:
        raise InvalidParameter(f"invalid tmpfs {destination!r}: {e}") from None
    words, rw = [], True
    for word in (w.strip() for w in options.split(",")):
        if not word:
            continue
        key, _, value = word.partition("=")
        if word in ("ro", "rw"):
            rw = word == "rw"
        elif word in FLAG_OPTIONS and word not in ("bind", "rbind"):
            words.append(word)
        elif key in TMPFS_DATA and value:
            if key == "size" and not re.fullmatch(r"\d+[kKmMgGtTpPeE%]?", value):
                raise InvalidParameter(f"invalid tmpfs option {word!r} for {target}: a size is bytes, with k, m, "
                                       "g or % (of the host's memory)")
            words.append(word)
        else:
            raise InvalidParameter(f"invalid tmpfs option {word!r} for {target} (a tmpfs takes mount flags such as "
                                   f"ro, noexec, nosuid, and {', '.join(TMPFS_DATA)})")
    return MountPoint("tmpfs", target, rw=rw, tmpfs=",".join(words), listed=False)


# --- VolumesFrom: "other[:ro|:rw]" ---------------------------------------------------------------------


def parse_volumes_from(spec: str) -> tuple[str, bool | None]:
    """``NAME[:ro|:rw]`` -> (the container, read-only override: None = keep each mount's own)."""
    if not spec:
        raise InvalidParameter("volumes-from specification cannot be an empty string")
    ref, _, mode = spec.partition(":")
    if mode and mode not in ("ro", "rw"):
        raise InvalidParameter(f"invalid mode: {mode}")
    return ref, (mode == "ro") if mode else None


# --- the whole list -----------------------------------------------------------------------------------


def plan(config: dict, host: dict, image_volumes: dict | None,
         mounts_of: Callable[[str], list[MountPoint]]) -> list[MountPoint]:
    """Every mount a new container gets, checked, in Docker's order of precedence: the mounts of
    ``--volumes-from`` containers (``mounts_of(ref)``; a later one wins), then Binds, Mounts and Tmpfs
    (two of these at one path: "Duplicate mount point"), then an anonymous volume for each path of
    ``Config.Volumes`` and the image's ``Volumes`` that nothing else is mounted on.
    Sorted parents first (``/a`` before ``/a/b``), as they must be mounted."""
    chosen: dict[str, MountPoint] = {}
    for spec in _list(host, "VolumesFrom"):
        ref, read_only = parse_volumes_from(str(spec))
        for mp in mounts_of(ref):
            if mp.type == "tmpfs":
                continue  # memory of that container's own: nothing to share
            copy = MountPoint(**{**asdict(mp), "copy": False, "anonymous": False})
            if read_only is not None:
                copy.rw = not read_only and mp.rw
                copy.mode = "ro" if read_only else mp.mode
            chosen[copy.destination] = copy
    given: set[str] = set()

    def add(mp: MountPoint, shown_as: str) -> None:
        if mp.destination in given:
            raise InvalidParameter(f"Duplicate mount point: {shown_as}")
        given.add(mp.destination)
        chosen[mp.destination] = mp

    for raw in _list(host, "Binds"):
        mp = parse_bind(str(raw))
        add(mp, mp.destination)
    for spec in _list(host, "Mounts"):
        mp = parse_mount(spec)
        add(mp, str(spec.get("Target") or mp.destination))
    tmpfs = host.get("Tmpfs") or {}
    if not isinstance(tmpfs, dict):
        raise InvalidParameter("HostConfig.Tmpfs must be an object: {\"/path\": \"options\"}")
    for destination, options in tmpfs.items():
        add(parse_tmpfs(destination, options), destination)
    for destination in volume_paths(config, image_volumes):
        try:
            target = check_target(destination)
        except ValueError as e:
            raise InvalidParameter(f"invalid volume {destination!r} in Config.Volumes: {e}") from None
        if target not in chosen:
            chosen[target] = MountPoint("volume", target, anonymous=True)
    return sorted(chosen.values(), key=lambda mp: _depth(mp.destination))


def _depth(path: str) -> int:
    return path.rstrip("/").count("/")


def _list(host: dict, key: str) -> list:
    value = host.get(key) or []
    if not isinstance(value, list):
        raise InvalidParameter(f"HostConfig.{key} must be a list")
    return value


def volume_paths(config: dict, image_volumes: dict | None) -> dict:
    """``Config.Volumes``, with the image's ``Volumes`` merged in, as Docker merges them at create."""
    given = config.get("Volumes") or {}
    if not isinstance(given, dict):
        raise InvalidParameter("Config.Volumes must be an object: {\"/path\": {}}")
    return {**(image_volumes or {}), **given}


def save(directory: str, mounts: list[MountPoint]) -> None:
    with open(os.path.join(directory, MOUNTS_FILE), "w") as f:
        json.dump([asdict(mp) for mp in mounts], f, indent=1)


def load(directory: str) -> list[MountPoint]:
    try:
        with open(os.path.join(directory, MOUNTS_FILE)) as f:
            return [MountPoint(**entry) for entry in json.load(f)]
    except FileNotFoundError:
        return []  # a container made before mounts were kept: it has none


def apply(config: dict, mounts: list[MountPoint], *, readonly_root: bool) -> None:
    """Write the mounts into a container's OCI config.  A mount of the user's replaces the engine's
    at the same place (``--tmpfs /dev/shm``, a bind over /etc/hosts), and a mount of /dev the engine's
    beneath it, as in Docker.  Then all of them in an order where a parent comes before what is
    mounted inside it (a bind of /etc, then /etc/hosts over it)."""
    if readonly_root:
        config["root"]["readonly"] = True
    if not mounts:
        return
    root_propagation(config, mounts)
    mine = {mp.destination for mp in mounts}
    kept = [m for m in config["mounts"] if m["destination"] not in mine
            and not ("/dev" in mine and m["destination"].startswith("/dev/"))]
    config["mounts"] = sorted(kept + [mp.oci() for mp in mounts], key=lambda m: _depth(m["destination"]))


def root_propagation(config: dict, mounts: list[MountPoint]) -> None:
    """A bind that asks for ``shared`` or ``slave`` propagation needs the container's / to pass mount
    events on (the runtime makes it ``rslave`` by default: events come in, none go out), and its
    source on a host mount that has peers (``shared``) or a master (``slave``) to propagate from, or
    the option would do nothing.  Docker checks both, with these words, and so do we."""
    from minicontainer.kernel.mounts import mount_of

    for mp in mounts:
        if mp.type != "bind" or mp.propagation not in ("shared", "rshared", "slave", "rslave"):
            continue
        host = mount_of(mp.source)
        if mp.propagation.endswith("shared"):
            if not host.shared:
                raise InvalidParameter(f"path {mp.source} is mounted on {host.point} but it is not a shared mount "
                                       f"(make it one on the host: mount --make-shared {host.point})")
            config["linux"]["rootfsPropagation"] = "shared"
        elif not (host.shared or host.slave):
            raise InvalidParameter(f"path {mp.source} is mounted on {host.point} but it is not a shared or slave "
                                   f"mount (make it one on the host: mount --make-rshared {host.point})")
        elif config["linux"].get("rootfsPropagation") != "shared":
            config["linux"]["rootfsPropagation"] = "rslave"


# --- the engine's side ------------------------------------------------------------------------------


class ContainerMounts:
    """The engine's mounts: checked at create (nothing made on a bad one), the volumes they need
    created, the list kept in the container's directory; at each start written into the bundle (the
    volumes filled from the image on their first use); anonymous volumes removed with the container
    when asked (``rm -v``, ``run --rm``).  ``engine.volumes`` is the volume store (engine/volumes.py)."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.cache: dict[str, list[MountPoint]] = {}  # container ID -> its mounts, read once

    def of(self, container: Any) -> list[MountPoint]:
        if container.id not in self.cache:
            self.cache[container.id] = load(container.dir)
        return self.cache[container.id]

    def plan(self, body: dict, image: Any) -> list[MountPoint]:
        """The new container's mounts, checked; raises InvalidParameter (or NotFound for an unknown
        ``--volumes-from`` container) before anything is created."""
        image_volumes = (image.config.get("config") or {}).get("Volumes")
        return plan(body, body["HostConfig"], image_volumes, lambda ref: self.of(self.engine.get(ref)))

    def create(self, container: Any, mounts: list[MountPoint], image: Any) -> None:
        """Create the volumes the mounts name that do not exist yet (an anonymous one for each path
        without a name), then keep the list with the container.  If one fails, those made here go."""
        created: list[str] = []
        try:
            for mp in mounts:
                if mp.type != "volume" or mp.source:
                    continue  # a bind, a tmpfs, or a volume of --volumes-from's (it exists)
                volume = self._existing(mp.name) if mp.name else None
                if volume is None:
                    volume = self.engine.volumes.create(
                        mp.name or None, driver=mp.driver or container.record["HostConfig"].get("VolumeDriver") or
                        "local", labels=mp.labels or None, driver_opts=mp.driver_opts or None, anonymous=mp.anonymous)
                    created.append(volume.name)
                mp.name, mp.source, mp.driver = volume.name, volume.mountpoint, volume.driver
            save(container.dir, mounts)
        except BaseException:
            self._remove_volumes(created)
            raise
        self.cache[container.id] = mounts
        container.record["Mounts"] = [mp.inspect() for mp in mounts if mp.listed]
        # Config.Volumes as Docker shows it: the given paths and the image's, merged
        container.record["Config"]["Volumes"] = volume_paths(
            container.record["Config"], (image.config.get("config") or {}).get("Volumes")) or None

    def _existing(self, name: str) -> Any:
        try:
            return self.engine.volumes.get(name)
        except NotFound:
            return None

    def apply(self, container: Any, config: dict, sys: Any = None) -> None:
        """At start: fill each volume used for the first time from the image (unless ``nocopy``),
        then write the mounts into the container's OCI config (``config["root"]["path"]`` is its
        root filesystem, mounted).  ``sys``: the start's kernel calls, which --explain narrates."""
        from minicontainer.kernel.mounts import secure_join

        mounts = self.of(container)
        store = self.engine.volumes
        for mp in mounts:
            if mp.type == "bind" and not os.path.exists(mp.source):  # removed since the create
                raise InvalidParameter(f'invalid mount config for type "bind": bind source path does not exist: '
                                       f"{mp.source} (it was there when the container was created: make it again, "
                                       "or remove the container)")
            if mp.type != "volume":
                continue
            volume = store.get(mp.name)
            mp.source = store.mount(volume, container.id, sys)  # a volume with mount options is mounted first
            if mp.copy:
                store.copy_up(volume, config["root"]["path"], mp.destination, sys)
            if mp.subpath and not os.path.isdir(secure_join(mp.source, mp.subpath)):
                raise InvalidParameter(f"cannot access path {os.path.join(mp.source, mp.subpath)}: the volume "
                                       f"{mp.name} has no directory {mp.subpath}")
        apply(config, mounts, readonly_root=bool(container.record["HostConfig"].get("ReadonlyRootfs")))
        for mp in mounts:
            if mp.type == "volume":
                store.event("mount", store.get(mp.name), container=container.id, destination=mp.destination,
                            propagation=mp.propagation, **{"read/write": str(mp.rw).lower()})

    @contextlib.contextmanager
    def attached(self, container: Any, rootfs: str, sys: Any) -> Iterator[None]:
        """(A stopped container, for ``cp``.)  Its binds and volumes mounted on its root filesystem (its
        layers, mounted for the copy) for the time of the copy, as they are at its start, so that ``cp``
        finds what the program would; unmounted after.  A tmpfs has nothing to show when stopped."""
        from minicontainer.kernel.mounts import mount_one, secure_join
        from minicontainer.kernel.syscalls import MNT_DETACH

        store, ref = self.engine.volumes, f"{container.id}/cp"
        mounted: list[MountPoint] = []
        try:
            for mp in self.of(container):
                if mp.type == "tmpfs":
                    continue
                if mp.type == "volume":
                    mp.source = store.mount(store.get(mp.name), ref, sys)
                mounted.append(mp)
                # private, whatever the container asks: these mounts are the daemon's, on the host
                options = [o for o in mp.oci()["options"] if o not in PROPAGATIONS] + ["rprivate"]
                mount_one(sys, rootfs, mp.destination, "bind", mp.oci()["source"], options)
            yield
        finally:
            for mp in reversed(mounted):
                with contextlib.suppress(OSError):
                    sys.umount2(secure_join(rootfs, mp.destination), MNT_DETACH,
                                detail=f"the copy is done: {mp.destination} goes back to the container")
                if mp.type == "volume":
                    with contextlib.suppress(NotFound):
                        store.unmount(store.get(mp.name), ref, sys)

    def recovered(self, container: Any) -> None:
        """After a restart of the daemon, a container still running holds its volumes again."""
        for mp in self.of(container):
            if mp.type == "volume":
                try:
                    self.engine.volumes.mount(self.engine.volumes.get(mp.name), container.id)
                except NotFound:
                    continue

    def stopped(self, container: Any, sys: Any = None) -> None:
        """The container's mounts went with its mount namespace: the volumes' ``unmount`` events (and a
        volume with mount options unmounted after its last user)."""
        store = self.engine.volumes
        for mp in self.of(container):
            if mp.type == "volume":
                try:
                    volume = store.get(mp.name)
                except NotFound:
                    continue
                store.unmount(volume, container.id, sys)
                store.event("unmount", volume, container=container.id)

    def removed(self, container: Any, volumes: bool) -> None:
        """``rm`` (``volumes``: ``rm -v``): its anonymous volumes go too, unless another container
        uses one (``--volumes-from``); named volumes always stay."""
        mounts = self.of(container)
        self.cache.pop(container.id, None)
        if volumes:
            self._remove_volumes([mp.name for mp in mounts if mp.type == "volume" and mp.anonymous
                                  and not set(self.engine.volumes.users(mp.name)) - {container.id}])

    def _remove_volumes(self, names: list[str]) -> None:
        import logging

        for name in names:
            try:
                self.engine.volumes.remove(name, force=True)
            except Exception as e:  # noqa: BLE001 - the container is gone; say why its volume stays
                logging.getLogger(__name__).warning("volume %s stays: %s", name, e)
