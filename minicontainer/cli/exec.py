"""``minicontainer exec`` and ``minicontainer attach``: into a running container, docker's way.

``exec [-d] [-i] [-t] [-e K=V] [--env-file F] [-w DIR] [-u USER] [--detach-keys K] CONTAINER CMD...``
sends what the docker CLI sends: ``POST /containers/{id}/exec`` (the exec instance), then
``POST /exec/{id}/start`` (hijacked, unless ``-d``), the terminal's size with ``-t``
(``/exec/{id}/resize``, again on every SIGWINCH), and once the stream ends ``GET /exec/{id}/json``
for the exit code, which is ours: the program's own, 126 if it cannot be executed, 127 if it is
not found.

``attach [--no-stdin] [--sig-proxy] [--detach-keys K] CONTAINER`` joins a running container's
streams (what ``run`` does without ``-d``).  Without a terminal, the signals we get go to the
container (:func:`proxy_signals`): Ctrl-C on ``attach``, ``start -a`` or a foreground ``run``
stops the program, not just the client.

The detach keys (ctrl-p ctrl-q unless ``--detach-keys``) leave a terminal session and the program
running: the daemon watches for them (``engine/detach.py``) and ends the stream; we then see the
process still running, and say so as docker does (``read escape sequence``, exit 1).
"""

from __future__ import annotations

import argparse
import sys
import time

from minicontainer.cli.session import DETACHED, Terminal, exit_status, proxy_signals, session, terminal_size


def cmd_exec(args: argparse.Namespace) -> int:
    from minicontainer.client.api import APIError

    if not args.command:
        print('"minicontainer exec" requires at least 2 arguments.\nSee \'minicontainer exec --help\'.',
              file=sys.stderr)
        return 1
    if args.tty and args.interactive and not sys.stdin.isatty() and not args.detach:
        print("the input device is not a TTY", file=sys.stderr)  # docker's words
        return 1
    env: list[str] = list(args.env)
    if args.env_file or args.env:
        from minicontainer.cli.containers import read_env_file, resolve_env  # only then: a big module

        env = resolve_env([line for path in args.env_file for line in read_env_file(path)] + env)
    body = {"User": args.user or "", "Privileged": False, "Tty": args.tty, "AttachStdin": args.interactive and not args.detach,
            "AttachStdout": not args.detach, "AttachStderr": not args.detach, "Detach": args.detach,
            "DetachKeys": args.detach_keys or "", "Env": env,
            "WorkingDir": args.workdir or "", "Cmd": args.command}
    if args.tty:
        body["ConsoleSize"] = terminal_size()
    from minicontainer.client.api import APIClient

    api = APIClient()
    since = time.monotonic_ns()  # --explain: the kernel steps the daemon records from now on
    try:
        exec_id = api.json("POST", f"/containers/{args.container}/exec", None, body)["Id"]
        if args.detach:
            api.request("POST", f"/exec/{exec_id}/start", None, {"Detach": True, "Tty": args.tty}).read()
            return 0
        stream = api.exec_start(exec_id, tty=args.tty, console_size=body.get("ConsoleSize"))
    except APIError as e:
        print(f"Error response from daemon: {e.message}", file=sys.stderr)
        return 1
    session(api, stream, interactive=args.interactive,
             terminal=Terminal(api, f"/exec/{exec_id}/resize") if args.tty else None)
    if args.explain:
        from minicontainer.cli.containers import explain

        explain(api, args.container, since, f"exec {' '.join(args.command)} in {args.container}")
    state = api.json("GET", f"/exec/{exec_id}/json")
    if state.get("Running"):
        print(DETACHED, file=sys.stderr)
        return 1
    return state.get("ExitCode") or 0


def cmd_attach(args: argparse.Namespace) -> int:
    from minicontainer.client.api import APIClient, APIError

    api = APIClient()
    try:
        info = api.json("GET", f"/containers/{args.container}/json")
        if not info["State"]["Running"]:
            print("You cannot attach to a stopped container, start it first", file=sys.stderr)  # docker's words
            return 1
        cid, config = info["Id"], info["Config"]
        stdin = config.get("OpenStdin", False) and not args.no_stdin
        stream = api.attach(cid, stdin=stdin, detach_keys=args.detach_keys)
        waiting = api.request("POST", f"/containers/{cid}/wait", {"condition": "next-exit"})
    except APIError as e:
        print(f"Error response from daemon: {e.message}", file=sys.stderr)
        return 1
    tty = bool(config.get("Tty"))
    with proxy_signals(api, cid, args.sig_proxy and not tty):
        session(api, stream, interactive=stdin, terminal=Terminal(api, f"/containers/{cid}/resize") if tty else None)
    return exit_status(api, cid, waiting, detached_code=1, keys_possible=tty and stdin)


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
    p.add_argument("--explain", action="store_true",
                   help="narrate the kernel steps (the cgroup join, each setns, the fork into the PID namespace)")
    p.add_argument("container")
    p.add_argument("command", nargs=argparse.REMAINDER)
    p.set_defaults(handler=cmd_exec)
    p = commands.add_parser("attach", help="attach our stdin, stdout and stderr to a running container")
    p.add_argument("--no-stdin", action="store_true", help="do not send our stdin")
    add_attach_flags(p)
    p.add_argument("container")
    p.set_defaults(handler=cmd_attach)


def add_attach_flags(p: argparse.ArgumentParser) -> None:
    """``--sig-proxy`` (``--sig-proxy=false`` turns it off) and ``--detach-keys``, as run, start and attach take."""
    # Docker's boolean flags take their value after "=" only (`--sig-proxy=false`): a value of its own
    # would swallow the next argument (`run --sig-proxy busybox`).  argparse matches a whole option
    # string before it splits at "=", so each spelling is an option of its own.
    p.add_argument("--sig-proxy", "--sig-proxy=true", "--sig-proxy=1", dest="sig_proxy", action="store_true",
                   default=True, help="pass the signals we get to the container (the default; --sig-proxy=false "
                                      "not to; never with a terminal)")
    p.add_argument("--sig-proxy=false", "--sig-proxy=0", dest="sig_proxy", action="store_false", help=argparse.SUPPRESS)
    p.add_argument("--detach-keys", help="the keys that leave the session (default ctrl-p,ctrl-q)")
