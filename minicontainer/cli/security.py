"""``run``/``create``'s confinement flags: --cap-add, --cap-drop, --security-opt (engine/confinement.py).

As the docker CLI does, ``--security-opt seccomp=PROFILE.json`` is read here, by the client: the
profile's *content* goes to the daemon (which may run on another machine, or as another user).
"""

from __future__ import annotations

import argparse


def add_run_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cap-add", action="append", default=[], metavar="CAP",
                   help="add a Linux capability (NET_ADMIN, SYS_ADMIN... or ALL)")
    p.add_argument("--cap-drop", action="append", default=[], metavar="CAP",
                   help="drop a Linux capability (or ALL)")
    p.add_argument("--security-opt", action="append", default=[], metavar="OPT",
                   help="seccomp=unconfined, seccomp=PROFILE.json, no-new-privileges")


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
    return {"CapAdd": args.cap_add or None, "CapDrop": args.cap_drop or None, "SecurityOpt": opts or None}
