"""``minicontainer``: the user-facing command line, docker-like (``run``, ``ps``, ``pull``...).

The OCI runtime underneath has its own command, ``minicontainer-runtime`` (runc's interface); this one
is what a learner types.  Each subcommand is a small function that adds its argparse sub-parser and
names its handler; :data:`COMMANDS` lists them, so a new command is one function plus one entry.

Start-up time matters for a command run hundreds of times in a course: this module imports only
``argparse``, ``os`` and ``sys``.  A handler imports its implementation when it runs, so ``minicontainer
--version`` never loads ctypes, the cgroup code or anything else it does not use.
"""

from __future__ import annotations

import argparse
import os
import sys

PROG = "minicontainer"


# --- Subcommands ----------------------------------------------------------------------------------
# Each add_* function registers one subcommand; set_defaults(handler=...) is how main() finds what to
# run.  A handler takes the parsed arguments and returns the exit code.


def _run_doctor(args: argparse.Namespace) -> int:
    from minicontainer.cli import doctor  # imported only when the command runs

    return doctor.command(as_json=args.json)


def add_build(commands: argparse._SubParsersAction) -> None:
    from minicontainer.cli import build

    build.add_commands(commands)


def add_doctor(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "doctor", help="show what this host allows: namespaces, overlayfs, pivot_root, cgroups, tools",
        description="Check, and as root try for real, every kernel feature minicontainer uses; for each "
                    "one missing, say how to get it. Exits 0 when everything real isolation needs is there.")
    p.add_argument("--json", action="store_true",
                   help="print a JSON list of {check, status, detail, remedy, required} instead")
    p.set_defaults(handler=_run_doctor)


def add_images(commands: argparse._SubParsersAction) -> None:
    from minicontainer.cli import images  # light: argparse and formatting only, until a command runs

    images.add_commands(commands)


def add_archive(commands: argparse._SubParsersAction) -> None:
    from minicontainer.cli import archive

    archive.add_commands(commands)


def add_run(commands: argparse._SubParsersAction) -> None:
    from minicontainer.cli import run

    run.add_command(commands)


def add_exec(commands: argparse._SubParsersAction) -> None:
    from minicontainer.cli import exec as exec_commands

    exec_commands.add_commands(commands)


def add_containers(commands: argparse._SubParsersAction) -> None:
    from minicontainer.cli import containers

    containers.add_commands(commands)


def add_network(commands: argparse._SubParsersAction) -> None:
    from minicontainer.cli import network

    network.add_commands(commands)


def add_volume(commands: argparse._SubParsersAction) -> None:
    from minicontainer.cli import volume

    volume.add_commands(commands)


def add_resources(commands: argparse._SubParsersAction) -> None:
    from minicontainer.cli import events, resources, stats

    events.add_commands(commands)
    stats.add_commands(commands)
    resources.add_commands(commands)


def add_cp(commands: argparse._SubParsersAction) -> None:
    from minicontainer.cli import cp

    cp.add_command(commands)


def add_system(commands: argparse._SubParsersAction) -> None:
    from minicontainer.cli import system

    system.add_commands(commands)


# The subcommands, in the order `minicontainer --help` lists them.
COMMANDS = (add_run, add_exec, add_containers, add_resources, add_images, add_archive, add_build, add_cp, add_system, add_network, add_volume,
            add_doctor)


# --- The parser ------------------------------------------------------------------------------------


class _VersionAction(argparse.Action):
    """``--version``: like argparse's own "version" action, but the version is looked up only when
    asked for (importlib.metadata takes ~40 ms to import: too much for every start-up)."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, **kwargs: object) -> None:
        super().__init__(option_strings, dest=dest, nargs=0, default=argparse.SUPPRESS,
                         help="print minicontainer's version and exit")

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        print(f"{PROG} {package_version()}")
        parser.exit(0)


def package_version() -> str:
    """The package's version (``minicontainer.__version__``, which pyproject.toml reads too)."""
    from minicontainer import __version__

    return __version__


class Parser(argparse.ArgumentParser):
    """argparse, with docker's exit status for usage errors: 125 (argparse's own is 2)."""

    command = ""  # the subcommand given, for the hints of usage errors

    def _get_formatter(self) -> argparse.HelpFormatter:
        # argparse's own asks shutil for the terminal's width, and every add_argument makes one: that
        # imports shutil (and bz2, lzma...), 2 ms of every command's start.  os knows the width too.
        return self.formatter_class(prog=self.prog, width=_help_width())

    def error(self, message: str):  # type: ignore[override]
        if message.startswith("unrecognized arguments: "):  # docker's words for it
            first = message.split(": ", 1)[1].split()[0]
            which = f"{PROG} {self.command}".strip()
            said = f"unknown flag: {first}" if first.startswith("-") else f'"{which}" accepts no more arguments'
            self.exit(EXIT_USAGE, f"{said}\nSee '{which} --help'.\n")
        if message.startswith("the following arguments are required"):
            self.exit(1, self._missing_arguments())
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: {message}\nSee '{PROG} --help'.\n")


    def _missing_arguments(self) -> str:
        """docker's (cobra's) words for too few arguments: ``'minicontainer run' requires at least 1
        argument``, then the usage line docker prints; its exit status is 1."""
        positionals = [a for a in self._actions if not a.option_strings and a.nargs != argparse.PARSER
                       and not isinstance(a, argparse._SubParsersAction)]
        needed = sum(a.nargs in (None, "+") for a in positionals)
        at_least = any(a.nargs in ("+", "*", "?", argparse.REMAINDER) for a in positionals)
        shapes = {None: "{0}", "+": "{0} [{0}...]", "?": "[{0}]", "*": "[{0}...]", argparse.REMAINDER: "[{0}] [ARG...]"}
        usage = " ".join(shapes.get(a.nargs, "{0}").format((a.metavar or a.dest).upper()) for a in positionals)
        return (f"{PROG}: '{self.prog}' requires {'at least ' if at_least else ''}{needed} "
                f"argument{'s' if needed != 1 else ''}\n\nUsage:  {self.prog} [OPTIONS] {usage}\n\n"
                f"See '{self.prog} --help' for more information\n")


EXIT_USAGE = 125


def _help_width() -> int:
    """What argparse would use: $COLUMNS, else the terminal's width, else 80; less 2."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns
        except (AttributeError, ValueError, OSError):
            columns = 80
    return columns - 2


# Which add_* function registers which commands: a command line that names one needs only that
# group's parsers (building all of them costs ~20 ms, paid by every command otherwise).
GROUPS = {
    "run": add_run,
    **dict.fromkeys(("exec", "attach"), add_exec),
    **dict.fromkeys(("create", "start", "stop", "restart", "kill", "rm", "wait", "ps", "logs", "container",
                     "inspect", "top", "diff", "rename", "version", "info"), add_containers),
    "cp": add_cp,
    "system": add_system,
    **dict.fromkeys(("pull", "push", "images", "image", "history", "tag", "rmi", "login", "logout", "starter"),
                    add_images),
    **dict.fromkeys(("save", "load", "import", "export"), add_archive),
    **dict.fromkeys(("network", "port"), add_network),
    "volume": add_volume,
    **dict.fromkeys(("events", "stats", "pause", "unpause", "update"), add_resources),
    **dict.fromkeys(("commit", "build"), add_build),
    "doctor": add_doctor,
}


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    parser = Parser(
        prog=PROG, description="A container engine in readable Python, built to teach how containers work.")
    parser.add_argument("--version", action=_VersionAction)
    parser.add_argument("--explain", dest="explain_all", action="store_true",
                        help="narrate what the command makes the daemon and the kernel do (also after the command)")
    commands = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND")
    first = next((a for a in argv or [] if not a.startswith("-")), None)
    for add in (GROUPS[first],) if first in GROUPS else COMMANDS:
        add(commands)
    _explain_everywhere(commands)
    return parser


def _explain_everywhere(commands: argparse._SubParsersAction) -> None:
    """Give every command ``--explain``.  Those that make the kernel or a registry work narrate that
    (their own flag says so); on every command it also lists the Engine API requests sent."""
    for sub in commands.choices.values():
        nested = [a for a in sub._actions if isinstance(a, argparse._SubParsersAction)]
        if nested:
            _explain_everywhere(nested[0])
        elif "--explain" not in sub._option_string_actions:
            sub.add_argument("--explain", action="store_true",
                             help="show the Engine API requests behind the command, on stderr")


def show_requests(record: list[tuple[str, str, int, str, float]], out=None) -> None:
    """``--explain``'s list of the Engine API requests a command sent (the docker CLI sends the same)."""
    out = out or sys.stderr
    title = "the Engine API requests behind this command (ms: until the reply's head)"
    out.write(f"── {title} " + "─" * max(0, 60 - len(title)) + "\n")
    if not record:
        out.write("   none: this command works on this host directly, without the daemon\n")
    import re
    import textwrap
    from urllib.parse import unquote_plus

    for method, target, status, reason, ms in record:  # unquoted, to be read: ?filters={"status":["exited"]}
        target = re.sub(r"\b([0-9a-f]{12})[0-9a-f]{52}\b", r"\1…", unquote_plus(target))  # IDs as docker ps shows them
        line = f"{method} {target}  ->  {status} {reason}  ({ms:.1f} ms)"
        out.write("\n".join(textwrap.wrap(line, 100, initial_indent="   ", subsequent_indent="       ",
                                           break_on_hyphens=False)) + "\n")
    out.flush()


def main(argv: list[str] | None = None) -> int:
    """The ``minicontainer`` console script.  ``argv`` defaults to ``sys.argv[1:]``; returns the exit code.

    Usage errors (and ``--help``, ``--version``) end in ``SystemExit`` from argparse, as usual.
    """
    if argv is None:
        argv = sys.argv[1:]
    parser = build_parser(argv)
    parser.command = next((a for a in argv if not a.startswith("-")), "")
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:  # no subcommand: show what there is, as docker and git do
        parser.print_help(sys.stderr)
        return 2
    if getattr(args, "explain_all", False):
        args.explain = True  # `minicontainer --explain ps` = `minicontainer ps --explain`
    record = None
    if getattr(args, "explain", False):
        from minicontainer.client.api import APIClient

        record = APIClient.record = []
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `minicontainer run hello-world | head -3`: the reader has gone, as has our point
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
        return 128 + 13  # as a program killed by SIGPIPE, as docker (a Go program) is
    except FileNotFoundError as e:
        from minicontainer.cli.format import local_error

        print(local_error(e) if e.filename else f"Error: {e}", file=sys.stderr)
        return 1
    except Exception as e:
        if type(e).__module__.startswith("minicontainer") or isinstance(e, (OSError, ValueError, LookupError)):
            print(f"{getattr(e, 'prefix', 'Error: ')}{e}", file=sys.stderr)
            return getattr(e, "exit_code", 1)
        raise
    finally:
        if record is not None:
            show_requests(record)


if __name__ == "__main__":
    sys.exit(main())
