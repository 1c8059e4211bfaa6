"""``save``, ``load`` and ``import``: images to and from tar files, with docker's flags and messages.

* ``minicontainer save [-o FILE] [--format docker-archive|oci-archive] IMAGE...`` writes a tar to the
  file, or to stdout if it is not a terminal (``save busybox | ssh host minicontainer load``);
* ``minicontainer load [-i FILE] [-q]`` reads one, from the file or stdin;
* ``minicontainer import [-c CHANGE]... [-m MESSAGE] FILE|- [REPOSITORY[:TAG]]`` makes an image of a
  root filesystem tarball, and prints its ID.

The formats themselves are explained in :mod:`minicontainer.image.archive`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys

from minicontainer.cli.format import human_size

TERMINAL_SAVE = "Cowardly refusing to save to a terminal. Use the -o flag or redirect."
TERMINAL_LOAD = "requested load from stdin, but stdin is empty"


def cmd_save(args: argparse.Namespace) -> int:
    from minicontainer.engine import images
    from minicontainer.image import archive

    store = images.open_store()
    if not args.output:
        if sys.stdout.isatty():  # a tar on a terminal is a screenful of noise (and can upset it)
            print(f"Error: {TERMINAL_SAVE}", file=sys.stderr)
            return 1
        archive.save(store, args.images, sys.stdout.buffer, format=args.format)
        sys.stdout.buffer.flush()
        return 0
    # Written beside the destination, then renamed: a failed save never leaves half a tar under the
    # name asked for (nor destroys a previous archive there).
    import tempfile

    target = os.path.abspath(args.output)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(target), prefix=".minicontainer-save-")
    try:
        with os.fdopen(fd, "wb") as f:
            archive.save(store, args.images, f, format=args.format)
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
    from minicontainer.engine import images
    from minicontainer.image import archive

    store = images.open_store()
    printer = LoadPrinter(args.quiet)
    if args.input:
        with open(args.input, "rb") as f:
            archive.load(store, f, progress=printer)
        return 0
    if sys.stdin.isatty():  # as docker: nothing was piped in, and a terminal cannot type a tar
        print(f"Error: {TERMINAL_LOAD}", file=sys.stderr)
        return 1
    archive.load(store, sys.stdin.buffer, progress=printer)
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from minicontainer.engine import images
    from minicontainer.image import archive

    if "://" in args.file:
        print("Error: importing from a URL is not supported: download the file, then import it",
              file=sys.stderr)
        return 1
    store = images.open_store()
    if args.file == "-":
        image = archive.import_tarball(store, sys.stdin.buffer, reference=args.reference, changes=args.change,
                                       message=args.message)
    else:
        with open(args.file, "rb") as f:
            image = archive.import_tarball(store, f, reference=args.reference, changes=args.change,
                                           message=args.message)
    print(image.id)
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
