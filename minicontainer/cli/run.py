"""``minicontainer run [OPTIONS] IMAGE [COMMAND] [ARG...]``, with docker's flags and exit codes."""

from __future__ import annotations

import argparse
import re

UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4, "p": 1024**5}
# docker's RAMInBytes (go-units): a number, an optional space, a unit, then an optional "i" and "b":
# 64m, 64MB, 64 MiB, 1.5g, 1024 (bytes).
SIZE = re.compile(r"^(\d+(?:\.\d+)?) ?([kmgtp]?)i?b?$", re.IGNORECASE)


def parse_bytes(text: str) -> int:
    """``-m 64m``, ``--shm-size 128MiB`` as docker reads them: k, m, g, t, p, 1024-based."""
    m = SIZE.match(text.strip())
    if not m:
        raise argparse.ArgumentTypeError(f"invalid size: '{text}'")
    return int(float(m.group(1)) * UNITS[m.group(2).lower()])


def cmd(args: argparse.Namespace) -> int:
    """Through the daemon, as docker does (``--explain`` narrates the kernel steps it recorded)."""
    from minicontainer.cli.containers import cmd_run as run_through_daemon

    return run_through_daemon(args)


def add_command(commands: argparse._SubParsersAction) -> None:
    from minicontainer.cli.containers import add_run_flags
    from minicontainer.cli.exec import add_attach_flags

    # add_help=False: -h is --hostname, as in docker; --help stays.
    p = commands.add_parser("run", help="run a command in a new container (pulling the image if needed)",
                            add_help=False)
    p.add_argument("--explain", action="store_true", help="narrate every kernel step of the start on stderr")
    add_run_flags(p)
    add_attach_flags(p)
    p.set_defaults(handler=cmd)
