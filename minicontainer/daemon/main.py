"""``minicontainerd``: run the engine behind the Docker Engine API, in the foreground.

Like ``dockerd`` it is meant to be started by a service manager (or in a terminal, where Ctrl-C
stops it) and logs to stderr.  Point a client at it with::

    export DOCKER_HOST=unix:///run/minicontainer/minicontainer.sock
    docker run --rm busybox echo hello
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

from minicontainer import config


def socket_path(host: str) -> str:
    """``unix:///run/x.sock`` -> ``/run/x.sock``.  Only unix sockets: a TCP socket without TLS would
    hand root to anyone on the network, which is not something to teach by default."""
    if not host.startswith("unix://"):
        raise ValueError(f"unsupported host {host!r}: only unix:///path/to.sock is supported")
    path = host[len("unix://"):]
    if not path.startswith("/"):
        raise ValueError(f"the socket path must be absolute: {host!r}")
    return path


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="minicontainerd", description="Serve the Docker Engine API on a unix socket.")
    p.add_argument("-H", "--host", default=None,
                   help="where to listen, unix:///path (default: $MINICONTAINER_HOST, else minicontainer.sock "
                        "in the exec root, /run/minicontainer/minicontainer.sock)")
    p.add_argument("--data-root", default=None,
                   help="images and containers (default: $MINICONTAINER_ROOT, daemon.json or /var/lib/minicontainer)")
    p.add_argument("--exec-root", default=None,
                   help="runtime state, gone at reboot (default: $MINICONTAINER_RUN or /run/minicontainer)")
    p.add_argument("-G", "--group", default=default_group(),
                   help="group that may use the socket, so that a notebook kernel running as a member can "
                        "(default: 'minicontainer' if that group exists, as Docker uses 'docker'; else root only)")
    p.add_argument("-l", "--log-level", default="info", choices=["debug", "info", "warning", "error"])
    args = p.parse_args(argv)
    if args.host is None:
        args.host = os.environ.get("MINICONTAINER_HOST") or \
            f"unix://{os.path.join(args.exec_root or config.run_root(), 'minicontainer.sock')}"
    return args


async def run(args: argparse.Namespace, path: str) -> None:
    # Imported here: the engine pulls in the image store and runtime; --help should not pay for that.
    from minicontainer.daemon.server import serve
    from minicontainer.engine.service import Engine

    engine = Engine(data_root=args.data_root or config.data_root(), run_root=args.exec_root or config.run_root())
    await engine.open()            # recovers containers' state after a restart of the daemon
    await serve(engine, path, group=args.group)


def default_group() -> str | None:
    """``minicontainer`` if the group exists: ``sudo groupadd minicontainer; sudo usermod -aG minicontainer
    $USER`` lets that user's notebooks talk to the daemon, as the ``docker`` group does for dockerd."""
    import grp

    try:
        grp.getgrnam("minicontainer")
        return "minicontainer"
    except KeyError:
        return None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        path = socket_path(args.host)
    except ValueError as e:
        print(f"minicontainerd: {e}", file=sys.stderr)
        return 2
    try:
        asyncio.run(run(args, path))
    except KeyboardInterrupt:      # a Ctrl-C before the signal handlers were in place
        return 130
    except (RuntimeError, OSError) as e:
        logging.getLogger("minicontainerd").error("%s", e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
