"""An attached session, on our side: a hijacked stream between our terminal and a container's program.

``run`` (without ``-d``), ``start -a``, ``attach`` and ``exec`` all end up here, with a connection
the daemon has turned into a raw stream (``client/api.hijack``): our stdin goes one way (with
``-i``), the program's output comes back (framed, or raw with a terminal), and with ``-t`` our
terminal is in raw mode and its size follows ours.  Without a terminal our signals go to the
container (:func:`proxy_signals`, docker's ``--sig-proxy``).

Standard library only, and light: ``exec`` starts with this module, not with the container commands'.
"""

from __future__ import annotations

import contextlib
import sys

DETACHED = "read escape sequence"  # docker's words (moby/term's EscapeError) when the detach keys end a session


def terminal_size() -> list[int]:
    """[rows, columns] of the terminal we run in, or [0, 0] without one."""
    import os

    try:
        size = os.get_terminal_size(sys.stdout.fileno())
    except OSError:
        return [0, 0]
    return [size.lines, size.columns]


class Terminal:
    """``run -t``: the container's terminal is sized like ours, and follows when ours is resized; with
    ``-i`` ours goes into raw mode, so that each key (Ctrl-C too) reaches the program as typed."""

    def __init__(self, api, resize_path: str) -> None:
        self.api, self.resize_path = api, resize_path  # /containers/{id}/resize, or /exec/{id}/resize

    def resize(self, *_signal_args) -> None:
        rows, columns = terminal_size()
        if rows and columns:
            from minicontainer.client.api import APIError
            from minicontainer.client.http import ProtocolError

            with contextlib.suppress(APIError, OSError, ProtocolError):  # the container may have ended
                self.api.request("POST", self.resize_path, {"h": rows, "w": columns}).read()

    @contextlib.contextmanager
    def raw(self, interactive: bool):
        import signal
        import termios
        import tty

        self.resize()
        previous = signal.signal(signal.SIGWINCH, self.resize)
        saved = None
        if interactive and sys.stdin.isatty():
            saved = termios.tcgetattr(sys.stdin.fileno())
            tty.setraw(sys.stdin.fileno())
        try:
            yield
        finally:
            if saved is not None:
                termios.tcsetattr(sys.stdin.fileno(), termios.TCSADRAIN, saved)
            signal.signal(signal.SIGWINCH, previous)


def pump_stdin(stream, raw: bool = False) -> None:
    """Our stdin to the container's.  With a terminal, byte by byte as typed (no line buffering)."""
    import os

    while True:
        if raw:
            data = os.read(sys.stdin.fileno(), 1024)
        else:
            data = sys.stdin.buffer.read1(65536) if hasattr(sys.stdin.buffer, "read1") else \
                sys.stdin.buffer.read(65536)
        if not data:
            stream.shutdown_write()
            return
        stream.sendall(data)


def copy_output(api, stream) -> None:
    for kind, data in api.frames(stream):
        out = sys.stdout if kind == 1 else sys.stderr
        out.buffer.write(data)
        out.flush()
    stream.close()


def session(api, stream, *, interactive: bool, terminal: Terminal | None) -> None:
    """Our stdin to the stream (with -i; else we say at once that there will be none), the stream to our
    stdout and stderr, in our terminal's raw mode with -t."""
    if interactive:
        import threading

        threading.Thread(target=pump_stdin, args=(stream, bool(terminal)), daemon=True).start()
    else:
        stream.shutdown_write()
    if terminal is None:
        copy_output(api, stream)
    else:
        with terminal.raw(interactive):
            copy_output(api, stream)


def exit_status(api, cid: str, waiting, *, detached_code: int, keys_possible: bool = True) -> int:
    """After an attached stream ends: the container's exit code (the ``wait`` sent before), unless it is
    still running, which means the detach keys ended the stream: docker's ``run`` then exits 0, its
    ``attach`` and ``start -a`` say "read escape sequence" and exit 1.  (The daemon looks for the keys
    only in a terminal's input: without both, ``keys_possible`` is false and the wait answers.)"""
    import json

    from minicontainer.client.api import APIError

    if not keys_possible:
        return int(json.loads(waiting.read()).get("StatusCode", 125))
    try:
        running = api.json("GET", f"/containers/{cid}/json")["State"]["Running"]
    except APIError as e:
        if e.status != 404:
            raise
        running = False  # removed already (--rm): the wait has its exit code
    if running:
        waiting.close()
        if detached_code:
            print(DETACHED, file=sys.stderr)
        return detached_code
    return int(json.loads(waiting.read()).get("StatusCode", 125))


@contextlib.contextmanager
def proxy_signals(api, cid: str, enabled: bool = True):
    """``--sig-proxy`` (docker's default): while we wait for a container in the foreground, the signals
    we get (Ctrl-C is SIGINT) go to it, as ``POST /containers/{id}/kill?signal=NAME``, so that Ctrl-C
    stops ``run redis`` as it would stop redis in this shell.  Not SIGCHLD, SIGPIPE, SIGURG: those are
    about us.  (With a terminal in raw mode, Ctrl-C is not a signal at all: it is byte 3, typed into
    the container's terminal.)"""
    if not enabled:
        yield
        return
    import signal

    from minicontainer.client.api import APIError
    from minicontainer.client.http import ProtocolError

    def forward(number: int, _frame) -> None:
        name = signal.Signals(number).name.removeprefix("SIG")
        with contextlib.suppress(APIError, OSError, ProtocolError):  # it may have ended meanwhile: as docker, ignore
            api.request("POST", f"/containers/{cid}/kill", {"signal": name}).read()

    skip = {signal.SIGKILL, signal.SIGSTOP, signal.SIGCHLD, signal.SIGPIPE, signal.SIGURG}
    previous = {}
    for sig in signal.Signals:
        if sig not in skip and sig < signal.SIGRTMIN:
            previous[sig] = signal.signal(sig, forward)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
