"""From an image and ``docker run``'s options to the runtime's bundle: a root filesystem and ``config.json``.

This is the seam between Docker's world and the OCI runtime's: the image says what to run by default
(Entrypoint, Cmd, Env, WorkingDir, User), the user overrides some of it on the command line, and the
result is a runtime-spec config like the one ``minicontainer-runtime spec`` writes.

Docker's rules, reproduced here:

* the program is ``Entrypoint + Cmd``; a command given to ``run`` replaces Cmd; ``--entrypoint``
  replaces Entrypoint *and* clears the image's Cmd;
* ``-e KEY=value`` overrides the image's value of KEY; ``-e KEY`` alone takes the caller's value;
* ``-u name`` is looked up in the image's own /etc/passwd, not the host's;
* ``--cpus 1.5`` is a CFS quota of 150 ms per 100 ms period; ``-m`` a memory limit (and, as Docker
  does, the same amount again of swap, so memory+swap = 2 x memory): :mod:`.resources` translates.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from typing import NamedTuple

from minicontainer.engine.errors import InvalidParameter
from minicontainer.engine.resources import oci_resources
from minicontainer.image import overlay
from minicontainer.kernel.cgroups import Limits
from minicontainer.kernel.mounts import secure_join
from minicontainer.kernel.syscalls import Syscalls
from minicontainer.runtime.defaults import default_config

INIT_PATH = "/dev/init"  # where --init's tini is mounted in the container, as Docker does
# The files the engine bind-mounts over in every container (engine/networks.py writes them).
INIT_LAYER_FILES = ("etc/hosts", "etc/resolv.conf", "etc/hostname")


class RunOptions:
    """What ``docker run`` lets a user change (the subset minicontainer implements so far)."""

    def __init__(self, *, command: list[str] | None = None, entrypoint: list[str] | None = None,
                 env: list[str] | None = None, workdir: str | None = None, user: str | None = None,
                 hostname: str | None = None, resources: Limits | None = None,
                 labels: dict[str, str] | None = None) -> None:
        self.command = command or None
        self.entrypoint = entrypoint
        self.env = env or []
        self.workdir = workdir
        self.user = user
        self.hostname = hostname
        self.resources = resources or Limits()  # -m, --cpus, --pids-limit...: engine/resources.py
        self.labels = labels or {}


def program_args(image_config: dict, opts: RunOptions) -> list[str]:
    entrypoint = image_config.get("Entrypoint") or []
    cmd = image_config.get("Cmd") or []
    if opts.entrypoint is not None:
        entrypoint, cmd = opts.entrypoint, []  # --entrypoint resets the image's Cmd
    if opts.command:
        cmd = opts.command
    args = list(entrypoint) + list(cmd)
    if not args:
        raise ValueError("no command specified: the image has no Entrypoint or Cmd; give one after the image name")
    return args


def merge_env(image_env: list[str], overrides: list[str]) -> list[str]:
    """The image's variables, overridden by the caller's ``KEY=value`` ones.

    ``-e KEY`` (no ``=``) means "the value KEY has where I type the command": the *client* fills it
    in (``cli/containers.resolve_env``).  One still bare here is left out: looked up in the daemon's own
    environment, it would hand the daemon's secrets to whoever can reach its socket."""
    env: dict[str, str] = {}
    for item in list(image_env) + list(overrides):
        key, sep, value = item.partition("=")
        if sep:
            env[key] = value
    return [f"{k}={v}" for k, v in env.items()]


class User(NamedTuple):
    uid: int
    gid: int
    additional_gids: list[int]
    home: str  # the HOME Docker gives the program: the passwd entry's, else /


def resolve_user(rootfs: str, user: str) -> User:
    """``name``, ``uid``, ``name:group`` or ``uid:gid`` -> who the program runs as, from the image's own
    /etc/passwd and /etc/group (not the host's)."""
    name, _, group = user.partition(":")
    passwd = _table(rootfs, "/etc/passwd")
    groups = _table(rootfs, "/etc/group")
    if name.isdigit():
        uid = int(name)
        entry = next((e for e in passwd if e[2] == name), None)
    else:
        entry = next((e for e in passwd if e[0] == name), None)
        if entry is None:
            raise ValueError(f"unable to find user {name}: no matching entries in the image's /etc/passwd")
        uid = int(entry[2])
    gid = int(entry[3]) if entry else 0
    if group:
        if group.isdigit():
            gid = int(group)
        else:
            g = next((e for e in groups if e[0] == group), None)
            if g is None:
                raise ValueError(f"unable to find group {group}: no matching entries in the image's /etc/group")
            gid = int(g[2])
    username = entry[0] if entry else None
    extra = sorted({int(g[2]) for g in groups if username and len(g) > 3 and username in g[3].split(",")} - {gid})
    home = entry[5] if entry and len(entry) > 5 and entry[5] else "/"
    return User(uid, gid, extra, home)


def _table(rootfs: str, path: str) -> list[list[str]]:
    try:
        with open(secure_join(rootfs, path), encoding="utf-8", errors="replace") as f:
            return [line.rstrip("\n").split(":") for line in f if line.strip() and not line.startswith("#")]
    except OSError:  # missing, or not a readable file: the image has no such table
        return []


def oci_config(image_config: dict, opts: RunOptions, *, rootfs: str, cgroups_path: str,
               hostname: str) -> dict:
    """The runtime-spec config for one container of this image."""
    cfg = image_config.get("config") or {}
    config = default_config(program_args(cfg, opts), hostname=opts.hostname or hostname, rootfs=rootfs)
    process = config["process"]
    process["env"] = merge_env(cfg.get("Env") or [], opts.env)
    if not any(e.startswith("PATH=") for e in process["env"]):
        process["env"].insert(0, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    if not any(e.startswith("HOSTNAME=") for e in process["env"]):
        process["env"].insert(1, f"HOSTNAME={config['hostname']}")  # as Docker gives every container
    process["cwd"] = opts.workdir or cfg.get("WorkingDir") or "/"
    user = opts.user or cfg.get("User") or ""
    who = resolve_user(rootfs, user or "0")  # no user: root, as the image's passwd describes it
    if user:
        process["user"] = {"uid": who.uid, "gid": who.gid, "additionalGids": who.additional_gids}
    if not any(e.startswith("HOME=") for e in process["env"]):
        process["env"].append(f"HOME={who.home}")  # as Docker sets it
    linux = config["linux"]
    linux["cgroupsPath"] = cgroups_path
    resources = oci_resources(opts.resources)
    if resources:
        linux["resources"] = resources
    config["annotations"] = {f"org.minicontainer.label.{k}": v for k, v in opts.labels.items()}
    return config


# --- the bundle ----------------------------------------------------------------------------------


def write_bundle(sys: Syscalls, store, image, opts: RunOptions, directory: str, *, cgroups_path: str,
                 hostname: str, args: list[str] | None = None, init: bool = False, terminal: bool = False,
                 console_size: list[int] | None = None, network: Callable[[dict], None] | None = None,
                 share: Callable[[dict], None] | None = None, confine: Callable[[dict], None] | None = None,
                 mounts: Callable[[dict], None] | None = None) -> str:
    """Make ``directory`` a bundle the runtime can run: the image's layers stacked under an overlay of
    the container's own (``merged/``, :mod:`minicontainer.image.overlay`) and ``config.json``.

    ``args`` replaces the program :func:`oci_config` worked out (the daemon decided it at create);
    ``init`` puts tini in front of it; ``terminal`` (``-t``) gives it a terminal, of ``console_size``
    (rows, columns); ``network`` adjusts the config for the container's network (its namespace, the
    /etc/hosts, resolv.conf and hostname files); ``share`` changes the config's namespaces for the
    namespace-sharing modes (:func:`minicontainer.engine.namespaces.apply`); ``confine`` writes the
    confinement (:func:`minicontainer.engine.confinement.apply`); ``mounts`` adds the container's
    binds, volumes and tmpfs (:meth:`minicontainer.engine.mounts.ContainerMounts.apply`), after the
    network's files, which one of them may replace.  Returns the root filesystem's path; if
    anything fails, nothing stays mounted."""
    rootfs = overlay.mount_rootfs(sys, [init_layer(directory), *store.lowerdirs(image)], directory)
    try:
        make_workdir(rootfs, opts.workdir or (image.config.get("config") or {}).get("WorkingDir") or "/")
        runtime_config = oci_config(image.config, opts, rootfs=rootfs, cgroups_path=cgroups_path, hostname=hostname)
        if args:
            runtime_config["process"]["args"] = args
        if init:
            add_init(runtime_config)
        if network is not None:
            network(runtime_config)
        if mounts is not None:
            mounts(runtime_config)
        if terminal:  # -t: the program's stdio is a terminal of the container's own
            runtime_config["process"]["terminal"] = True
            if not any(e.startswith("TERM=") for e in runtime_config["process"]["env"]):
                runtime_config["process"]["env"].append("TERM=xterm")  # Docker's, for every terminal
            if console_size and all(console_size):
                runtime_config["process"]["consoleSize"] = {"height": console_size[0], "width": console_size[1]}
        if share:
            share(runtime_config)
        if confine:  # capabilities, seccomp, no_new_privs, device rules (engine/confinement.py)
            confine(runtime_config)
        with open(os.path.join(directory, "config.json"), "w") as f:
            json.dump(runtime_config, f, indent=1)
    except BaseException:
        overlay.unmount_rootfs(sys, directory, remove=False)
        raise
    return rootfs


def init_layer(directory: str) -> str:
    """Docker's "init layer": a small layer of the container's own, just above the image's, holding
    empty files where the engine bind-mounts /etc/hosts, /etc/resolv.conf and /etc/hostname.  A bind
    needs a file to land on; without this layer the runtime would create it in the container's upper
    layer, and ``diff`` and ``commit`` would count the engine's mount points as the program's changes."""
    top = os.path.join(directory, "init")
    for rel in INIT_LAYER_FILES:
        path = os.path.join(top, rel)
        os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
        if not os.path.lexists(path):
            with open(path, "w"):
                pass
    return top


def make_workdir(rootfs: str, workdir: str) -> None:
    """Docker creates a missing working directory (in the container's own upper layer) before start."""
    os.makedirs(secure_join(rootfs, workdir), mode=0o755, exist_ok=True)


def add_init(runtime_config: dict) -> None:
    """--init: a tiny init (tini) as PID 1 forwards signals to the program and reaps zombies."""
    tini = shutil.which("tini-static") or shutil.which("tini")
    if not tini:
        raise InvalidParameter("--init needs tini on the host (apt-get install tini)")
    runtime_config["mounts"].append({"destination": INIT_PATH, "type": "bind", "source": tini,
                                     "options": ["bind", "ro"]})
    runtime_config["process"]["args"] = [INIT_PATH, "--", *runtime_config["process"]["args"]]
