"""``run``/``create``'s confinement flags (engine/confinement.py and its neighbours).

--cap-add, --cap-drop, --security-opt, --privileged; --device, --device-cgroup-rule; --group-add,
--sysctl, --shm-size, --ulimit, --oom-score-adj; the memory cgroup's --oom-kill-disable and
--memory-swappiness; --cgroup-parent.  Each value is checked here with the docker CLI's rules and words (a typo is a
usage error, 125, before any request), then again by the daemon, which other clients reach too.

As the docker CLI does, ``--security-opt seccomp=PROFILE.json`` is read here, by the client: the
profile's *content* goes to the daemon (which may run on another machine, or as another user).
"""

from __future__ import annotations

import argparse
import re

# --sysctl's names the docker CLI lets through: those of the container's own IPC or network namespace.
IPC_SYSCTLS = ("kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall", "kernel.shmmax",
               "kernel.shmmni", "kernel.shm_rmid_forced")
# --ulimit's names (go-units'): the kernel's RLIMIT_<NAME>, but "as", which Docker leaves out.
ULIMITS = ("core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile", "nproc", "rss", "rtprio",
           "rttime", "sigpending", "stack")
CGROUP_RULE = re.compile(r"^([acb]) ([0-9]+|\*):([0-9]+|\*) ([rwm]{1,3})$")


def _device_mode(mode: str) -> bool:
    return bool(mode) and len(set(mode)) == len(mode) and set(mode) <= set("rwm")


def device(text: str) -> dict:
    """``--device HOST[:CONTAINER][:rwm]`` -> a ``Devices`` entry (the docker CLI's rules and words)."""
    parts = text.split(":")
    if len(parts) > 3 or not parts[0]:
        raise argparse.ArgumentTypeError(f"bad format for path: {text}")
    host, inside, mode = parts[0], parts[0], "rwm"
    if len(parts) == 2:
        if _device_mode(parts[1]):
            mode = parts[1]
        else:
            inside = parts[1]
    elif len(parts) == 3:
        inside, mode = parts[1], parts[2]
        if not _device_mode(mode):
            raise argparse.ArgumentTypeError(f"bad mode specified: {mode}")
    if not inside.startswith("/"):
        raise argparse.ArgumentTypeError(f"{inside} is not an absolute path")
    return {"PathOnHost": host, "PathInContainer": inside, "CgroupPermissions": mode}


def cgroup_rule(text: str) -> str:
    if not CGROUP_RULE.match(text):
        raise argparse.ArgumentTypeError(f"invalid device cgroup format '{text}'")
    return text


def sysctl(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name or not (name in IPC_SYSCTLS or name.startswith(("net.", "fs.mqueue."))):
        raise argparse.ArgumentTypeError(f"sysctl '{text}' is not allowed")
    return name, value


def ulimit(text: str) -> dict:
    """``nofile=1024:2048`` (or ``nofile=1024``: the hard limit the same) -> an ``Ulimits`` entry, with
    go-units' checks and words (-1: unlimited)."""
    name, sep, values = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"invalid ulimit argument: {text}")
    if name not in ULIMITS:
        raise argparse.ArgumentTypeError(f"invalid ulimit type: {name}")
    soft_text, colon, hard_text = values.partition(":")
    try:
        soft = int(soft_text)
        hard = int(hard_text) if colon else soft
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid ulimit argument: {text} (soft[:hard], -1: unlimited)") from None
    if hard != -1 and (soft == -1 or soft > hard):
        shown = "soft: -1 (unlimited), hard: " if soft == -1 else f"{soft} > "
        raise argparse.ArgumentTypeError(f"ulimit soft limit must be less than or equal to hard limit: {shown}{hard}")
    return {"Name": name, "Soft": soft, "Hard": hard}


def add_run_flags(p: argparse.ArgumentParser) -> None:
    from minicontainer.cli.run import parse_bytes

    p.add_argument("--cap-add", action="append", default=[], metavar="CAP",
                   help="add a Linux capability (NET_ADMIN, SYS_ADMIN... or ALL)")
    p.add_argument("--cap-drop", action="append", default=[], metavar="CAP",
                   help="drop a Linux capability (or ALL)")
    p.add_argument("--security-opt", action="append", default=[], metavar="OPT",
                   help="seccomp=unconfined, seccomp=PROFILE.json, no-new-privileges")
    p.add_argument("--privileged", action="store_true",
                   help="every capability, no seccomp, the host's devices: root on the host")
    p.add_argument("--device", action="append", default=[], type=device, metavar="HOST[:CONTAINER][:rwm]",
                   help="give the container a host device (/dev/sdb:/dev/xvdb:r)")
    p.add_argument("--device-cgroup-rule", action="append", default=[], type=cgroup_rule, metavar="RULE",
                   help="allow devices in the devices cgroup ('c 42:* rmw')")
    p.add_argument("--group-add", action="append", default=[], metavar="GROUP",
                   help="an additional group (a name in the image's /etc/group, or a number)")
    p.add_argument("--sysctl", action="append", default=[], type=sysctl, metavar="NAME=VALUE",
                   help="a namespaced kernel setting (net.*, kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.*)")
    p.add_argument("--shm-size", type=parse_bytes, metavar="SIZE", help="size of /dev/shm (64m by default)")
    p.add_argument("--ulimit", action="append", default=[], type=ulimit, metavar="NAME=SOFT[:HARD]",
                   help="a resource limit (nofile=1024:2048, nproc=64, core=0)")
    p.add_argument("--oom-score-adj", type=int, metavar="N", help="the OOM killer's preference, -1000 to 1000")
    p.add_argument("--oom-kill-disable", action="store_true",
                   help="processes wait for memory instead of being killed (cgroup v1)")
    p.add_argument("--memory-swappiness", type=int, metavar="N",
                   help="how readily the kernel swaps out the container's memory, 0 to 100 (cgroup v1)")
    p.add_argument("--cgroup-parent", metavar="PATH",
                   help="put the container's cgroup beneath PATH, itself beneath the daemon's cgroup")


def security_fields(args: argparse.Namespace) -> dict:
    """The flags -> HostConfig's CapAdd, CapDrop, SecurityOpt (a profile file read into the option)."""
    from minicontainer.cli.format import local_error

    opts = []
    for opt in args.security_opt:
        key, sep, value = opt.partition("=")
        if key == "seccomp" and sep and value != "unconfined":
            try:
                with open(value, encoding="utf-8") as f:
                    opt = "seccomp=" + f.read()
            except OSError as e:  # docker's words
                raise ValueError(f"opening seccomp profile ({value}) failed: {local_error(e)}") from None
        opts.append(opt)
    return {"CapAdd": args.cap_add or None, "CapDrop": args.cap_drop or None, "SecurityOpt": opts or None,
            "Privileged": args.privileged, "Devices": args.device, "DeviceCgroupRules": args.device_cgroup_rule or None,
            "GroupAdd": args.group_add or None, "Sysctls": dict(args.sysctl) or None, "ShmSize": args.shm_size or 0,
            "Ulimits": args.ulimit or None, "OomScoreAdj": args.oom_score_adj or 0,
            "OomKillDisable": args.oom_kill_disable,
            "MemorySwappiness": -1 if args.memory_swappiness is None else args.memory_swappiness,
            "CgroupParent": args.cgroup_parent or ""}
