"""``minicontainer run [OPTIONS] IMAGE [COMMAND] [ARG...]``, with docker's flags and exit codes."""

from __future__ import annotations

import argparse

UNITS = {"b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def parse_bytes(text: str) -> int:
    """``-m 64m`` as docker reads it: b, k, m, g suffixes, 1024-based."""
    t = text.strip().lower().rstrip("b") or "0"
    unit = UNITS.get(t[-1], 1)
    number = t[:-1] if t[-1] in UNITS else t
    try:
        return int(float(number) * unit)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid size: '{text}'") from None


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
