"""The build context: the files a build may ``COPY``, sent to the daemon as one tar.

``docker build DIR`` does not let the daemon read ``DIR``: the client packs it into a tar and uploads
it with ``POST /build`` (the daemon may be on another machine).  ``.dockerignore`` in ``DIR`` lists
what stays behind (``.git``, ``node_modules``, ``*.log``...), so that a big or secret file is
neither uploaded nor copied into an image by a careless ``COPY . /app``.

Its patterns are Go's ``filepath.Match`` patterns, with Docker's additions (moby's
``patternmatcher``):

* ``*`` is any run of characters but ``/``, ``?`` one such character, ``[a-z]`` a class;
* ``**`` is any number of directories (``**/*.log``: a .log file anywhere);
* a pattern that names a directory excludes everything below it;
* ``!pattern`` brings back what an earlier pattern excluded: the *last* pattern that matches wins;
* blank lines and ``#`` comments are skipped; a leading ``/`` means the same as none.

The Dockerfile and ``.dockerignore`` are always sent, even when a pattern names them (the daemon
needs them; it reads them and leaves them out of what ``COPY`` sees).  The command line uses this
module: it imports only the standard library, and ``tarfile`` only when it packs.
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    import tarfile

IGNORE_FILE = ".dockerignore"


def read_patterns(text: str) -> list[str]:
    """The patterns of a ``.dockerignore`` (cleaned: ``./a//b/`` is ``a/b``)."""
    patterns = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        body = line[1:].strip() if negate else line
        body = posixpath.normpath(body).lstrip("/") if body else body
        if body in ("", "."):
            continue
        patterns.append(("!" if negate else "") + body)
    return patterns


def _regex(pattern: str) -> re.Pattern[str]:
    out = ""
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if pattern.startswith("/", i):  # "**/": zero or more whole directories
                out += "(?:.*/)?"
                i += 1
            else:
                out += ".*"
            continue
        if c == "*":
            out += "[^/]*"
        elif c == "?":
            out += "[^/]"
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                raise ValueError(f"syntax error in pattern {pattern!r}: '[' without ']'")
            body = pattern[i + 1:end]
            out += "[" + ("^" + body[1:] if body.startswith("^") else body) + "]"
            i = end
        elif c == "\\" and i + 1 < len(pattern):
            i += 1
            out += re.escape(pattern[i])
        else:
            out += re.escape(c)
        i += 1
    return re.compile(out + r"\Z")


class Ignore:
    """Decides, for a path relative to the context, whether ``.dockerignore`` leaves it out."""

    def __init__(self, patterns: Iterable[str]) -> None:
        self.rules = [(p.startswith("!"), _regex(p.lstrip("!"))) for p in patterns]
        self.has_exceptions = any(negate for negate, _ in self.rules)

    def excluded(self, rel: str) -> bool:
        rel = posixpath.normpath(rel).lstrip("/")
        parents = []
        head = posixpath.dirname(rel)
        while head:
            parents.append(head)
            head = posixpath.dirname(head)
        matched = False
        for negate, regex in self.rules:
            # A pattern naming a directory names everything below it too.
            hit = bool(regex.match(rel)) or any(regex.match(p) for p in parents)
            if hit:
                matched = not negate
        return matched

    @classmethod
    def of(cls, context_dir: str) -> Ignore:
        try:
            with open(os.path.join(context_dir, IGNORE_FILE), encoding="utf-8") as f:
                return cls(read_patterns(f.read()))
        except FileNotFoundError:
            return cls([])


def add_entry(tar: tarfile.TarFile, path: str, arcname: str, owner: tuple[int, int] | None = None,
              mtime: int | None = None) -> None:
    """One file, directory or link into ``tar`` with numeric owners (``owner`` replaces them if given)
    and, if ``mtime`` is given, that modification time (a reproducible layer's)."""
    info = tar.gettarinfo(path, arcname=arcname)
    info.uname = info.gname = ""
    if owner is not None:
        info.uid, info.gid = owner
    if mtime is not None:
        info.mtime = mtime
    if info.isreg():
        with open(path, "rb") as f:
            tar.addfile(info, f)
    else:
        tar.addfile(info)


def write_tar(context_dir: str, out: BinaryIO, dockerfile: str = "Dockerfile", extra: dict[str, bytes] | None = None) -> int:
    """The context as a tar (owners 0:0, as the docker CLI sends it), ``.dockerignore`` applied;
    returns how many entries were written.  ``dockerfile`` (relative to the context) is always in;
    ``extra`` files are added as given (a Dockerfile from outside the context)."""
    import io
    import tarfile

    ignore = Ignore.of(context_dir)
    keep = {posixpath.normpath(dockerfile), IGNORE_FILE}
    count = 0
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for top, dirs, files in os.walk(context_dir):
            dirs.sort()
            rel_top = os.path.relpath(top, context_dir)
            for name in sorted(dirs + files):
                rel = name if rel_top == "." else f"{rel_top}/{name}"
                if rel not in keep and ignore.excluded(rel):
                    if name in dirs and not ignore.has_exceptions:
                        dirs.remove(name)  # nothing below it can come back: do not even look
                    continue
                add_entry(tar, os.path.join(top, name), rel, (0, 0))
                count += 1
        for name, data in (extra or {}).items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
            count += 1
    return count
