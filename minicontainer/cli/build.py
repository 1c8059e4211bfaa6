"""Making images from containers and Dockerfiles: ``commit`` and ``build``.

``commit`` is one request, ``POST /commit``; the daemon snapshots the container's writable layer
(:mod:`minicontainer.engine.commit`) and answers the new image's ID, which is printed as docker does.
"""

from __future__ import annotations

import argparse


def cmd_commit(args: argparse.Namespace) -> int:
    from minicontainer.cli.images import daemon_client, split_repo_tag

    repo, tag = split_repo_tag(args.reference) if args.reference else ("", "")
    params = {"container": args.container, "repo": repo, "tag": tag, "comment": args.message,
              "author": args.author, "pause": None if args.pause else 0, "changes": args.change}
    reply = daemon_client().json("POST", "/commit", params)
    print(reply["Id"])
    return 0


def _pause(text: str) -> bool:
    """``--pause=false``: a Go boolean flag's words."""
    words = {"true": True, "1": True, "t": True, "false": False, "0": False, "f": False}
    if text.lower() not in words:
        raise argparse.ArgumentTypeError(f'invalid argument "{text}" for "-p, --pause" flag: expected true or false')
    return words[text.lower()]


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Register ``commit``."""
    p = commands.add_parser("commit", help="make an image of a container's changes",
                            description="Make a new image: the container's image with one more layer, "
                                        "everything the container changed (see 'diff').")
    p.add_argument("container")
    p.add_argument("reference", nargs="?", metavar="REPOSITORY[:TAG]")
    p.add_argument("-m", "--message", default="", help="the history comment")
    p.add_argument("-a", "--author", default="", help='author (e.g. "Jane Doe <jane@example.com>")')
    p.add_argument("-c", "--change", action="append", default=[],
                   help="a Dockerfile instruction for the config: CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, "
                        "ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR (repeatable)")
    p.add_argument("-p", "--pause", nargs="?", const=True, default=True, type=_pause, metavar="true|false",
                   help="pause the container while committing (the default; --pause=false not to)")
    p.set_defaults(handler=cmd_commit)
