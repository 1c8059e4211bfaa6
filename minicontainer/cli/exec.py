"""``minicontainer exec`` and ``minicontainer attach``: into a running container, docker's way.

``exec [-d] [-i] [-t] [-e K=V] [--env-file F] [-w DIR] [-u USER] [--detach-keys K] CONTAINER CMD...``
sends what the docker CLI sends: ``POST /containers/{id}/exec`` (the exec instance), then
``POST /exec/{id}/start`` (hijacked, unless ``-d``), the terminal's size with ``-t``
(``/exec/{id}/resize``, again on every SIGWINCH), and once the stream ends ``GET /exec/{id}/json``
for the exit code, which is ours: the program's own, 126 if it cannot be executed, 127 if it is
not found.

``attach [--no-stdin] [--sig-proxy] [--detach-keys K] CONTAINER`` joins a running container's
streams (what ``run`` does without ``-d``).

The detach keys (ctrl-p ctrl-q unless ``--detach-keys``) leave a terminal session and the program
running: the daemon watches for them (``engine/detach.py``) and ends the stream; we then see the
process still running, and say so as docker does (``read escape sequence``, exit 1).
"""

from __future__ import annotations

import argparse
import sys
import threading

from minicontainer.cli.containers import (
    _copy_output,
    _pump_stdin,
    _Terminal,
    _terminal_size,
    client,
    read_env_file,
    resolve_env,
)

DETACHED = "read escape sequence"  # docker's words (moby/term's EscapeError) when the detach keys end a session


def cmd_exec(args: argparse.Namespace) -> int:
    from minicontainer.client.api import APIError

    if not args.command:
        print('"minicontainer exec" requires at least 2 arguments.\nSee \'minicontainer exec --help\'.',
              file=sys.stderr)
        return 1
    if args.tty and args.interactive and not sys.stdin.isatty() and not args.detach:
        print("the input device is not a TTY", file=sys.stderr)  # docker's words
        return 1
    env: list[str] = []
    for path in args.env_file:
        env += read_env_file(path)
    body = {"User": args.user or "", "Privileged": False, "Tty": args.tty, "AttachStdin": args.interactive and not args.detach,
            "AttachStdout": not args.detach, "AttachStderr": not args.detach, "Detach": args.detach,
            "DetachKeys": args.detach_keys or "", "Env": resolve_env(env + list(args.env)),
            "WorkingDir": args.workdir or "", "Cmd": args.command}
    if args.tty:
        body["ConsoleSize"] = _terminal_size()
    api = client()
    try:
        exec_id = api.json("POST", f"/containers/{args.container}/exec", None, body)["Id"]
        if args.detach:
            api.request("POST", f"/exec/{exec_id}/start", None, {"Detach": True, "Tty": args.tty}).read()
            return 0
        stream = api.exec_start(exec_id, tty=args.tty, console_size=body.get("ConsoleSize"))
    except APIError as e:
        print(f"Error response from daemon: {e.message}", file=sys.stderr)
        return 1
    _session(api, stream, interactive=args.interactive,
             terminal=_Terminal(api, f"/exec/{exec_id}/resize") if args.tty else None)
    state = api.json("GET", f"/exec/{exec_id}/json")
    if state.get("Running"):
        print(DETACHED, file=sys.stderr)
        return 1
    return state.get("ExitCode") or 0


def _session(api, stream, *, interactive: bool, terminal: _Terminal | None) -> None:
    """Our stdin to the stream (with -i; else we say at once that there will be none), the stream to our
    stdout and stderr, in our terminal's raw mode with -t."""
    if interactive:
        threading.Thread(target=_pump_stdin, args=(stream, bool(terminal)), daemon=True).start()
    else:
        stream.shutdown_write()
    if terminal is None:
        _copy_output(api, stream)
    else:
        with terminal.raw(interactive):
            _copy_output(api, stream)


def add_commands(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("exec", help="run a command in a running container")
    p.add_argument("-d", "--detach", action="store_true", help="run it in the background")
    p.add_argument("-i", "--interactive", action="store_true", help="keep stdin open (our stdin goes to it)")
    p.add_argument("-t", "--tty", action="store_true", help="give it a terminal of the container's own")
    p.add_argument("-e", "--env", action="append", default=[], metavar="KEY=VALUE", help="set an environment variable")
    p.add_argument("--env-file", action="append", default=[], metavar="FILE", help="read variables from a file")
    p.add_argument("-w", "--workdir", help="working directory inside the container")
    p.add_argument("-u", "--user", help="user[:group], by name (the image's /etc/passwd) or number")
    p.add_argument("--detach-keys", help="the keys that leave the session (default ctrl-p,ctrl-q)")
    p.add_argument("container")
    p.add_argument("command", nargs=argparse.REMAINDER)
    p.set_defaults(handler=cmd_exec)
