"""``minicontainer run [OPTIONS] IMAGE [COMMAND] [ARG...]``, with docker's flags and exit codes."""

from __future__ import annotations

import argparse
import sys

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


def cmd_run(args: argparse.Namespace) -> int:
    from minicontainer.cli.images import PullPrinter
    from minicontainer.engine import run as engine_run
    from minicontainer.engine.spec import RunOptions

    env = list(args.env)
    for path in args.env_file:
        with open(path) as f:
            env += [line.strip() for line in f if line.strip() and not line.startswith("#")]
    opts = RunOptions(command=args.command, entrypoint=[args.entrypoint] if args.entrypoint is not None else None,
                      env=env, workdir=args.workdir, user=args.user, hostname=args.hostname, memory=args.memory,
                      cpus=args.cpus, pids_limit=args.pids_limit)
    printer = PullPrinter(sys.stderr)

    def explain(step: str) -> None:
        if args.explain:
            from minicontainer.observe.explain import narrate

            narrate(sys_calls.trace.events, sys.stderr, title=step)
            sys_calls.trace.events.clear()

    from minicontainer.kernel.syscalls import Syscalls

    sys_calls = Syscalls()
    try:
        return engine_run.run(args.image, opts, progress=printer, sys=sys_calls, on_step=explain)
    except Exception as e:  # noqa: BLE001 - docker: a failure to run is 125, 126 or 127, with the reason
        code = getattr(e, "exit_code", 125)
        print(f"minicontainer: {e}", file=sys.stderr)
        return code


def cmd(args: argparse.Namespace) -> int:
    """Through the daemon, as docker does; with --explain, in this process, to narrate each kernel step."""
    if args.explain:
        if args.detach or args.interactive or args.name or args.init:
            print("minicontainer: --explain runs the container in this process, in the foreground: it does not "
                  "go with -d, -i, --name or --init", file=sys.stderr)
            return 125
        return cmd_run(args)
    from minicontainer.cli.containers import cmd_run as run_through_daemon

    return run_through_daemon(args)


def add_command(commands: argparse._SubParsersAction) -> None:
    from minicontainer.cli.containers import add_run_flags

    # add_help=False: -h is --hostname, as in docker; --help stays.
    p = commands.add_parser("run", help="run a command in a new container (pulling the image if needed)",
                            add_help=False)
    p.add_argument("--explain", action="store_true",
                   help="run it in this process and narrate every kernel step on stderr")
    add_run_flags(p)
    p.set_defaults(handler=cmd)
