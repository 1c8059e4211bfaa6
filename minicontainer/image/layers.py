"""Unpacking a layer: a (compressed) tar stream becomes a directory that overlayfs can stack.

A layer is a tar file of the files an image step added or changed, plus *whiteouts* for what it
deleted (OCI image-spec ``layer.md``):

* ``DIR/.wh.NAME`` means "NAME is deleted": it hides ``DIR/NAME`` of the layers below;
* ``DIR/.wh..wh..opq`` means "DIR is opaque": it hides every child of DIR from the layers below
  (not the layer's own children of DIR, wherever the marker stands in the tar).

Each layer is unpacked into a directory of its own, which overlayfs later stacks as a ``lowerdir``
(:mod:`minicontainer.image.overlay`).  So the whiteouts are written the way overlayfs itself
records deletions in an upper directory:

* a deleted NAME becomes a **character device 0:0** named NAME;
* an opaque DIR gets the extended attribute ``trusted.overlay.opaque=y``;
* the ``.wh.`` files themselves never appear.

Two rules of the spec need care in that translation: a whiteout only hides *lower* layers, so if
the layer also has NAME itself, NAME stays (and, if it is a directory, is made opaque: the lower
NAME was deleted, this layer's NAME replaces it).

**Safety.**  A layer comes from the network; a malicious one may try to write outside its directory.
Every entry is refused, with :class:`UnsafeLayer` naming it and the rule, when it would:

* have an absolute name (``/etc/passwd``).  Docker quietly strips the leading ``/``; we refuse,
  because no tool that builds images writes such names, and a refusal is easier to reason about;
* have a ``..`` component (``../../etc/passwd``);
* go *through* a symlink: ``a -> /etc`` then ``a/passwd`` would write ``/etc/passwd``.  Every parent
  directory is checked with ``lstat`` (never followed) before anything is created in it;
* be a hard link to such a path (``../../etc/shadow``, or ``a/shadow`` through the symlink ``a``).

Files are created with ``O_CREAT | O_EXCL | O_NOFOLLOW`` (an existing entry, symlink or not, is
removed first and never opened), and ownership and times are set with the ``follow_symlinks=False``
variants.  The checks can be done once per directory and remembered because the destination is a
fresh private directory (the store's ``tmp/``) that nothing else writes to while we unpack.  On any
error the caller removes the whole half-unpacked directory: the store's
:meth:`~minicontainer.image.store.Store.add_layer` does.

**One pass.**  The DiffID (sha256 of the *uncompressed* tar, the value listed in the image config's
``rootfs.diff_ids``) is computed on the same bytes as they are unpacked, including whatever follows
the tar's end marker, so the layer is read exactly once.

**Speed.**  ``tarfile`` parses each header in Python at ~11 µs and its stream mode re-copies its buffer
on every small read; a layer of 35,000 small files would spend longer parsing than ``tar`` takes to
unpack it.  So the reader here is our own: one ``struct.unpack`` per 512-byte header, file data
written straight from the decompressor's 1 MiB chunks (``memoryview``, no copy), and the
decompression (plus hashing) in a second thread: zlib, zstd and sha256 release the GIL, so they run
while this thread makes the ``open``/``write``/``fchown`` system calls, just as ``tar -xzf`` runs
``gzip -d`` in a second process.  ``benchmarks/bench_unpack.py`` measures it against ``tar``.
"""

from __future__ import annotations

import errno
import hashlib
import os
import queue
import stat
import struct
import threading
import zlib
from collections.abc import Iterator
from typing import BinaryIO, NamedTuple

CHUNK = 1 << 20  # read, decompress and write in 1 MiB pieces
BLOCK = 512  # a tar file is a sequence of 512-byte blocks
_ZERO_BLOCK = bytes(BLOCK)

WHITEOUT_PREFIX = b".wh."
OPAQUE_MARKER = b".wh..wh..opq"
_AUFS_META_PREFIX = b".wh..wh."  # AUFS bookkeeping (.wh..wh.plnk, .wh..wh.aufs): skipped, as Docker does
OPAQUE_XATTR = "trusted.overlay.opaque"  # overlayfs: "hide the lower layers' children of this directory"

# Extended attributes a layer may set: user.* and security.* (file capabilities, e.g. ping's
# cap_net_raw, live in security.capability).  Never trusted.* (trusted.overlay.* would let a layer
# forge whiteouts or redirects in our own overlay mounts) nor system.* (ACLs: left out for now).
_XATTR_NAMESPACES = (b"user.", b"security.")


class UnpackResult(NamedTuple):
    diff_id: str  # sha256 of the uncompressed tar stream: the image config's rootfs.diff_ids entry
    size: int  # bytes of regular-file data unpacked (each hard-linked file counted once)


class LayerError(Exception):
    """The layer cannot be unpacked: a corrupt, truncated or unsupported archive."""


class UnsafeLayer(LayerError):
    """An entry would land outside the layer's directory."""

    def __init__(self, entry: bytes | str, rule: str) -> None:
        self.entry = entry if isinstance(entry, str) else entry.decode("utf-8", "replace")
        self.rule = rule
        super().__init__(f"unsafe layer: entry '{self.entry}' {rule}; the layer is refused")


# --- decompression: compressed bytes in, uncompressed chunks out --------------------------------


def compression_of(media_type: str) -> str:
    """``gzip``, ``zstd`` or ``none``, from the layer's media type; ``sniff`` when none is given.

    OCI: ``application/vnd.oci.image.layer.v1.tar`` (+``+gzip``, +``+zstd``);
    Docker: ``application/vnd.docker.image.rootfs.diff.tar.gzip`` (and the ``foreign`` variant).
    """
    mt = (media_type or "").lower()
    if not mt:
        return "sniff"  # e.g. a `docker save` archive: its layers come without a media type
    if mt.endswith(("+gzip", ".tar.gzip", ".tar.gz")):
        return "gzip"
    if mt.endswith(("+zstd", ".tar.zstd")):
        return "zstd"
    if mt.endswith(".tar"):
        return "none"
    raise LayerError(f"unsupported layer media type '{media_type}' (expected a tar, tar+gzip or tar+zstd)")


class _Peeked:
    """A stream whose first bytes were already read (to look at the magic number)."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self.head, self.rest = head, rest

    def read(self, n: int = -1) -> bytes:
        if self.head:
            data, self.head = self.head, b""
            return data
        return self.rest.read(n)


def _gunzip(source: BinaryIO) -> Iterator[bytes]:
    # 16 + MAX_WBITS: expect a gzip header, and check the CRC-32 and length in its trailer.
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    data = source.read(CHUNK)
    if not data:
        raise LayerError("the layer is empty (expected a gzip stream)")
    while True:
        out = d.decompress(data, CHUNK)  # at most CHUNK out: a small "gzip bomb" cannot fill memory
        if out:
            yield out
        if d.eof:
            data = d.unused_data or source.read(CHUNK)
            if not data:
                return
            d = zlib.decompressobj(16 + zlib.MAX_WBITS)  # another gzip member follows (pigz, cat a.gz b.gz)
        elif d.unconsumed_tail or len(out) == CHUNK:
            data = d.unconsumed_tail  # more output is waiting for room
        else:
            data = source.read(CHUNK)
            if not data:
                raise LayerError("the gzip stream ends early (a truncated download?)")


def _unzstd(source: BinaryIO) -> Iterator[bytes]:
    import zstandard  # only zstd layers pay for importing it

    reader = zstandard.ZstdDecompressor().stream_reader(source, read_size=CHUNK, read_across_frames=True,
                                                         closefd=False)
    while chunk := reader.read(CHUNK):
        yield chunk


def uncompressed_chunks(source: BinaryIO, media_type: str) -> Iterator[bytes]:
    """The layer's tar stream, in chunks of at most 1 MiB, decompressed as the media type says."""
    kind = compression_of(media_type)
    if kind == "sniff":
        head = source.read(CHUNK)
        kind = "gzip" if head[:2] == b"\x1f\x8b" else "zstd" if head[:4] == b"\x28\xb5\x2f\xfd" else "none"
        source = _Peeked(head, source)  # type: ignore[assignment]
    if kind == "gzip":
        yield from _gunzip(source)
    elif kind == "zstd":
        yield from _unzstd(source)
    else:
        while chunk := source.read(CHUNK):
            yield chunk


class _Prefetch:
    """Runs an iterator of chunks in a thread, ``depth`` chunks ahead, hashing each one on the way.

    The decompressor and sha256 release the GIL while they work, so they overlap with the main
    thread's system calls.  :meth:`close` stops the thread (also after an error) before returning,
    so nothing reads the source after :func:`unpack` has returned.
    """

    _END = object()

    def __init__(self, chunks: Iterator[bytes], depth: int = 4) -> None:
        self.hash = hashlib.sha256()
        self._chunks = chunks
        self._queue: queue.Queue = queue.Queue(depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="layer-decompress", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        last: object = self._END
        try:
            for chunk in self._chunks:
                self.hash.update(chunk)
                if not self._put(chunk):
                    return
        except Exception as e:  # noqa: BLE001 - handed over to the main thread, which raises it
            last = e
        finally:
            close = getattr(self._chunks, "close", None)
            if close:
                close()  # a generator stopped part-way: let it clean up now, in this thread
        self._put(last)

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def next(self) -> bytes:
        """The next chunk, or b"" at the end of the stream."""
        item = self._queue.get()
        if item is self._END:
            self._queue.put(item)  # stay at the end for any later call
            return b""
        if isinstance(item, BaseException):
            self._queue.put(item)
            if isinstance(item, zlib.error) or type(item).__name__ == "ZstdError":
                raise LayerError(f"the layer's compressed stream is corrupt: {item}") from item
            raise item
        return item

    def close(self) -> None:
        self._stop.set()
        while self._thread.is_alive():
            try:
                self._queue.get(timeout=0.05)  # unblock a put() waiting for room
            except queue.Empty:
                pass
        self._thread.join()


# --- the tar stream: 512-byte headers and data, read out of the chunks ---------------------------


class _TarStream:
    """Reads blocks and file data out of the uncompressed chunks, copying as little as possible."""

    def __init__(self, chunks: _Prefetch) -> None:
        self._chunks = chunks
        self._buf = b""
        self._view = memoryview(self._buf)
        self._pos = 0

    def _refill(self) -> bool:
        chunk = self._chunks.next()
        if not chunk:
            return False
        self._buf, self._view, self._pos = chunk, memoryview(chunk), 0
        return True

    def read(self, n: int) -> bytes:
        """Exactly ``n`` bytes (b"" if the stream ends right here; an error if it ends part-way)."""
        end = self._pos + n
        if end <= len(self._buf):
            data = self._buf[self._pos:end]
            self._pos = end
            return data
        parts = [self._buf[self._pos:]]
        have = len(parts[0])
        while have < n:
            if not self._refill():
                if have == 0:
                    return b""
                raise LayerError("the tar stream ends in the middle of an entry (a truncated layer?)")
            take = min(n - have, len(self._buf))
            parts.append(self._buf[:take])
            self._pos = take
            have += take
        return b"".join(parts)

    def copy_to(self, fd: int, n: int) -> None:
        """Write the next ``n`` bytes to ``fd``, straight from the chunks (no copy)."""
        while n:
            if self._pos == len(self._buf) and not self._refill():
                raise LayerError("the tar stream ends in the middle of a file (a truncated layer?)")
            take = min(n, len(self._buf) - self._pos)
            view = self._view[self._pos:self._pos + take]
            while view:
                view = view[os.write(fd, view):]
            self._pos += take
            n -= take

    def skip(self, n: int) -> None:
        while n:
            if self._pos == len(self._buf) and not self._refill():
                raise LayerError("the tar stream ends in the middle of an entry (a truncated layer?)")
            take = min(n, len(self._buf) - self._pos)
            self._pos += take
            n -= take

    def drain(self) -> None:
        """Read to the end: the DiffID covers the padding after the tar's end marker too."""
        while self._refill():
            pass
        self._pos = len(self._buf)


class Entry(NamedTuple):
    """One tar header, after PAX and GNU long-name headers were applied to it."""

    name: bytes
    mode: int  # permission bits, incl. setuid/setgid/sticky
    uid: int
    gid: int
    size: int
    mtime_ns: int
    type: bytes  # b"0" file, b"1" hard link, b"2" symlink, b"3" char, b"4" block, b"5" dir, b"6" fifo
    linkname: bytes
    devmajor: int
    devminor: int
    xattrs: dict[bytes, bytes]


#                      name mode uid gid size mtime chksum type linkname magic ver (uname gname) maj min prefix
_HEADER = struct.Struct("100s 8s 8s 8s 12s 12s 8s c 100s 6s 2s 64x 8s 8s 155s 12x")
_REGULAR = (b"0", b"\0", b"7")  # "7" is a "contiguous file": a regular file everywhere but on old Unices
_NO_XATTRS: dict[bytes, bytes] = {}
_MAX_META = 16 << 20  # a PAX or long-name header holds names and xattrs: kilobytes, not gigabytes


def _number(field: bytes) -> int:
    """A numeric header field: octal text, or GNU base-256 (high bit set) for values octal cannot hold."""
    try:
        return int(field.rstrip(b"\0 "), 8)  # the common case: "0000644\0", "012345\0 " (int() skips spaces)
    except ValueError:
        return _number_slow(field)


def _number_slow(field: bytes) -> int:
    if field[:1] and field[0] & 0x80:
        if field[0] == 0xFF:  # negative (a time before 1970)
            return int.from_bytes(field, "big", signed=True)
        return int.from_bytes(bytes([field[0] & 0x7F]) + field[1:], "big")
    text = field.split(b"\0", 1)[0].strip()
    return int(text, 8) if text else 0


def _cstring(field: bytes) -> bytes:
    return field.split(b"\0", 1)[0]


def parse_header(block: bytes) -> Entry:
    """A 512-byte ustar/GNU header -> :class:`Entry` (numbers decoded, checksum verified)."""
    (name, mode, uid, gid, size, mtime, chksum, typ, linkname, magic, _version, devmajor, devminor,
     prefix) = _HEADER.unpack(block)
    try:
        expected = _number(chksum)
    except ValueError:
        expected = -1
    # The checksum is the sum of the header's bytes with its own field counted as 8 spaces.
    if expected != sum(block) - sum(chksum) + 8 * 32 and \
            expected != sum(struct.unpack("148b8x356b", block)) + 8 * 32:  # old tars summed signed bytes
        raise LayerError("a tar header's checksum is wrong: the layer is not a tar file, or is corrupt")
    try:
        name = _cstring(name)
        if magic == b"ustar\0" and prefix[0]:  # POSIX ustar: long names are split into prefix + name
            name = _cstring(prefix) + b"/" + name
        if typ == b"\0" and name.endswith(b"/"):  # pre-POSIX tars marked directories by a trailing slash
            typ = b"5"
        return Entry(name, _number(mode) & 0o7777, _number(uid), _number(gid), _number(size),
                     _number(mtime) * 1_000_000_000, typ, _cstring(linkname),
                     _number(devmajor) if typ in (b"3", b"4") else 0,
                     _number(devminor) if typ in (b"3", b"4") else 0, _NO_XATTRS)
    except ValueError as e:
        raise LayerError(f"a tar header has a field that is not a number ({e}): the layer is corrupt") from None


def parse_pax(data: bytes) -> dict[bytes, bytes]:
    """PAX extended header records: ``"<length> <key>=<value>\\n"``, the length counting the whole record."""
    records: dict[bytes, bytes] = {}
    pos = 0
    try:
        while pos < len(data) and data[pos]:
            space = data.index(b" ", pos)
            length = int(data[pos:space])
            record = data[space + 1:pos + length]
            if length <= space - pos or not record.endswith(b"\n"):
                raise ValueError("bad record length")
            key, _, value = record[:-1].partition(b"=")
            records[key] = value
            pos += length
    except ValueError as e:
        raise LayerError(f"a PAX extended header is corrupt ({e})") from None
    return records


def _pax_time_ns(value: bytes) -> int:
    """``1700000000.123456789`` (decimal seconds) -> nanoseconds, without float rounding."""
    seconds, _, fraction = value.partition(b".")
    ns = int(seconds) * 1_000_000_000
    frac = int((fraction + b"000000000")[:9]) if fraction else 0
    return ns - frac if seconds.startswith(b"-") else ns + frac


def _apply_pax(entry: Entry, pax: dict[bytes, bytes]) -> Entry:
    changes: dict[str, object] = {}
    xattrs: dict[bytes, bytes] = {}
    for key, value in pax.items():
        if key == b"path":
            changes["name"] = value
        elif key == b"linkpath":
            changes["linkname"] = value
        elif key in (b"size", b"uid", b"gid"):
            changes[key.decode()] = int(value)
        elif key == b"mtime":
            changes["mtime_ns"] = _pax_time_ns(value)
        elif key.startswith(b"SCHILY.xattr."):  # GNU tar --xattrs, Go's archive/tar, BuildKit
            xattrs[key[13:]] = value
        elif key.startswith(b"LIBARCHIVE.xattr."):  # bsdtar: name URL-encoded, value base64
            import base64
            import urllib.parse
            xattrs[urllib.parse.unquote_to_bytes(key[17:])] = base64.b64decode(value)
        elif key.startswith(b"GNU.sparse."):
            raise LayerError(f"entry '{entry.name.decode('utf-8', 'replace')}' is a sparse file, which is "
                             "not supported")
    if xattrs:
        changes["xattrs"] = xattrs
    return entry._replace(**changes) if changes else entry


def entries(stream: _TarStream) -> Iterator[Entry]:
    """The tar's entries, PAX (``x``) and GNU long-name (``L``, ``K``) headers folded into the next one.

    After an entry is yielded, the caller reads (or skips) its ``size`` bytes of data; the padding up to
    the next block boundary is skipped here.
    """
    pax: dict[bytes, bytes] = {}
    long_name = long_link = b""
    while True:
        block = stream.read(BLOCK)
        if not block or block == _ZERO_BLOCK:  # the end-of-archive marker (or a tar without one)
            return
        entry = parse_header(block)
        if entry.type in (b"x", b"g", b"L", b"K"):
            if entry.size > _MAX_META:
                raise LayerError(f"a tar extended header of {entry.size} bytes: the layer is corrupt")
            data = stream.read(entry.size)
            stream.skip(-entry.size % BLOCK)
            if entry.type == b"x":
                pax.update(parse_pax(data))
            elif entry.type == b"L":
                long_name = _cstring(data)
            elif entry.type == b"K":
                long_link = _cstring(data)
            # b"g": a PAX *global* header (git archive puts the commit id there); ignored, as by Docker.
            continue
        if long_name or long_link:
            entry = entry._replace(name=long_name or entry.name, linkname=long_link or entry.linkname)
        if pax:
            entry = _apply_pax(entry, pax)
        yield entry
        pax, long_name, long_link = {}, b"", b""
        if entry.type in _REGULAR:
            stream.skip(-entry.size % BLOCK)


# --- writing the entries into the layer directory -----------------------------------------------


def clean_name(name: bytes) -> bytes:
    """``./usr//bin/`` -> ``usr/bin``; ``b""`` is the layer's root.  Absolute and ``..`` names are refused."""
    if name.startswith(b"/"):
        raise UnsafeLayer(name, "is an absolute path (entries must be relative to the layer's root)")
    if b"\0" in name:
        raise UnsafeLayer(name, "contains a NUL byte")
    parts = name.split(b"/")
    if b".." in parts:
        raise UnsafeLayer(name, "has a '..' component, which could climb out of the layer")
    if b"" in parts or b"." in parts:
        parts = [p for p in parts if p and p != b"."]
    return b"/".join(parts)


# A new file, never an existing one: O_EXCL fails on anything already there (a symlink included, which
# is therefore never followed); O_NOFOLLOW says the same once more.
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def _umask() -> int:
    """The process's umask, read without changing it (``os.umask`` can only swap, which races threads)."""
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    return 0o777  # unknown: assume the worst, so that every file gets an explicit fchmod


class _LayerWriter:
    """Creates the entries below ``dest``, never following a symlink, and remembers what it checked."""

    def __init__(self, dest: str) -> None:
        self.root = os.fsencode(os.path.abspath(dest))
        self.dirs: set[bytes] = {b""}  # paths (relative to root) known to be real directories
        self.whiteouts: set[bytes] = set()  # paths this layer deleted (char 0:0 devices)
        self.dir_meta: dict[bytes, tuple[int, int]] = {}  # dir -> (mode, mtime_ns), set at the end
        self.is_root = os.geteuid() == 0
        # Who owns a file we create: ourselves, as long as no directory is setgid (their modes are only
        # set at the end, in finish(), unless dest itself is setgid).  fchown is skipped for those.
        setgid = os.stat(self.root).st_mode & stat.S_ISGID
        self.new_owner = (-1, -1) if setgid else (os.geteuid(), os.getegid())
        self.umask = _umask()
        self.size = 0

    def path(self, rel: bytes) -> bytes:
        return self.root + b"/" + rel if rel else self.root

    # -- checking the way to an entry ----------------------------------------------------------------
    def parent(self, rel: bytes, name: bytes, *, create: bool = True) -> None:
        """Make sure every directory above ``rel`` is a real directory of this layer (creating missing
        ones unless ``create`` is false); refuse to go through a symlink."""
        parent = rel.rpartition(b"/")[0]
        if parent in self.dirs:
            return
        parts = parent.split(b"/")
        for i in range(1, len(parts) + 1):
            prefix = b"/".join(parts[:i])
            if prefix in self.dirs:
                continue
            path = self.path(prefix)
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                if not create:
                    raise LayerError(f"entry '{_show(name)}' refers to '{_show(prefix)}', which is not in "
                                     "this layer") from None
                os.mkdir(path, 0o755)  # a parent the tar does not list: tar of single files does that
                self.dirs.add(prefix)
                continue
            if stat.S_ISDIR(st.st_mode):
                self.dirs.add(prefix)
            elif stat.S_ISLNK(st.st_mode):
                raise UnsafeLayer(name, f"goes through '{_show(prefix)}', a symlink in this layer: writing "
                                        "through it could land outside the layer")
            elif create and prefix in self.whiteouts:
                self.replace_whiteout_with_dir(prefix)  # "deleted NAME, then NAME/x": a new directory NAME
            else:
                raise LayerError(f"entry '{_show(name)}': '{_show(prefix)}' is not a directory")

    def clear(self, rel: bytes) -> bool:
        """Remove whatever is at ``rel`` (an earlier entry of the same name: the later one wins).
        Returns True if it was one of this layer's whiteouts."""
        path = self.path(rel)
        st = os.lstat(path)
        if stat.S_ISDIR(st.st_mode):
            import shutil  # rare: a directory replaced by a file
            shutil.rmtree(path)  # rmtree never follows symlinks
            self.forget_dirs(rel)
        else:
            os.unlink(path)
        if rel in self.whiteouts:
            self.whiteouts.discard(rel)
            return True
        return False

    def forget_dirs(self, rel: bytes) -> None:
        """``rel`` is no longer a directory: drop it and everything below it from what we remembered."""
        below = rel + b"/"
        self.dirs = {d for d in self.dirs if d != rel and not d.startswith(below)}
        self.dir_meta = {d: m for d, m in self.dir_meta.items() if d != rel and not d.startswith(below)}
        self.whiteouts = {w for w in self.whiteouts if not w.startswith(below)}

    def replace_whiteout_with_dir(self, rel: bytes) -> None:
        os.unlink(self.path(rel))
        self.whiteouts.discard(rel)
        os.mkdir(self.path(rel), 0o755)
        self.set_opaque(rel)
        self.dirs.add(rel)

    # -- whiteouts --------------------------------------------------------------------------------
    def set_opaque(self, rel: bytes) -> None:
        try:
            os.setxattr(self.path(rel), OPAQUE_XATTR, b"y", follow_symlinks=False)
        except PermissionError:
            raise LayerError("an opaque directory needs the trusted.overlay.opaque xattr, which only root "
                             "can set: unpack layers as root") from None

    def whiteout(self, rel: bytes, name: bytes) -> None:
        """``DIR/.wh.NAME`` -> a char device 0:0 at DIR/NAME; ``DIR/.wh..wh..opq`` -> DIR is opaque."""
        self.parent(rel, name)
        parent, _, base = rel.rpartition(b"/")
        if base == OPAQUE_MARKER:
            self.set_opaque(parent)
            return
        target = base[len(WHITEOUT_PREFIX):]
        if target in (b"", b".", b"..") or target.startswith(_AUFS_META_PREFIX):
            raise UnsafeLayer(name, "is a whiteout of an invalid name")
        target_rel = parent + b"/" + target if parent else target
        path = self.path(target_rel)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            try:
                os.mknod(path, stat.S_IFCHR | 0o000, 0)  # overlayfs's own sign for "deleted"
            except PermissionError:
                raise LayerError("a whiteout is a character device 0:0, which only root can create: unpack "
                                 "layers as root") from None
            self.whiteouts.add(target_rel)
            return
        # NAME is also in this layer: it stays (a whiteout hides lower layers only).  A directory
        # replaces the lower NAME entirely, so it becomes opaque; a file hides the lower one anyway.
        if stat.S_ISDIR(st.st_mode):
            self.set_opaque(target_rel)

    # -- entries ----------------------------------------------------------------------------------
    def add(self, e: Entry, stream: _TarStream) -> None:
        rel = clean_name(e.name)
        parent, _, base = rel.rpartition(b"/")
        if WHITEOUT_PREFIX in rel:  # (one quick test that leaves the common case alone)
            if base.startswith(WHITEOUT_PREFIX):
                if e.type in _REGULAR:
                    stream.skip(e.size)
                if base.startswith(_AUFS_META_PREFIX) and base != OPAQUE_MARKER:
                    return  # AUFS bookkeeping
                self.whiteout(rel, e.name)
                return
            if (b"/" + rel).find(b"/" + _AUFS_META_PREFIX) >= 0:  # inside an AUFS bookkeeping directory
                if e.type in _REGULAR:
                    stream.skip(e.size)
                return
        if not rel:  # "./": the layer's root directory itself
            if e.type != b"5":
                raise LayerError(f"entry '{_show(e.name)}' names the layer's root but is not a directory")
            self.directory(rel, e)
            return
        if parent not in self.dirs:
            self.parent(rel, e.name)
        t = e.type
        if t in _REGULAR:
            self.regular(rel, e, stream)
        elif t == b"5":
            self.directory(rel, e)
        elif t == b"2":
            self.symlink(rel, e)
        elif t == b"1":
            self.hardlink(rel, e)
        elif t in (b"3", b"4", b"6"):
            self.special(rel, e)
        else:
            raise LayerError(f"entry '{_show(e.name)}' has tar type {t!r}, which is not supported")

    def _create(self, rel: bytes, make) -> None:
        """Run ``make(path)``; if an entry of that name exists already, remove it and try once more."""
        path = self.path(rel)
        try:
            make(path)
        except FileExistsError:
            self.clear(rel)
            make(path)

    def regular(self, rel: bytes, e: Entry, stream: _TarStream) -> None:
        path = self.path(rel)
        try:
            fd = os.open(path, _NEW_FILE, e.mode & 0o777)
        except FileExistsError:
            self.clear(rel)
            fd = os.open(path, _NEW_FILE, e.mode & 0o777)
        try:
            stream.copy_to(fd, e.size)
            if self.is_root and (e.uid, e.gid) != self.new_owner:
                os.fchown(fd, e.uid, e.gid)
            # open() applied the umask; setuid/setgid/sticky bits must come after fchown (which clears them).
            if e.mode & 0o7000 or e.mode & self.umask:
                os.fchmod(fd, e.mode)
            if e.xattrs:
                self.xattrs(fd, e)  # after fchown, which drops security.capability
            os.utime(fd, ns=(e.mtime_ns, e.mtime_ns))
        finally:
            os.close(fd)
        self.size += e.size

    def directory(self, rel: bytes, e: Entry) -> None:
        if rel not in self.dirs:
            path = self.path(rel)
            try:
                os.mkdir(path, 0o755)
            except FileExistsError:
                if not stat.S_ISDIR(os.lstat(path).st_mode):
                    if self.clear(rel):
                        os.mkdir(path, 0o755)
                        self.set_opaque(rel)  # the layer deleted the lower NAME and made a new directory
                    else:
                        os.mkdir(path, 0o755)
            self.dirs.add(rel)
        path = self.path(rel)
        if self.is_root:
            os.chown(path, e.uid, e.gid, follow_symlinks=False)
        if e.xattrs:
            self.xattrs(path, e)
        # Mode and mtime last: creating the directory's entries would change its mtime again, and a
        # read-only directory would refuse them (to a non-root user).
        self.dir_meta[rel] = (e.mode, e.mtime_ns)

    def symlink(self, rel: bytes, e: Entry) -> None:
        if not e.linkname:
            raise LayerError(f"symlink '{_show(e.name)}' has an empty target")
        # The target is stored as is, absolute or not: it is only ever followed inside the container.
        self._create(rel, lambda path: os.symlink(e.linkname, path))
        self.finish_node(rel, e, is_link=True)

    def hardlink(self, rel: bytes, e: Entry) -> None:
        try:
            target = clean_name(e.linkname)
        except UnsafeLayer as bad:
            raise UnsafeLayer(e.name, f"is a hard link to '{_show(e.linkname)}', which {bad.rule}") from None
        if not target:
            raise UnsafeLayer(e.name, "is a hard link to the layer's root directory")
        self.parent(target, e.name, create=False)
        source = self.path(target)
        try:
            # follow_symlinks=False: a link to a symlink links the symlink itself, never what it points to.
            self._create(rel, lambda path: os.link(source, path, follow_symlinks=False))
        except FileNotFoundError:
            raise LayerError(f"hard link '{_show(e.name)}' points to '{_show(e.linkname)}', which is not "
                             "(or not yet) in this layer") from None
        except PermissionError:
            raise LayerError(f"hard link '{_show(e.name)}' points to '{_show(e.linkname)}', which is a "
                             "directory") from None

    def special(self, rel: bytes, e: Entry) -> None:
        kind = {b"3": stat.S_IFCHR, b"4": stat.S_IFBLK, b"6": stat.S_IFIFO}[e.type]
        device = os.makedev(e.devmajor, e.devminor) if kind != stat.S_IFIFO else 0
        try:
            self._create(rel, lambda path: os.mknod(path, kind | 0o600, device))
        except PermissionError:
            raise LayerError(f"entry '{_show(e.name)}' is a device node, which only root can create") from None
        self.finish_node(rel, e, is_link=False)

    def finish_node(self, rel: bytes, e: Entry, *, is_link: bool) -> None:
        """Owner, mode, xattrs and mtime of a symlink, device or fifo, set on the path itself."""
        path = self.path(rel)
        if self.is_root:
            os.chown(path, e.uid, e.gid, follow_symlinks=False)
        if not is_link:  # a symlink's own mode is always 0777 on Linux
            os.chmod(path, e.mode)  # not a symlink: we just created it in a checked directory
        if e.xattrs:
            self.xattrs(path, e)
        os.utime(path, ns=(e.mtime_ns, e.mtime_ns), follow_symlinks=False)

    def xattrs(self, target: int | bytes, e: Entry) -> None:
        for key, value in e.xattrs.items():
            if not key.startswith(_XATTR_NAMESPACES):
                continue  # trusted.*, system.*: see _XATTR_NAMESPACES
            try:
                if isinstance(target, int):
                    os.setxattr(target, key, value)
                else:
                    os.setxattr(target, key, value, follow_symlinks=False)
            except OSError as err:
                if err.errno in (errno.ENOTSUP, errno.EPERM):  # the filesystem (or, on a symlink, the
                    continue  # kernel: no user.* there) does not take it; keep the file without it
                raise LayerError(f"entry '{_show(e.name)}': cannot set xattr {_show(key)}: {err}") from None

    def finish(self) -> None:
        """Directory modes and mtimes, deepest first, now that nothing more is created in them."""
        for rel, (mode, mtime_ns) in reversed(self.dir_meta.items()):
            path = self.path(rel)
            os.chmod(path, mode)
            os.utime(path, ns=(mtime_ns, mtime_ns), follow_symlinks=False)


def _show(name: bytes) -> str:
    return name.decode("utf-8", "replace")


def unpack(source: BinaryIO, dest: str, media_type: str) -> UnpackResult:
    """Unpack the layer read from ``source`` into the existing, empty directory ``dest``.

    ``media_type`` says how it is compressed (see :func:`compression_of`; ``""`` sniffs the magic
    number).  Returns the DiffID (sha256 of the uncompressed tar) and the size of the unpacked data;
    the caller compares the DiffID with the image config's ``rootfs.diff_ids``.  Raises
    :class:`UnsafeLayer` for an entry that would land outside ``dest`` and :class:`LayerError` for a
    corrupt or unsupported one; either way ``dest`` is left half-filled for the caller to remove.
    """
    if os.listdir(dest):
        raise LayerError(f"{dest}: a layer is unpacked into an empty directory")
    chunks = _Prefetch(uncompressed_chunks(source, media_type))
    try:
        stream = _TarStream(chunks)
        writer = _LayerWriter(dest)
        for entry in entries(stream):
            writer.add(entry, stream)
        stream.drain()
        writer.finish()
    finally:
        chunks.close()
    return UnpackResult("sha256:" + chunks.hash.hexdigest(), writer.size)
