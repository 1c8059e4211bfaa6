"""Making images from containers and Dockerfiles: ``commit`` and ``build``.

``commit`` is one request, ``POST /commit``; the daemon snapshots the container's writable layer
(:mod:`minicontainer.engine.commit`) and answers the new image's ID, which is printed as docker does.

``build`` packs the context directory into a tar (``.dockerignore`` applied here, on the client, as
docker's CLI does: :mod:`minicontainer.image.context`), uploads it with ``POST /build``, and prints
the daemon's output as it comes: ``Step 1/3 : FROM busybox``, `` ---> Running in ...``...
"""

from __future__ import annotations

import argparse
import os
import sys


def cmd_commit(args: argparse.Namespace) -> int:
    from minicontainer.cli.images import daemon_client, split_repo_tag

    repo, tag = split_repo_tag(args.reference) if args.reference else ("", "")
    params = {"container": args.container, "repo": repo, "tag": tag, "comment": args.message,
              "author": args.author, "pause": None if args.pause else 0, "changes": args.change}
    reply = daemon_client().json("POST", "/commit", params)
    print(reply["Id"])
    return 0


def _pause(text: str) -> bool:
    """``--pause=false``, ``--rm=false``: a Go boolean flag's words."""
    words = {"true": True, "1": True, "t": True, "false": False, "0": False, "f": False}
    if text.lower() not in words:
        raise argparse.ArgumentTypeError(f'invalid argument "{text}": expected true or false')
    return words[text.lower()]


def _key_values(given: list[str], *, from_env: bool) -> dict[str, str | None]:
    """``--build-arg K=V`` (``K`` alone: its value in this environment, as docker takes it)."""
    out: dict[str, str | None] = {}
    for item in given:
        key, eq, value = item.partition("=")
        out[key] = value if eq else (os.environ.get(key) if from_env else "")
    return out


def _context_tar(args: argparse.Namespace):
    """The context as a file to upload, and the Dockerfile's name inside it."""
    import tempfile

    from minicontainer.image.context import write_tar

    if args.path == "-":
        return sys.stdin.buffer, args.file or "Dockerfile"
    context = os.path.abspath(args.path)
    if not os.path.isdir(context):
        raise FileNotFoundError(2, "no such directory (the build context)", args.path)
    dockerfile = os.path.abspath(args.file) if args.file else os.path.join(context, "Dockerfile")
    if not os.path.exists(dockerfile):
        raise FileNotFoundError(2, "no such file or directory", dockerfile)
    extra = {}
    if os.path.commonpath([context, dockerfile]) == context:
        name = os.path.relpath(dockerfile, context)
    else:  # a Dockerfile from elsewhere travels in the tar under a name of its own, as docker's CLI does
        import secrets

        name = f".dockerfile.{secrets.token_hex(10)}"
        with open(dockerfile, "rb") as f:
            extra[name] = f.read()
    spool = tempfile.TemporaryFile()  # noqa: SIM115 - read by the upload; gone with the command
    write_tar(context, spool, name, extra)
    spool.seek(0)
    return spool, name


def cmd_build(args: argparse.Namespace) -> int:
    import json

    from minicontainer.client.api import APIClient, APIError
    from minicontainer.units import human_size

    source, name = _context_tar(args)
    api = APIClient()
    if source is not sys.stdin.buffer:
        size = os.fstat(source.fileno()).st_size
        if not args.quiet:
            print(f"Sending build context to Docker daemon  {human_size(size)}", flush=True)

    def chunks():
        while data := source.read(1 << 20):
            yield data

    params = {"t": args.tag, "dockerfile": name, "q": 1 if args.quiet else None, "nocache": 1 if args.no_cache else None,
              "pull": 1 if args.pull else None, "rm": 0 if not args.rm else None,
              "forcerm": 1 if args.force_rm else None, "target": args.target or None,
              "buildargs": json.dumps(_key_values(args.build_arg, from_env=True)) if args.build_arg else None,
              "labels": json.dumps(_key_values(args.label, from_env=False)) if args.label else None,
              "networkmode": args.network, "extrahosts": ",".join(args.add_host) or None,
              "explain": 1 if args.explain else None}
    resp = api.request("POST", "/build", params, chunks(), headers={"Content-Type": "application/x-tar"})
    pulls = None
    t0 = None
    for line in resp:
        if not line.strip():
            continue
        msg = json.loads(line)
        if "error" in msg:
            error = APIError(500, msg["error"])
            error.prefix = ""  # docker prints a build's error as it is
            error.exit_code = (msg.get("errorDetail") or {}).get("code") or 1  # type: ignore[attr-defined]
            raise error
        if "explain" in msg:
            from minicontainer.observe.events import Event
            from minicontainer.observe.explain import format_event

            event = Event.from_dict(msg["explain"])
            t0 = event.at_ns if t0 is None else t0
            print(format_event(event, t0), file=sys.stderr, flush=True)
        elif "stream" in msg:
            sys.stdout.write(msg["stream"])
            sys.stdout.flush()
        elif "status" in msg:  # a FROM image being pulled
            if pulls is None:
                from minicontainer.cli.images import PullPrinter

                pulls = PullPrinter()
            pulls(msg)
    return 0


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Register ``commit`` and ``build``."""
    p = commands.add_parser("commit", help="make an image of a container's changes",
                            description="Make a new image: the container's image with one more layer, "
                                        "everything the container changed (see 'diff').")
    p.add_argument("container")
    p.add_argument("reference", nargs="?", metavar="REPOSITORY[:TAG]")
    p.add_argument("-m", "--message", default="", help="the history comment")
    p.add_argument("-a", "--author", default="", help='author (e.g. "Jane Doe <jane@example.com>")')
    p.add_argument("-c", "--change", action="append", default=[],
                   help="a Dockerfile instruction for the config: CMD, ENTRYPOINT, ENV, EXPOSE, HEALTHCHECK, "
                        "LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR (repeatable)")
    p.add_argument("-p", "--pause", nargs="?", const=True, default=True, type=_pause, metavar="true|false",
                   help="pause the container while committing (the default; --pause=false not to)")
    p.set_defaults(handler=cmd_commit)

    p = commands.add_parser("build", help="build an image from a Dockerfile",
                            description="Build an image from the Dockerfile in PATH (the build context, sent to "
                                        "the daemon as a tar, without what .dockerignore lists), step by step, "
                                        "with the classic builder's output and cache.")
    p.add_argument("path", metavar="PATH", help="the build context: a directory, or - for a tar on stdin")
    p.add_argument("-t", "--tag", action="append", default=[], help="name:tag for the image (repeatable)")
    p.add_argument("-f", "--file", help="the Dockerfile (default: PATH/Dockerfile)")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the image ID")
    p.add_argument("--no-cache", action="store_true", help="do every step again, using no earlier result")
    p.add_argument("--pull", action="store_true", help="pull the FROM images even if they are here")
    p.add_argument("--build-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="a value for an ARG of the Dockerfile (repeatable)")
    p.add_argument("--label", action="append", default=[], metavar="KEY=VALUE", help="a label for the image")
    p.add_argument("--target", help="build only up to this stage")
    p.add_argument("--add-host", action="append", default=[], metavar="HOST:IP",
                   help="a line for the RUN steps' /etc/hosts (repeatable)")
    p.add_argument("--network", help="the network of the RUN steps' containers: bridge (the default), none, host, "
                                     "or a network's name")
    p.add_argument("--rm", nargs="?", const=True, default=True, type=_pause, metavar="true|false",
                   help="remove intermediate containers after a successful step (the default)")
    p.add_argument("--force-rm", action="store_true", help="remove intermediate containers even after a failure")
    p.add_argument("--explain", action="store_true",
                   help="narrate each step (its container, snapshot, layer, and the cache's decision) on stderr")
    p.set_defaults(handler=cmd_build)
