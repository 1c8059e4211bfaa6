"""``minicontainer run [OPTIONS] IMAGE [COMMAND] [ARG...]``, with docker's flags and exit codes."""

from __future__ import annotations

import argparse


def parse_bytes(text: str) -> int:
    """``-m 64m`` as docker reads it (:func:`minicontainer.units.parse_bytes`), for argparse's
    ``type=``: a bad size is a usage error that says so (``invalid size: '64x'``)."""
    from minicontainer.units import parse_bytes as in_bytes

    try:
        return in_bytes(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


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
