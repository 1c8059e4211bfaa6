"""``save``, ``load`` and ``import``: images to and from tar files, with docker's flags and messages.

* ``minicontainer save [-o FILE] [--format docker-archive|oci-archive] IMAGE...`` writes a tar to the
  file, or to stdout if it is not a terminal (``save busybox | ssh host minicontainer load``);
* ``minicontainer load [-i FILE] [-q]`` reads one, from the file or stdin;
* ``minicontainer export [-o FILE] CONTAINER`` writes a container's filesystem, flattened, as a tar;
* ``minicontainer import [-c CHANGE]... [-m MESSAGE] FILE|- [REPOSITORY[:TAG]]`` makes an image of a
  root filesystem tarball, and prints its ID.

Like docker's, they stream the tar to or from the daemon (``GET /images/get``, ``POST /images/load``,
``POST /images/create?fromSrc=-``): the file is read or written by the user who runs the command.
The formats themselves are explained in :mod:`minicontainer.image.archive`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator

from minicontainer.units import human_size

CHUNK = 1 << 20

TERMINAL_SAVE = "Cowardly refusing to save to a terminal. Use the -o flag or redirect."
TERMINAL_LOAD = "requested load from stdin, but stdin is empty"


def cmd_save(args: argparse.Namespace) -> int:
    from minicontainer.cli.images import daemon_client

    if not args.output and sys.stdout.isatty():  # a tar on a terminal is a screenful of noise (and can upset it)
        print(f"Error: {TERMINAL_SAVE}", file=sys.stderr)
        return 1
    api = daemon_client()
    # The names are checked before the first byte comes: a missing image fails here, as an error status.
    resp = api.request("GET", "/images/get", {"names": args.images, "format": args.format})
    return _write_tar(resp, args.output)


def cmd_export(args: argparse.Namespace) -> int:
    """``export``: a container's filesystem, flattened, as a tar (``import`` makes an image of it)."""
    from minicontainer.cli.images import daemon_client

    if not args.output and sys.stdout.isatty():
        print(f"Error: {TERMINAL_SAVE}", file=sys.stderr)
        return 1
    api = daemon_client()
    return _write_tar(api.request("GET", f"/containers/{args.container}/export"), args.output)


def _write_tar(resp, output: str | None) -> int:
    """A tar from the daemon to stdout, or to ``output`` whole or not at all."""
    if not output:
        while data := resp.read(CHUNK):
            sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return 0
    # Written beside the destination, then renamed: a failed save never leaves half a tar under the
    # name asked for (nor destroys a previous archive there).
    import tempfile

    target = os.path.abspath(output)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(target), prefix=".minicontainer-save-")
    try:
        with os.fdopen(fd, "wb") as f:
            while data := resp.read(CHUNK):
                f.write(data)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would be a surprise: as an ordinary new file
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return 0


def _chunks(source) -> Iterator[bytes]:
    """A file (or stdin) as the chunks of a streamed upload."""
    while data := source.read(CHUNK):
        yield data


class LoadPrinter:
    """``docker load``'s output: a bar per layer while it loads (on a terminal, unless ``-q``), then a
    ``Loaded image: ...`` line per image (always)."""

    def __init__(self, quiet: bool = False, out=None) -> None:
        self.out = out or sys.stdout
        self.bars = not quiet and self.out.isatty()
        self.drawing = False

    def __call__(self, msg: dict) -> None:
        if "stream" in msg:
            if self.drawing:
                self.out.write("\n")
                self.drawing = False
            self.out.write(msg["stream"])
            self.out.flush()
        elif self.bars and msg.get("progressDetail"):
            done, total = msg["progressDetail"]["current"], msg["progressDetail"]["total"] or 1
            filled = min(50, 50 * done // total)
            bar = "=" * max(filled - 1, 0) + (">" if filled else "") + " " * (50 - filled)
            self.out.write(f"\r{msg['id']}: {msg['status']} [{bar}]  {human_size(done)}/{human_size(total)}\x1b[K")
            self.out.flush()
            self.drawing = True


def cmd_load(args: argparse.Namespace) -> int:
    """The tar goes to the daemon as it is read (``POST /images/load``); its answer is the progress."""
    from minicontainer.cli.images import daemon_client, follow

    if not args.input and sys.stdin.isatty():  # as docker: nothing was piped in, and a terminal cannot type a tar
        print(f"Error: {TERMINAL_LOAD}", file=sys.stderr)
        return 1
    api = daemon_client()
    with open(args.input, "rb") if args.input else contextlib.nullcontext(sys.stdin.buffer) as source:
        resp = api.request("POST", "/images/load", {"quiet": int(args.quiet)}, _chunks(source),
                           headers={"Content-Type": "application/x-tar"})
    follow(resp, LoadPrinter(args.quiet))
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    """``POST /images/create?fromSrc=-`` with the tarball as the body; the daemon answers the new ID."""
    from minicontainer.cli.images import daemon_client, follow
    from minicontainer.image.archive import apply_changes
    from minicontainer.image.reference import parse

    if "://" in args.file:
        print("Error: importing from a URL is not supported: download the file, then import it",
              file=sys.stderr)
        return 1
    apply_changes({}, args.change)  # a bad --change is said before anything is sent
    params: dict = {"fromSrc": "-", "message": args.message or None, "changes": args.change}
    if args.reference:
        ref = parse(args.reference)
        if ref.digest:
            print(f"Error: cannot import to '{args.reference}': a digest names existing content, give a tag",
                  file=sys.stderr)
            return 1
        params.update(repo=ref.name, tag=ref.tag or "latest")
    api = daemon_client()
    with open(args.file, "rb") if args.file != "-" else contextlib.nullcontext(sys.stdin.buffer) as source:
        resp = api.request("POST", "/images/create", params, _chunks(source),
                           headers={"Content-Type": "application/x-tar"})
    ids: list[str] = []
    follow(resp, lambda msg: ids.append(msg.get("status", "")))
    print(ids[-1] if ids else "")
    return 0


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Register ``save``, ``load`` and ``import``."""
    p = commands.add_parser("save", help="write images to a tar archive (to stdout by default)",
                            description="Write images, with their layers and tags, to a tar archive that "
                                        "'load' (or docker load, or skopeo) reads back.")
    p.add_argument("images", nargs="+", metavar="IMAGE",
                   help="a tag (busybox:1.36), a repository (busybox: all its tags) or an image ID")
    p.add_argument("-o", "--output", help="write to this file instead of stdout")
    p.add_argument("--format", choices=("docker-archive", "oci-archive"), default="docker-archive",
                   help="docker-archive (docker save's, the default) or oci-archive (an OCI image layout)")
    p.set_defaults(handler=cmd_save)

    add_export(commands)
    p = commands.add_parser("load", help="load images from a tar archive (from stdin by default)",
                            description="Load the images of a docker-archive or OCI-layout tar (plain, gzip, "
                                        "bzip2, xz or zstd), with their tags.")
    p.add_argument("-i", "--input", help="read from this file instead of stdin")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(handler=cmd_load)

    p = commands.add_parser("import", help="make an image from a tarball of a root filesystem",
                            description="Make a one-layer image from a tar of files (plain, gzip or zstd) and "
                                        "print its ID.")
    p.add_argument("file", metavar="FILE|-", help="the tarball, or - for stdin")
    p.add_argument("reference", nargs="?", metavar="REPOSITORY[:TAG]")
    p.add_argument("-c", "--change", action="append", default=[],
                   help="a Dockerfile instruction for the config: CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, "
                        "ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR (repeatable)")
    p.add_argument("-m", "--message", default="", help="the history comment (default: Imported from -)")
    p.set_defaults(handler=cmd_import)


def add_export(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("export", help="write a container's filesystem to a tar (to stdout by default)",
                            description="The container's files, its image's layers and its own changes "
                                        "flattened into one tar: 'import' makes a one-layer image of it.")
    p.add_argument("container")
    p.add_argument("-o", "--output", help="write to this file instead of stdout")
    p.set_defaults(handler=cmd_export)
