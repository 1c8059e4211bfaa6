"""A container's changes become an image layer: the other direction of :mod:`.layers`.

Everything a container wrote is in its overlay *upper* directory (:mod:`.overlay`), in overlayfs's
own notation.  An image layer is a tar in the OCI notation (image-spec ``layer.md``).  ``commit``
and every ``RUN`` of a build turn the first into the second:

=====================================  =========================================================
in ``upper/`` (overlayfs)              in the layer tar (OCI)
=====================================  =========================================================
a file, directory, symlink...          the same entry, with its mode, owner, mtime and xattrs
a character device 0:0 named ``NAME``  an empty file ``.wh.NAME``: "NAME of the layers below is deleted"
a directory with                       the directory, then ``DIR/.wh..wh..opq``: "hide every child
``trusted.overlay.opaque=y``           the layers below have in DIR"
two names of one inode                 a file, then a hard link to it
=====================================  =========================================================

:func:`~.layers.unpack` does exactly the reverse, so a committed layer unpacked again gives back
the upper directory it came from.  overlayfs's own bookkeeping (the other ``trusted.overlay.*``
attributes, such as ``origin`` or ``impure``) stays behind: it describes this mount, not the files.

Two overlayfs features would make ``upper/`` mean more than its files say: ``redirect_dir`` (a
renamed directory records where it came from instead of being copied) and ``metacopy`` (a
``chmod`` copies up the metadata only, the data stays below).  Both are off unless the ``overlay``
module is told otherwise; if a container was made with them on, the snapshot refuses rather than
write a layer that lacks data.
"""

from __future__ import annotations

import os
import stat
import tarfile
from typing import BinaryIO, NamedTuple

from minicontainer.image.layers import OPAQUE_MARKER, WHITEOUT_PREFIX
from minicontainer.image.overlay import is_opaque, is_whiteout

# Extended attributes a layer carries (as :mod:`.layers` accepts them back): user.* and security.*
# (file capabilities live in security.capability).  overlayfs's trusted.overlay.* never leave.
_KEPT_XATTRS = ("user.", "security.")
_UNREPRESENTABLE = {"trusted.overlay.redirect": "a renamed directory (overlayfs redirect_dir)",
                    "trusted.overlay.metacopy": "a metadata-only copy-up (overlayfs metacopy)"}


class SnapshotError(Exception):
    """The upper directory holds something an image layer cannot say."""


class Change(NamedTuple):
    """One entry of the layer, as ``--explain`` and the tests see it."""

    kind: str  # "file", "dir", "symlink", "link" (hard), "whiteout", "opaque", "device", "fifo"
    path: str  # relative to the container's root, no leading "/"


def is_empty(upper: str) -> bool:
    """Did the container change nothing at all?  (Then a commit adds no layer, as Docker's.)"""
    try:
        with os.scandir(upper) as it:
            return next(it, None) is None
    except FileNotFoundError:
        return True


def _xattrs(path: str) -> dict[str, str]:
    """The xattrs worth keeping, as PAX ``SCHILY.xattr.*`` records (values may be binary: tarfile
    writes a str with surrogates back as the original bytes)."""
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:  # ENOTSUP: a filesystem without xattrs
        return {}
    records: dict[str, str] = {}
    for name in names:
        if name in _UNREPRESENTABLE:
            raise SnapshotError(f"snapshot {path}: it is {_UNREPRESENTABLE[name]}, which an image layer cannot "
                                "hold; load the overlay module with redirect_dir=off metacopy=off")
        if name.startswith(_KEPT_XATTRS):
            value = os.getxattr(path, name, follow_symlinks=False)
            records["SCHILY.xattr." + name] = value.decode("utf-8", "surrogateescape")
    return records


def write_layer(upper: str, out: BinaryIO) -> list[Change]:
    """Write the OCI layer tar of ``upper`` (a container's overlay upper directory) to ``out``.

    Entries come parents first, names sorted, so the same changes always give the same bytes (and
    so the same DiffID).  Returns what was written, in order."""
    changes: list[Change] = []
    upper = os.path.abspath(upper)
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:

        def add(path: str, rel: str) -> None:
            st = os.lstat(path)
            if is_whiteout(st):
                head, name = os.path.split(rel)
                info = tarfile.TarInfo(os.path.join(head, WHITEOUT_PREFIX.decode() + name))
                info.mtime = int(st.st_mtime)
                tar.addfile(info)
                changes.append(Change("whiteout", rel))
                return
            info = tar.gettarinfo(path, arcname=rel)  # a second name of an inode becomes a hard link
            info.uname = info.gname = ""  # numeric owners: the names are the image's, not this host's
            info.pax_headers = _xattrs(path)
            if info.isreg():
                with open(path, "rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)
            kind = {tarfile.DIRTYPE: "dir", tarfile.SYMTYPE: "symlink", tarfile.LNKTYPE: "link",
                    tarfile.FIFOTYPE: "fifo", tarfile.CHRTYPE: "device", tarfile.BLKTYPE: "device"}
            changes.append(Change(kind.get(info.type, "file"), rel))
            if stat.S_ISDIR(st.st_mode) and is_opaque(path):
                marker = tarfile.TarInfo(os.path.join(rel, OPAQUE_MARKER.decode()))
                marker.mtime = int(st.st_mtime)
                tar.addfile(marker)
                changes.append(Change("opaque", rel))

        for top, dirs, files in os.walk(upper):
            dirs.sort()
            rel_top = os.path.relpath(top, upper)
            for name in sorted(dirs + files):
                add(os.path.join(top, name), name if rel_top == "." else os.path.join(rel_top, name))
    return changes
