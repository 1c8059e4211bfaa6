"""``minicontainer cp``: files between this host and a container, as ``docker cp`` copies them.

    minicontainer cp [-a] [-L] [-q] CONTAINER:SRC DEST|-
    minicontainer cp [-a] [-q] SRC|- CONTAINER:DEST

Both ways are a tar over the Engine API (``GET``/``PUT /containers/{id}/archive``), with a ``HEAD``
first to learn what is at the container's side.  The daemon resolves the container's paths inside
its root; this side handles the host's, with the rights of whoever runs the command.  Docker's
naming rules:

* to an existing directory: the copy goes *into* it, under its own name;
* to a path that does not exist: the copy gets that name (its parent must exist);
* a symbolic link is copied as a link; ``-L`` copies what a source link points to instead;
* ``-`` is a tar on stdin or stdout, as it is.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
from collections.abc import Iterator

CHUNK = 1 << 20
GO_MODE_DIR = 1 << 31  # Go's os.ModeDir, in the daemon's path stat


def split(arg: str) -> tuple[str | None, str]:
    """``web:/etc/hosts`` -> (``web``, ``/etc/hosts``); a local path -> (None, path).  As docker reads
    it, a path with a slash before the colon (``./a:b``) is local."""
    if arg.startswith(("/", ".")) or ":" not in arg:
        return None, arg
    container, _, path = arg.partition(":")
    return (container, path) if "/" not in container else (None, arg)


def path_stat(api, container: str, path: str) -> dict:
    """``HEAD /containers/{id}/archive?path=``: the daemon's description of what is at ``path``."""
    resp = api.request("HEAD", f"/containers/{container}/archive", {"path": path})
    resp.read()
    return json.loads(base64.b64decode(resp.headers.get("x-docker-container-path-stat") or "e30="))


def cmd_cp(args: argparse.Namespace) -> int:
    from minicontainer.cli.images import daemon_client

    (src_c, src), (dst_c, dst) = split(args.source), split(args.destination)
    if bool(src_c) == bool(dst_c):
        which = "both" if src_c else "neither"
        print("Error: copying between containers is not supported" if src_c else
              f'Error: must specify at least one container source ({which} of "{args.source}" and '
              f'"{args.destination}" names a container: CONTAINER:PATH)', file=sys.stderr)
        return 1
    if not (src if src_c else dst):
        print("Error: filesystem path in a container cannot be empty", file=sys.stderr)
        return 1
    api = daemon_client()
    if src_c:
        return _copy_out(api, src_c, src, dst, follow=args.follow_link, quiet=args.quiet)
    return _copy_in(api, src, dst_c, dst, copy_uid_gid=args.archive, quiet=args.quiet)


# --- out of a container -------------------------------------------------------------------------


def _copy_out(api, container: str, src: str, dest: str, *, follow: bool, quiet: bool) -> int:
    import tarfile

    if follow:
        link = path_stat(api, container, src).get("linkTarget")
        src = link or src
    resp = api.request("GET", f"/containers/{container}/archive", {"path": src})
    if dest == "-":
        while data := resp.read(CHUNK):
            sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return 0
    stat = json.loads(base64.b64decode(resp.headers.get("x-docker-container-path-stat") or "e30="))
    if os.path.isdir(dest) and not dest.endswith("/."):
        into, rename = dest, None                        # into it, under the source's name
    else:
        parent = os.path.dirname(os.path.abspath(dest.rstrip("/") or "/"))
        if dest.endswith("/") and not stat.get("mode", 0) & GO_MODE_DIR:
            print(f"Error: destination directory \"{dest}\" does not exist", file=sys.stderr)
            resp.close()
            return 1
        if not os.path.isdir(parent):
            print(f"Error: lstat {parent}: no such file or directory", file=sys.stderr)
            resp.close()
            return 1
        into, rename = parent, os.path.basename(dest.rstrip("/"))
    counted = _Counted(resp)
    with tarfile.open(fileobj=counted, mode="r|") as tar:
        tar.chown = lambda *_args, **_kwargs: None  # type: ignore[method-assign]  # the files are the user's, as docker's
        tar.extractall(into, members=_checked(_renamed(tar, stat.get("name", ""), rename), into))
    if not quiet:
        _say(counted.size, dest)
    return 0


def _renamed(tar, top: str, new: str | None) -> Iterator:
    """The archive's entries, the top one (and what is under it) renamed to ``new`` if given."""
    for member in tar:
        if new and (member.name == top or member.name.startswith(top + "/")):
            member.name = new + member.name[len(top):]
        yield member


def _checked(members: Iterator, into: str) -> Iterator:
    """Each entry only if it lands inside ``into``: no absolute name, no ``..``, and no parent that is
    a link leading out (an entry ``a`` linking to ``/etc``, then ``a/passwd``)."""
    top = os.path.realpath(into)
    for member in members:
        parts = member.name.split("/")
        if member.name.startswith("/") or ".." in parts:
            raise ValueError(f"refusing the archive's entry {member.name!r}: it would land outside {into}")
        parent = os.path.realpath(os.path.join(top, os.path.dirname(member.name)))
        if parent != top and not parent.startswith(top + os.sep):
            raise ValueError(f"refusing the archive's entry {member.name!r}: a link leads it outside {into}")
        if member.islnk() and (member.linkname.startswith("/") or ".." in member.linkname.split("/")):
            raise ValueError(f"refusing the archive's hard link {member.name!r} -> {member.linkname!r}")
        yield member


class _Counted:
    """A reader that counts what passes through it (for "Successfully copied 2.05kB")."""

    def __init__(self, source) -> None:
        self.source = source
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self.source.read(n)
        self.size += len(data)
        return data


def _say(size: int, where: str) -> None:
    from minicontainer.units import human_size

    print(f"Successfully copied {human_size(size)} to {where}", file=sys.stderr)


# --- into a container ---------------------------------------------------------------------------


def _copy_in(api, src: str, container: str, dest: str, *, copy_uid_gid: bool, quiet: bool) -> int:
    from minicontainer.client.api import APIError

    params = {"noOverwriteDirNonDir": "true", "copyUIDGID": "true" if copy_uid_gid else None}
    if src == "-":  # a tar, as it is, into the directory dest
        api.request("PUT", f"/containers/{container}/archive", {"path": dest, **params},
                    _read_chunks(sys.stdin.buffer), headers={"Content-Type": "application/x-tar"}).read()
        return 0
    os.lstat(src)  # a missing source is said before anything is sent (lstat X: no such file...)
    try:
        stat = path_stat(api, container, dest)
    except APIError as e:
        if e.status != 404:
            raise
        stat = None
    if stat and stat.get("linkTarget"):  # a link at the destination: copy to where it leads
        dest = stat["linkTarget"]
        stat = path_stat(api, container, dest)
    if stat and stat.get("mode", 0) & GO_MODE_DIR:
        into, name = dest, os.path.basename(os.path.normpath(src))
    elif stat and os.path.isdir(src):
        print(f"Error: cannot copy a directory to a file: {dest}", file=sys.stderr)
        return 1
    elif not stat and dest.endswith("/"):
        print(f'Error: destination directory "{dest}" does not exist in the container', file=sys.stderr)
        return 1
    else:  # a new name, or a file replaced
        into, name = os.path.dirname(dest.rstrip("/")) or "/", os.path.basename(dest.rstrip("/"))
    chunks = _Tar(src, name)
    api.request("PUT", f"/containers/{container}/archive", {"path": into, **params}, iter(chunks),
                headers={"Content-Type": "application/x-tar"}).read()
    if not quiet:
        _say(chunks.size, f"{container}:{dest}")
    return 0


def _read_chunks(source) -> Iterator[bytes]:
    while data := source.read(CHUNK):
        yield data


class _Tar:
    """A tar of ``path`` (its top entry named ``name``), made in a thread as it is sent: a large
    directory is never held whole in memory."""

    def __init__(self, path: str, name: str) -> None:
        self.path, self.name, self.size = path, name, 0

    def __iter__(self) -> Iterator[bytes]:
        import queue
        import tarfile
        import threading

        chunks: queue.Queue = queue.Queue(maxsize=16)

        class Writer:
            def write(self, data: bytes) -> int:
                chunks.put(bytes(data))
                return len(data)

        def run() -> None:
            try:
                with tarfile.open(fileobj=Writer(), mode="w|", format=tarfile.PAX_FORMAT) as tar:
                    tar.add(self.path, arcname=self.name)  # links stay links (no dereference)
                chunks.put(None)
            except BaseException as e:  # noqa: BLE001 - raised on the sending side
                chunks.put(e)

        threading.Thread(target=run, daemon=True).start()
        while (item := chunks.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            self.size += len(item)
            yield item


def add_command(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("cp", help="copy files between a container and this host",
                            description="Copy files between a container and this host: CONTAINER:SRC DEST, or "
                                        "SRC CONTAINER:DEST ('-' for a tar on stdin or stdout).")
    p.add_argument("-a", "--archive", action="store_true", help="give the files the container user's UID:GID")
    p.add_argument("-L", "--follow-link", action="store_true", help="follow a symbolic link in SRC")
    p.add_argument("-q", "--quiet", action="store_true", help="no 'Successfully copied' line")
    p.add_argument("source", metavar="SRC", help="CONTAINER:PATH, a path on this host, or -")
    p.add_argument("destination", metavar="DEST", help="CONTAINER:PATH, a path on this host, or -")
    p.set_defaults(handler=cmd_cp)
