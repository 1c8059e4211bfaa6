"""``minicontainer-runtime``: the OCI runtime's command line, the same as runc's.

    minicontainer-runtime [--root DIR] [--explain] create --bundle B [--pid-file F] ID
    minicontainer-runtime start ID
    minicontainer-runtime state ID
    minicontainer-runtime kill ID [SIGNAL]
    minicontainer-runtime delete [--force] ID
    minicontainer-runtime run [--bundle B] [--pid-file F] [--detach] ID
    minicontainer-runtime exec [--process F | -e K=V --cwd D -u UID[:GID]] [-t --console-socket S] [-d] ID [ARGS...]
    minicontainer-runtime list | spec | events ID

so that one bundle can be run by both, and their behaviour compared.  Exit codes follow Docker's
(see :mod:`minicontainer.runtime.errors`).  This module is on the start-up path of every container:
it imports only what the command needs.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys

from minicontainer.runtime.errors import EXIT_RUNTIME_FAILURE, RuntimeFailure
from minicontainer.runtime.state import DEFAULT_ROOT


def parse_signal(text: str) -> int:
    """``9``, ``KILL`` or ``SIGKILL``: all three spellings runc and kill(1) accept."""
    if text.isdigit():
        if int(text) not in signal.valid_signals():
            raise RuntimeFailure(f"invalid signal {text} (signals are 1 to {signal.SIGRTMAX})")
        return int(text)
    name = text.upper()
    name = name if name.startswith("SIG") else "SIG" + name
    try:
        return int(signal.Signals[name])
    except KeyError:
        raise RuntimeFailure(f"unknown signal '{text}' (try TERM, KILL, USR1 or a number)") from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="minicontainer-runtime",
                                description="An OCI runtime in readable Python: bundle in, isolated process out.")
    p.add_argument("--root", default=os.environ.get("MINICONTAINER_RUNTIME_ROOT", DEFAULT_ROOT),
                   help=f"directory for container state (default {DEFAULT_ROOT})")
    p.add_argument("--explain", action="store_true",
                   help="narrate every kernel step on stderr (also kept in the state dir's events.jsonl)")
    # runc's global flags, as containerd passes them: errors go to --log as well, in --log-format.
    p.add_argument("--log", help="also write errors to this file")
    p.add_argument("--log-format", choices=("text", "json"), default="text")
    p.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--systemd-cgroup", action="store_true", help=argparse.SUPPRESS)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_bundle(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--bundle", "-b", default=".", help="the bundle directory (config.json + rootfs)")
        sp.add_argument("--pid-file", help="write the container's init PID here")
        sp.add_argument("--console-socket", help=argparse.SUPPRESS)

    sp = sub.add_parser("create", help="set a container up; its program waits for `start`")
    with_bundle(sp)
    sp.add_argument("id")
    sp = sub.add_parser("start", help="run the program of a created container")
    sp.add_argument("id")
    sp = sub.add_parser("state", help="print a container's state as OCI JSON")
    sp.add_argument("id")
    sp = sub.add_parser("kill", help="send a signal (default SIGTERM) to a container's PID 1")
    sp.add_argument("--all", "-a", action="store_true", help="signal every process in the container")
    sp.add_argument("id")
    sp.add_argument("signal", nargs="?", default="SIGTERM")
    sp = sub.add_parser("delete", help="remove a container (its cgroup, its state)")
    sp.add_argument("--force", "-f", action="store_true", help="kill it first if it is running")
    sp.add_argument("id")
    sp = sub.add_parser("run", help="create + start + wait, then delete; exits with the program's code")
    with_bundle(sp)
    sp.add_argument("--detach", "-d", action="store_true", help="return once started; do not wait")
    sp.add_argument("id")
    sp = sub.add_parser("exec", help="run another process in a running container (joins its namespaces)")
    sp.add_argument("--process", "-p", help="an OCI process object (JSON file) to run, instead of ARGS")
    sp.add_argument("--tty", "-t", action="store_true", help="a terminal of the container's own (needs "
                                                             "--console-socket)")
    sp.add_argument("--console-socket", help="a unix socket that receives the terminal's master side")
    sp.add_argument("--detach", "-d", action="store_true", help="return once it runs; do not wait")
    sp.add_argument("--pid-file", help="write the process's PID here")
    sp.add_argument("--cwd", help="working directory (default: the container's)")
    sp.add_argument("--env", "-e", action="append", default=[], help="KEY=value, on top of the container's")
    sp.add_argument("--user", "-u", help="UID[:GID] (default: the container's user)")
    sp.add_argument("id")
    sp.add_argument("args", nargs=argparse.REMAINDER, metavar="ARGS")
    sub.add_parser("list", help="list the containers in --root")
    sp = sub.add_parser("spec", help="write a default config.json into the bundle directory")
    sp.add_argument("--bundle", "-b", default=".")
    sp.add_argument("--rootless", action="store_true", help="with a user namespace (root inside only)")
    sp = sub.add_parser("events", help="narrate the kernel steps recorded for a container")
    sp.add_argument("id")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse: usage errors are runtime failures (125), help is 0
        return EXIT_RUNTIME_FAILURE if e.code else 0
    try:
        if args.systemd_cgroup:
            raise RuntimeFailure("--systemd-cgroup: systemd cgroup management is not supported; minicontainer "
                                 "manages cgroupfs directly")
        return _dispatch(args)
    except KeyboardInterrupt:
        return 130
    except Exception as e:
        code = getattr(e, "exit_code", EXIT_RUNTIME_FAILURE)
        if not isinstance(e, (RuntimeFailure, OSError)) and type(e).__name__ != "CgroupError":
            raise  # a bug: let the traceback show it
        _report(args, str(e))
        return code


def _report(args: argparse.Namespace, message: str) -> None:
    print(f"minicontainer-runtime: {message}", file=sys.stderr)
    if args.log:
        import time

        with open(args.log, "a") as f:
            if args.log_format == "json":
                f.write(json.dumps({"level": "error", "msg": message,
                                    "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}) + "\n")
            else:
                f.write(f"error: {message}\n")


def _dispatch(args: argparse.Namespace) -> int:
    from minicontainer.kernel.syscalls import Syscalls
    from minicontainer.runtime import lifecycle

    syscalls = Syscalls()
    cmd = args.command

    def explain(title: str) -> None:
        if args.explain:
            from minicontainer.observe.explain import narrate

            narrate(syscalls.trace.events, sys.stderr, title=title)
            syscalls.trace.events.clear()

    console = getattr(args, "console_socket", None)

    def hand_over(fd: int) -> None:
        """The terminal's master side to --console-socket.  Without one, or if that fails, the container
        is no use to anyone (runc says the same): the caller deletes it."""
        if not console:
            os.close(fd)
            raise RuntimeFailure("process.terminal is true: give --console-socket PATH (a unix socket that "
                                 "receives the terminal's master side, as with runc), or set it to false")
        try:
            hand_over_console(console, fd)
        except OSError as e:
            raise RuntimeFailure(f"--console-socket {console}: {e.strerror or e}") from None

    if cmd == "create":
        try:
            state = lifecycle.create(syscalls, args.root, args.id, args.bundle, args.pid_file)
            if state.console_fd >= 0:
                try:
                    hand_over(state.console_fd)
                except RuntimeFailure:
                    lifecycle.delete(syscalls, args.root, args.id, force=True)
                    raise
        finally:
            explain(f"create {args.id}")
        return 0
    if cmd == "start":
        lifecycle.start(syscalls, args.root, args.id)
        explain(f"start {args.id}")
        return 0
    if cmd == "run":
        try:
            return lifecycle.run(syscalls, args.root, args.id, args.bundle, pid_file=args.pid_file,
                                 detach=args.detach, on_step=lambda step: explain(f"{step} {args.id}"),
                                 on_console=hand_over)
        finally:
            explain(f"delete {args.id}")
    if cmd == "exec":
        return _exec(args, syscalls, hand_over, explain)
    if cmd == "state":
        print(json.dumps(lifecycle.state_of(args.root, args.id), indent=2))
        return 0
    if cmd == "kill":
        lifecycle.kill(syscalls, args.root, args.id, parse_signal(args.signal), all_processes=args.all)
        return 0
    if cmd == "delete":
        lifecycle.delete(syscalls, args.root, args.id, force=args.force)
        explain(f"delete {args.id}")
        return 0
    if cmd == "list":
        print(f"{'ID':<20} {'PID':<8} {'STATUS':<10} {'BUNDLE':<40} CREATED")
        for st in lifecycle.list_all(args.root):
            status = st.status
            pid = st.pid if status in ("created", "running") else 0
            print(f"{st.id:<20} {pid:<8} {status:<10} {st.bundle:<40} {st.created}")
        return 0
    if cmd == "spec":
        from minicontainer.runtime.defaults import default_config

        path = os.path.join(args.bundle, "config.json")
        if os.path.exists(path):
            raise RuntimeFailure(f"'{path}' exists already: remove it first")
        with open(path, "w") as f:
            json.dump(default_config(user_namespace=args.rootless), f, indent=2)
        return 0
    if cmd == "events":
        from minicontainer.observe.events import read_jsonl
        from minicontainer.observe.explain import narrate
        from minicontainer.runtime.state import State

        narrate(read_jsonl(State.load(args.root, args.id).events_file), sys.stdout, title=args.id)
        return 0
    raise AssertionError(cmd)


def _exec(args: argparse.Namespace, syscalls, hand_over, explain) -> int:
    """``exec``: start the process, hand its terminal over, then (unless --detach) wait for it, passing
    it our signals, and exit with its code, as runc does."""
    from minicontainer.kernel.syscalls import PR_SET_CHILD_SUBREAPER
    from minicontainer.runtime import exec as runtime_exec
    from minicontainer.runtime import lifecycle
    from minicontainer.runtime.parent import _kill_and_reap, _write_pid_file

    if args.process:
        given = [flag for flag, value in (("--cwd", args.cwd), ("--env", args.env), ("--user", args.user),
                                          ("ARGS", args.args)) if value]
        if given:
            raise RuntimeFailure(f"exec --process: {', '.join(given)} cannot be given as well (put them in "
                                 "the process file)")
        process = runtime_exec.load_process(args.process)
        if args.tty:
            process = process._replace(terminal=True)
    else:
        uid = gid = None
        if args.user:
            user, _, group = args.user.partition(":")
            if not user.isdigit() or group and not group.isdigit():
                raise RuntimeFailure(f"exec --user '{args.user}': give numeric UID[:GID] (names are the "
                                     "image's business: the engine resolves them)")
            uid, gid = int(user), int(group) if group else None
        args_ = args.args[1:] if args.args[:1] == ["--"] else args.args
        process = runtime_exec.process_for(runtime_exec.container_process(args.root, args.id), args_,
                                           env=args.env, cwd=args.cwd, uid=uid, gid=gid, terminal=args.tty)
    if process.terminal and not args.console_socket:
        raise RuntimeFailure("exec: a terminal (-t or process.terminal) needs --console-socket PATH (a unix "
                             "socket that receives the terminal's master side, as with runc)")
    if not args.detach:
        # The exec'd process's parent (the exec stage) exits at once: adopt the process, to wait for it.
        syscalls.prctl(PR_SET_CHILD_SUBREAPER, 1, detail="adopt the exec'd process, to wait for its exit status")
    try:
        started = runtime_exec.start(syscalls, args.root, args.id, process)
    except BaseException:
        if not args.detach:
            _reap_adopted()
        raise
    finally:
        explain(f"exec {args.id}")
    try:
        if started.console_fd >= 0:
            hand_over(started.console_fd)
        if args.pid_file:
            _write_pid_file(args.pid_file, started.pid)
    except BaseException:
        _kill_and_reap(started.pid)
        raise
    if args.detach:
        return 0
    return lifecycle.wait_forwarding_signals(started.pid)


def _reap_adopted(timeout: float = 2.0) -> None:
    """A failed exec (a program not found, say): the process that reported the failure exits on its
    own, and as a subreaper we adopted it.  Collect it before we exit, or it would pass, unreaped, to
    whoever adopts our orphans (a zombie keeps a v1 cgroup from being removed)."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return  # none left
        if pid == 0:
            time.sleep(0.005)


def hand_over_console(path: str, fd: int) -> None:
    """runc's console socket: connect to ``path`` and send the terminal's master side (SCM_RIGHTS);
    whoever listens there (a shim, a test, `recvtty`) then reads and writes the container's terminal."""
    import socket

    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(path)
            socket.send_fds(sock, [b"console"], [fd])
    finally:
        os.close(fd)


if __name__ == "__main__":
    sys.exit(main())

