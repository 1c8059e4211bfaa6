"""How a container is confined, Docker's way: capabilities, seccomp, no_new_privs, the devices cgroup.

Namespaces decide what a container *sees*; these decide what it may *do* with what it sees:

* **capabilities**: root in a container holds only Docker's 14 (``CAP_CHOWN``... ``CAP_MKNOD``),
  never ``CAP_SYS_ADMIN``.  ``--cap-add``/``--cap-drop`` (names with or without ``CAP_``, or ``ALL``)
  change that set.
* **seccomp**: Docker's default profile (:mod:`.seccomp_profile`), resolved against those
  capabilities; ``--security-opt seccomp=unconfined`` removes it, ``seccomp=<profile JSON>`` (the CLI
  reads the file) replaces it.
* **no_new_privs**: off, as in Docker, unless ``--security-opt no-new-privileges``.
* **the devices cgroup**: every device denied but the container's own (/dev/null, its terminals...),
  which is what makes CAP_MKNOD harmless: a node for the host's disk can be made, never opened.
  ``--device`` and ``--device-cgroup-rule`` open it up, one device at a time (:mod:`.devices`).
* **--privileged** undoes all of it: every capability, no seccomp filter, the host's device nodes
  and all of them allowed, no masked or read-only /proc paths, /sys read-write.  Namespaces stay,
  but they no longer protect the host: a privileged container can mount the host's disk and do as
  root there.

:func:`check` refuses bad values at create (a 400, nothing created); :func:`apply` writes the OCI
config at start.  Masked and read-only /proc paths and a read-only /sys come with the runtime's
default config (``runtime/defaults.py``).
"""

from __future__ import annotations

import json
import os
from typing import Any

from minicontainer.engine import devices, process_settings, resources, seccomp_profile, sysctls
from minicontainer.engine.errors import InvalidParameter
from minicontainer.kernel.capabilities import CAPABILITIES, current

# Docker's default capabilities (moby's oci/caps/defaults.go).
DOCKER_CAPABILITIES = ("CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
                       "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
                       "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE")


def _capability(name: str, field: str) -> str:
    full = name.upper() if name.upper().startswith("CAP_") else "CAP_" + name.upper()
    if full != "CAP_ALL" and full not in CAPABILITIES:
        raise InvalidParameter(f"invalid {field}: unknown capability: \"{name}\"")
    if full != "CAP_ALL" and full not in all_capabilities():  # moby's words
        raise InvalidParameter(f"invalid {field}: capability not supported by your kernel or not available in the "
                               f"current environment: \"{full}\" (the daemon itself does not hold it)")
    return full


def capabilities(host: dict) -> list[str]:
    """The container's capabilities: Docker's, plus --cap-add, minus --cap-drop (drops first, as Docker);
    with --privileged, every one (whatever --cap-add and --cap-drop say, as in Docker)."""
    add = [_capability(c, "CapAdd") for c in host.get("CapAdd") or []]
    drop = [_capability(c, "CapDrop") for c in host.get("CapDrop") or []]
    if host.get("Privileged"):
        return all_capabilities()
    base = [] if "CAP_ALL" in drop else list(DOCKER_CAPABILITIES)
    if "CAP_ALL" in add:
        base = all_capabilities()
    caps = base + [c for c in add if c not in base and c != "CAP_ALL"]
    # A capability both added and dropped by name is added (as in Docker since 20.10).
    return [c for c in caps if c not in drop or c in add]


def all_capabilities() -> list[str]:
    """``ALL``, as Docker means it: every capability the daemon itself holds (a daemon started without
    one, in a container or a sandbox, cannot give it: the kernel would refuse the whole set)."""
    held = current().effective
    return [name for name, bit in CAPABILITIES.items() if held >> bit & 1]


class Options:
    """``--security-opt``, read: seccomp (None = Docker's default, "unconfined", or a profile) and nnp."""

    def __init__(self, host: dict) -> None:
        self.seccomp: Any = None
        self.no_new_privileges = False
        for i, opt in enumerate(host.get("SecurityOpt") or []):
            key, sep, value = opt.partition("=")
            if not sep and ":" in opt:  # the old syntax: no-new-privileges:true
                key, _, value = opt.partition(":")
            if key == "no-new-privileges":
                if value not in ("", "true", "false"):
                    raise InvalidParameter(f"invalid --security-opt 2: \"{opt}\"")
                self.no_new_privileges = value != "false"
            elif key == "seccomp" and value:
                self.seccomp = "unconfined" if value == "unconfined" else _profile(value)
            else:
                raise InvalidParameter(f"invalid --security-opt {i + 1}: \"{opt}\" (supported here: seccomp=unconfined, "
                                       "seccomp=<profile JSON>, no-new-privileges)")


def _profile(text: str) -> dict:
    try:
        profile = json.loads(text)
        if not isinstance(profile, dict):
            raise ValueError("the profile must be a JSON object")  # noqa: TRY004 - reported as JSON errors are
    except ValueError as e:  # json.JSONDecodeError is a ValueError too
        raise InvalidParameter(f"Decoding seccomp profile failed: {e}") from None
    return profile


def _resolve(profile: dict, caps: list[str]) -> dict:
    """A Docker-format profile (``archMap``, rules with ``includes``/``excludes``) -> OCI ``linux.seccomp``,
    for this machine and these capabilities, as Docker resolves it."""
    machine = os.uname().machine
    oci = {k: v for k, v in profile.items() if k in ("defaultAction", "defaultErrnoRet", "architectures", "flags")}
    native = seccomp_profile.ARCHITECTURES.get(machine, [""])[0]
    for entry in profile.get("archMap") or []:
        if entry.get("architecture") == native:
            oci["architectures"] = [native, *(entry.get("subArchitectures") or [])]
    go_arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)
    rules = []
    for rule in profile.get("syscalls") or []:
        if not isinstance(rule, dict):
            raise InvalidParameter("Decoding seccomp profile failed: each of syscalls must be an object")
        inc, exc = rule.get("includes") or {}, rule.get("excludes") or {}
        if inc.get("caps") and not all(c in caps for c in inc["caps"]) or \
                inc.get("arches") and go_arch not in inc["arches"] or \
                exc.get("caps") and any(c in caps for c in exc["caps"]) or \
                exc.get("arches") and go_arch in exc["arches"]:
            continue
        names = rule.get("names") or ([rule["name"]] if rule.get("name") else [])
        rules.append({"names": names, **{k: v for k, v in rule.items()
                                         if k in ("action", "args", "errnoRet")}})
    oci["syscalls"] = rules
    return oci


def check(host: dict) -> None:
    """Refuse, at create, what start could not apply: unknown capabilities, bad --security-opt values,
    a profile the kernel's filter could not be built from, a missing device, a sysctl of the host's,
    a bad ulimit."""
    caps = capabilities(host)
    opts = Options(host)
    devices.check(host)
    sysctls.check(host)
    process_settings.check(host)
    if isinstance(opts.seccomp, dict):
        from minicontainer.kernel import seccomp

        try:
            seccomp.check(_resolve(opts.seccomp, caps))
        except ValueError as e:
            raise InvalidParameter(f"Decoding seccomp profile failed: {e}") from None


def apply(config: dict, host: dict) -> None:
    """Write the confinement into the container's OCI config."""
    caps = capabilities(host)
    opts = Options(host)
    privileged = bool(host.get("Privileged"))
    process = config["process"]
    process["capabilities"] = {k: list(caps) for k in ("bounding", "effective", "permitted")}
    process["noNewPrivileges"] = opts.no_new_privileges
    linux = config["linux"]
    if opts.seccomp is None and not privileged:
        linux["seccomp"] = seccomp_profile.for_container(set(caps))
    elif isinstance(opts.seccomp, dict):  # a profile given is applied, privileged or not (as Docker)
        linux["seccomp"] = _resolve(opts.seccomp, caps)
    # Deny every device; the runtime adds the container's own after this rule (bundle.py), as runc does.
    linux.setdefault("resources", {})["devices"] = [{"allow": False, "access": "rwm"}]
    devices.apply(config, host)  # --device, --device-cgroup-rule; --privileged: the host's /dev
    if privileged:
        unconfine(config)
    # What the kernel is told besides: namespaced settings, and the process's limits, groups, OOM score.
    sysctls.apply(config, host)
    process_settings.apply(config, host)
    resources.place_in_parent(config, host)  # and where its cgroup is: --cgroup-parent


def unconfine(config: dict) -> None:
    """``--privileged``'s other half: the kernel's files as the host sees them.  No /proc path masked
    or read-only, and /sys read-write (with every capability, a container can then change the host's
    kernel settings, load modules, reach every disk: privileged is root on the host)."""
    config["linux"]["maskedPaths"] = []
    config["linux"]["readonlyPaths"] = []
    for mount in config["mounts"]:
        if mount["destination"] == "/sys":
            mount["options"] = [o for o in mount["options"] if o != "ro"]
