"""What the container's process is given besides its program: rlimits, extra groups, an OOM score.

============================  ===================  =========================================================
flag                          HostConfig field     the OCI config's field, and what the runtime does with it
============================  ===================  =========================================================
``--ulimit nofile=100:200``   ``Ulimits``          ``process.rlimits`` RLIMIT_NOFILE soft 100, hard 200:
                                                   ``setrlimit`` in init, before its capabilities go
``--group-add audio``         ``GroupAdd``         ``process.user.additionalGids``: ``setgroups``; a name is
                                                   looked up in the *image's* /etc/group, a number taken as is
``--oom-score-adj 500``       ``OomScoreAdj``      ``process.oomScoreAdj``: written to /proc/self/oom_score_adj;
                                                   the kernel's OOM killer picks higher scores first
============================  ===================  =========================================================

Limits set with ``setrlimit`` are per process and inherited: every process of the container starts
with them, and an unprivileged one can lower them but never raise the hard limit again.  The daemon's
``default-ulimits`` (daemon.json, as Docker's) apply to every container that does not set its own.
"""

from __future__ import annotations

import os
import stat

from minicontainer import config as settings
from minicontainer.engine.errors import InvalidParameter
from minicontainer.kernel.mounts import secure_join

# --ulimit's names (Docker's, from go-units) -> the kernel's resource.  "as" is left out, as Docker does.
ULIMITS = {"core": "RLIMIT_CORE", "cpu": "RLIMIT_CPU", "data": "RLIMIT_DATA", "fsize": "RLIMIT_FSIZE",
           "locks": "RLIMIT_LOCKS", "memlock": "RLIMIT_MEMLOCK", "msgqueue": "RLIMIT_MSGQUEUE", "nice": "RLIMIT_NICE",
           "nofile": "RLIMIT_NOFILE", "nproc": "RLIMIT_NPROC", "rss": "RLIMIT_RSS", "rtprio": "RLIMIT_RTPRIO",
           "rttime": "RLIMIT_RTTIME", "sigpending": "RLIMIT_SIGPENDING", "stack": "RLIMIT_STACK"}
UNLIMITED = 2**64 - 1  # RLIM_INFINITY as the OCI config writes it; Docker's -1
MAX_GID = 2**31 - 1


def check_ulimit(limit: object) -> None:
    """One ``Ulimits`` entry: a name Docker knows, whole numbers, soft at most hard (-1: unlimited)."""
    if not isinstance(limit, dict) or not isinstance(limit.get("Name"), str):
        raise InvalidParameter(f"invalid ulimit {limit!r}: it must be {{\"Name\": \"nofile\", \"Soft\": 1024, \"Hard\": 2048}}")
    name, soft, hard = limit["Name"], limit.get("Soft"), limit.get("Hard")
    if name not in ULIMITS:
        raise InvalidParameter(f"invalid ulimit type: {name} (known: {', '.join(ULIMITS)})")
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= -1 for v in (soft, hard)):
        raise InvalidParameter(f"invalid ulimit {name}: Soft and Hard must be whole numbers (-1: unlimited)")
    if hard != -1:  # go-units' words
        if soft == -1:
            raise InvalidParameter(f"ulimit soft limit must be less than or equal to hard limit: soft: -1 (unlimited), hard: {hard}")
        if soft > hard:
            raise InvalidParameter(f"ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}")


def with_default_ulimits(host: dict) -> None:
    """Docker's ``mergeUlimits``: the daemon's ``default-ulimits`` for every name the container does not
    set itself, written into its HostConfig (so that ``inspect`` shows what applies)."""
    defaults = settings.daemon_settings().get("default-ulimits") or {}
    given = {limit.get("Name") for limit in host.get("Ulimits") or [] if isinstance(limit, dict)}
    extra = []
    for name, limit in sorted(defaults.items()):
        try:
            check_ulimit(limit)
        except InvalidParameter as e:
            raise InvalidParameter(f"daemon.json: default-ulimits: {name}: {e}") from None
        if name not in given:
            extra.append({"Name": limit["Name"], "Soft": limit["Soft"], "Hard": limit["Hard"]})
    if extra:
        host["Ulimits"] = [*(host.get("Ulimits") or []), *extra]


def check(host: dict) -> None:
    """At create, what needs no image: the ulimits, and each --group-add a name or a number."""
    seen = set()
    for limit in host.get("Ulimits") or []:
        check_ulimit(limit)
        if limit["Name"] in seen:
            raise InvalidParameter(f"invalid ulimit {limit['Name']}: given twice")
        seen.add(limit["Name"])
    for group in host.get("GroupAdd") or []:
        if not isinstance(group, str) or not group or ":" in group:
            raise InvalidParameter(f"invalid --group-add {group!r}: a group name or number")


def image_group_file(lowerdirs: list[str]) -> str | None:
    """The text of the image's /etc/group, read from its layers as overlayfs shows it (top layer
    first: a whiteout or an opaque /etc hides the layers beneath); None if it cannot be told without
    mounting (a symlink), "" if there is none."""
    for layer in lowerdirs:
        path = os.path.join(layer, "etc", "group")
        if os.path.lexists(path):
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                return None
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:  # a whiteout: the file was deleted in this layer
                return ""
            with open(path, encoding="utf-8", errors="replace") as f:
                return f.read()
        try:
            if os.getxattr(os.path.join(layer, "etc"), "trusted.overlay.opaque") == b"y":
                return ""
        except OSError:
            pass
    return ""


def resolve_groups(names: list[str], group_file: str) -> list[int]:
    """--group-add's entries -> gids: a name from the image's /etc/group, a number as it is (runc's rules
    and words)."""
    table = [line.split(":") for line in group_file.splitlines() if line.strip() and not line.startswith("#")]
    gids = []
    for name in names:
        entry = next((e for e in table if e[0] == name and len(e) > 2), None)
        if entry is not None and entry[2].isdigit():
            gids.append(int(entry[2]))
        elif name.isdigit():
            if int(name) > MAX_GID:
                raise InvalidParameter(f"Unable to find group {name}: numerical result out of range")
            gids.append(int(name))
        else:
            raise InvalidParameter(f"Unable to find group {name}: no matching entries in group file (the image's "
                                   "/etc/group; give a number instead, or add the group to the image)")
    return gids


def check_groups(host: dict, lowerdirs: list[str]) -> None:
    """At create, with the image: every --group-add name is in its /etc/group (else a 400, nothing made)."""
    if host.get("GroupAdd"):
        text = image_group_file(lowerdirs)
        if text is not None:
            resolve_groups(host["GroupAdd"], text)


def apply(config: dict, host: dict) -> None:
    """Write rlimits, extra groups and the OOM score into the container's OCI config (at start: the
    root filesystem is mounted, and the image's /etc/group is read in it)."""
    process = config["process"]
    limits = {r["type"]: r for r in process.get("rlimits") or []}
    for limit in host.get("Ulimits") or []:
        kind = ULIMITS[limit["Name"]]
        limits[kind] = {"type": kind, "soft": UNLIMITED if limit["Soft"] == -1 else limit["Soft"],
                        "hard": UNLIMITED if limit["Hard"] == -1 else limit["Hard"]}
    process["rlimits"] = list(limits.values())
    if host.get("GroupAdd"):
        try:  # inside the mounted root: a symlink in the image cannot lead to the host's /etc/group
            with open(secure_join(config["root"]["path"], "/etc/group"), encoding="utf-8", errors="replace") as f:
                text = f.read()
        except OSError:
            text = ""
        gids = resolve_groups(host["GroupAdd"], text)
        user = process.setdefault("user", {"uid": 0, "gid": 0})
        user["additionalGids"] = list(dict.fromkeys([*(user.get("additionalGids") or []), *gids]))
    process["oomScoreAdj"] = host.get("OomScoreAdj") or 0  # as Docker: always, so none inherits the daemon's
