"""The content-addressed store: blobs by digest, unpacked layers by chain ID, images and their tags.

The layout is in :mod:`minicontainer.image` (``blobs/``, ``layers/``, ``images/``,
``repositories.json``, ``tmp/``).  Three ideas hold it together:

* **Names are hashes.**  A blob is stored under the sha256 of its bytes, checked while it streams in
  (:mod:`.digest`), so the same blob pulled for two images is stored once, and a corrupt one is never
  stored at all.  An unpacked layer is stored under its **chain ID**, which names the layer *together
  with every layer below it*: ``ChainID(L1) = DiffID(L1)`` and ``ChainID(L1..n) =
  sha256(ChainID(L1..n-1) + " " + DiffID(Ln))``.  A layer's files only mean something on top of the
  same lower layers (its whiteouts delete *their* files), so two images share an unpacked layer only
  when they share the whole stack below it.  The image ID is the digest of the image's config.

* **Nothing appears half-made.**  Everything is written under ``tmp/`` first, flushed to disk
  (``fsync``; ``syncfs`` for a whole layer), then renamed into place: ``rename(2)`` is atomic, so a
  reader, or the store after a crash, sees a blob, a layer or a record either complete or not at all.

* **Small locks.**  One daemon with several threads, plus CLI readers, share the store.  Blobs and
  layers need no lock (atomic renames; two threads unpacking the same layer: one rename wins, the
  other's copy is thrown away, and a per-layer lock makes that rare).  The image records and
  ``repositories.json`` change together under ``tmp/store.lock`` (``flock``), and readers never lock:
  each file is replaced whole.  Garbage collection takes ``tmp/gc.lock`` exclusively, and every
  writer of not-yet-referenced content (a pull, between its first blob and :meth:`Store.add_image`)
  holds it shared with :meth:`Store.lease`, so a ``gc`` can never delete what a pull is about to use.

The image records (``images/<id>.json``) are the truth about tags: ``repositories.json`` is an index
rebuilt from them on every change, in the shape Docker uses (``{"Repositories": {repo: {ref: id}}}``),
so that learners can compare it with ``/var/lib/docker/image/overlay2/repositories.json``.

Docker's ``rmi`` rules are kept: removing by tag untags, and the image goes when no tag is left;
removing by ID removes every tag (refused if the tags span several repositories, unless forced);
an image a container uses is never deleted (see :meth:`Store.remove_image`).  So are Docker's rules
for *parents*: an image made from another (a build step's, a commit's) keeps its parent, so an
untagged image is *dangling* only when no image was made from it; a build's chain of untagged
intermediate images survives ``image prune``, and goes with ``rmi`` of the image at its end.  The
store does not record how images were made: the caller says, with ``parent_of(image_id)``.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from typing import BinaryIO, NamedTuple, Self

from minicontainer.image.digest import DigestMismatch, VerifyingWriter, check_digest, digest_bytes, hex_of

DEFAULT_ROOT = "/var/lib/minicontainer"
TMP_MAX_AGE = 3600  # seconds: gc removes leftovers in tmp/ (a crashed download) older than this

_HEX = re.compile(r"^[0-9a-f]{1,64}$")


class StoreError(Exception):
    """A store operation that cannot be done as asked (the message says why)."""


class NotFound(StoreError, LookupError):
    """No such image, blob or layer."""


class Ambiguous(StoreError):
    """A short ID that is the start of several image IDs."""


class Conflict(StoreError):
    """Docker's "conflict: ... (must be forced)": refused unless ``force``."""


class ImageInUse(Conflict):
    """A container uses the image: it cannot be deleted."""


def chain_ids(diff_ids: list[str]) -> list[str]:
    """The chain ID of each layer of the stack, bottom first (OCI image-spec config.md)."""
    chain: list[str] = []
    for diff_id in diff_ids:
        check_digest(diff_id)
        chain.append(digest_bytes(f"{chain[-1]} {diff_id}".encode()) if chain else diff_id)
    return chain


def repository_of(ref: str) -> str:
    """``docker.io/library/busybox:latest`` -> ``docker.io/library/busybox`` (also for ``@sha256:...``)."""
    if "@" in ref:
        return ref.split("@", 1)[0]
    colon = ref.rfind(":")
    return ref[:colon] if colon > ref.rfind("/") else ref  # a colon before the last "/" is a port


class Layer(NamedTuple):
    """One unpacked layer, as ``layers/sha256/<chain>/layer.json`` records it."""

    chain_id: str
    diff_id: str  # sha256 of the uncompressed tar
    parent: str  # the chain ID of the layer below ("" for the bottom one)
    size: int  # bytes unpacked
    compressed_digest: str  # the blob it was unpacked from


class Image(NamedTuple):
    """An image record (``images/<id-hex>.json``)."""

    id: str  # sha256 of the config blob
    manifest_digest: str
    config_digest: str
    chain_ids: tuple[str, ...]  # bottom layer first
    layer_digests: tuple[str, ...]  # the compressed layer blobs, in the same order
    created: str  # from the config (RFC 3339), "" if it has none
    size: int  # the unpacked size of all its layers
    repo_tags: tuple[str, ...]  # "docker.io/library/busybox:latest"
    repo_digests: tuple[str, ...]  # "docker.io/library/busybox@sha256:..."
    store_root: str = ""  # which store it came from: lets .config read the blob

    @property
    def short_id(self) -> str:
        """The 12 hex digits ``docker images`` shows."""
        return self.id.split(":", 1)[1][:12]

    @property
    def config(self) -> dict:
        """The image config (Cmd, Env, rootfs.diff_ids...), read from its blob."""
        with open(os.path.join(self.store_root, "blobs", "sha256", hex_of(self.config_digest)), "rb") as f:
            return json.load(f)

    def to_record(self) -> dict:
        d = self._asdict()
        del d["store_root"]
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


class GcResult(NamedTuple):
    blobs: list[str]  # digests removed
    layers: list[str]  # chain IDs removed
    freed: int  # bytes (blob sizes + unpacked layer sizes)


def _fsync_dir(path: str) -> None:
    """Make a rename in ``path`` durable: the directory entry itself must reach the disk."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _syncfs(path: str) -> None:
    """Flush every dirty file of the filesystem holding ``path`` (one call for a whole unpacked layer,
    rather than an fsync per file).  Python's os has no syncfs(2): it comes from the C library."""
    import ctypes

    from minicontainer.kernel.syscalls import libc

    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        if libc().syncfs(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), path)
    finally:
        os.close(fd)


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


class BlobWriter:
    """A blob on its way into the store: written to ``tmp/``, hashed on the way, renamed in on commit.

    ``offset`` is how many bytes it holds (for an HTTP ``Range: bytes=<offset>-`` resume); ``reset()``
    starts again from zero (a server that ignores Range).  Use it as a context manager: leaving it
    without :meth:`commit` removes the temporary file::

        with store.blob_writer(digest) as w:
            for chunk in response.iter_content(1 << 20):
                w.write(chunk)
            w.commit()          # DigestMismatch: nothing stored
    """

    def __init__(self, store: Store, expected: str | None) -> None:
        self._store = store
        self.expected = check_digest(expected) if expected else None
        self.path = store._tmp_path("blob")
        self._file = open(self.path, "xb")  # noqa: SIM115 - closed by commit() or abort()
        self._writer = VerifyingWriter(self._file, self.expected)
        self.digest: str | None = None  # set by commit()

    @property
    def offset(self) -> int:
        return self._writer.offset

    def write(self, chunk: bytes) -> None:
        self._writer.write(chunk)

    def reset(self) -> None:
        self._writer.reset()

    def commit(self) -> str:
        """Verify, flush to disk, rename into ``blobs/sha256/``; returns the digest."""
        try:
            digest = self._writer.verify()
        except DigestMismatch:
            self.abort()
            raise
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        os.chmod(self.path, 0o644)
        final = self._store.blob_path(digest)
        os.rename(self.path, final)  # atomic: the blob is there whole, or not at all
        _fsync_dir(os.path.dirname(final))
        self.digest = digest
        return digest

    def abort(self) -> None:
        self._file.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.digest is None:
            self.abort()


class Store:
    """The image store rooted at ``root`` (created if missing)."""

    def __init__(self, root: str = DEFAULT_ROOT) -> None:
        self.root = os.path.abspath(root)
        if not os.path.isdir(self.root):
            # 0700, as Docker does: image layers hold setuid programs that no local user should reach.
            os.makedirs(self.root, mode=0o700, exist_ok=True)
        for sub in ("blobs/sha256", "layers/sha256", "images", "tmp"):
            os.makedirs(os.path.join(self.root, sub), exist_ok=True)
        self.tmp = os.path.join(self.root, "tmp")

    # --- small helpers ------------------------------------------------------------------------------
    def _tmp_path(self, kind: str) -> str:
        return os.path.join(self.tmp, f"{kind}-{os.getpid()}-{os.urandom(6).hex()}")

    @contextlib.contextmanager
    def _flock(self, name: str, mode: int = fcntl.LOCK_EX) -> Iterator[bool]:
        """Hold ``tmp/<name>.lock``; yields False if ``mode`` has LOCK_NB and someone else holds it.

        A flock belongs to an open file, so two threads of one process, each opening the file,
        exclude each other just like two processes."""
        fd = os.open(os.path.join(self.tmp, name + ".lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            try:
                fcntl.flock(fd, mode)
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)  # closing the file releases the lock

    def _write_atomic(self, path: str, data: bytes) -> None:
        tmp = self._tmp_path("json")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        _fsync_dir(os.path.dirname(path))

    @contextlib.contextmanager
    def lease(self) -> Iterator[None]:
        """Hold while adding blobs and layers that no image record references yet (a pull, a load):
        :meth:`gc` waits for every lease to end, so it cannot delete them before :meth:`add_image`."""
        with self._flock("gc", fcntl.LOCK_SH):
            yield

    # --- blobs ----------------------------------------------------------------------------------------
    def blob_path(self, digest: str) -> str:
        return os.path.join(self.root, "blobs", "sha256", hex_of(digest))

    def has_blob(self, digest: str) -> bool:
        return os.path.exists(self.blob_path(digest))

    def open_blob(self, digest: str) -> BinaryIO:
        try:
            return open(self.blob_path(digest), "rb")
        except FileNotFoundError:
            raise NotFound(f"blob {digest} is not in the store") from None

    def read_blob(self, digest: str) -> bytes:
        with self.open_blob(digest) as f:
            return f.read()

    def blob_writer(self, expected: str | None = None) -> BlobWriter:
        """A :class:`BlobWriter` for a blob that should hash to ``expected`` (None: whatever it hashes to)."""
        return BlobWriter(self, expected)

    def put_blob(self, data: bytes, expected: str | None = None) -> str:
        """Store ``data`` (checked against ``expected`` if given); returns its digest."""
        digest = digest_bytes(data)
        if expected and digest != check_digest(expected):
            raise DigestMismatch(expected, digest)
        if self.has_blob(digest):
            return digest
        with self.blob_writer(digest) as w:
            w.write(data)
            return w.commit()

    # --- layers ---------------------------------------------------------------------------------------
    def _layer_path(self, chain_id: str) -> str:
        return os.path.join(self.root, "layers", "sha256", hex_of(chain_id))

    def layer_dir(self, chain_id: str) -> str:
        """The layer's files (``diff/``): what overlayfs stacks as a ``lowerdir``."""
        return os.path.join(self._layer_path(chain_id), "diff")

    def has_layer(self, chain_id: str) -> bool:
        return os.path.exists(os.path.join(self._layer_path(chain_id), "layer.json"))

    def layer(self, chain_id: str) -> Layer:
        try:
            with open(os.path.join(self._layer_path(chain_id), "layer.json"), "rb") as f:
                d = json.load(f)
        except FileNotFoundError:
            raise NotFound(f"layer {chain_id} is not in the store") from None
        return Layer(d["chain_id"], d["diff_id"], d.get("parent") or "", d["size"], d["compressed_digest"])

    def add_layer(self, chain_id: str, parent_chain_id: str | None, diff_id: str, compressed_digest: str,
                  unpack: Callable[[str], object]) -> Layer:
        """Unpack a layer once, atomically; returns it (at once if it is already there).

        ``unpack(dir)`` fills the empty directory ``dir`` and returns the unpacked size, or a
        :class:`~minicontainer.image.layers.UnpackResult`, whose DiffID is then checked against
        ``diff_id`` (:class:`DigestMismatch` if they differ).  Whatever ``unpack`` raises, its
        half-made directory is removed: a layer is either complete in the store or absent.
        """
        check_digest(diff_id)
        check_digest(compressed_digest)
        expected_chain = digest_bytes(f"{parent_chain_id} {diff_id}".encode()) if parent_chain_id else diff_id
        if check_digest(chain_id) != expected_chain:
            raise StoreError(f"chain ID {chain_id} does not follow from parent {parent_chain_id or '(none)'} "
                             f"and DiffID {diff_id} (expected {expected_chain})")
        if self.has_layer(chain_id):
            return self.layer(chain_id)
        final = self._layer_path(chain_id)
        lock_name = "layer-" + hex_of(chain_id)
        with self._flock(lock_name):  # a second thread pulling the same layer waits, then finds it
            try:
                if self.has_layer(chain_id):
                    return self.layer(chain_id)
                tmp = self._tmp_path("layer")
                os.mkdir(tmp, 0o700)
                try:
                    diff = os.path.join(tmp, "diff")
                    os.mkdir(diff, 0o755)
                    result = unpack(diff)
                    size = getattr(result, "size", result)
                    got = getattr(result, "diff_id", None)
                    if got is not None and got != diff_id:
                        raise DigestMismatch(diff_id, got, "layer (uncompressed)")
                    layer = Layer(chain_id, diff_id, parent_chain_id or "", int(size), compressed_digest)
                    _syncfs(tmp)  # every unpacked file on disk before the layer becomes visible
                    self._write_atomic(os.path.join(tmp, "layer.json"),
                                       json.dumps(layer._asdict(), indent=1).encode())
                    try:
                        os.rename(tmp, final)
                    except OSError as e:
                        if e.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                            raise
                        _remove(tmp)  # another process got there first: keep theirs
                        return self.layer(chain_id)
                    _fsync_dir(os.path.dirname(final))
                    return layer
                except BaseException:
                    _remove(tmp)
                    raise
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(self.tmp, lock_name + ".lock"))

    def lowerdirs(self, image: Image) -> list[str]:
        """The image's layer directories, top layer first: overlayfs's ``lowerdir`` order."""
        return [self.layer_dir(c) for c in reversed(image.chain_ids)]

    # --- image records ----------------------------------------------------------------------------------
    def _record_path(self, image_id: str) -> str:
        return os.path.join(self.root, "images", hex_of(image_id) + ".json")

    def _image_from(self, d: dict) -> Image:
        return Image(d["id"], d["manifest_digest"], d["config_digest"], tuple(d["chain_ids"]),
                     tuple(d["layer_digests"]), d.get("created", ""), d.get("size", 0),
                     tuple(d.get("repo_tags", ())), tuple(d.get("repo_digests", ())), self.root)

    def _records(self) -> dict[str, Image]:
        out: dict[str, Image] = {}
        folder = os.path.join(self.root, "images")
        for name in os.listdir(folder):
            if not name.endswith(".json"):
                continue
            try:
                with open(os.path.join(folder, name), "rb") as f:
                    image = self._image_from(json.load(f))
            except FileNotFoundError:  # removed while we listed
                continue
            out[image.id] = image
        return out

    def _save(self, before: dict[str, Image], after: dict[str, Image]) -> None:
        """Write the records that changed, remove the deleted ones, then rebuild repositories.json.
        Called with the store lock held."""
        for image_id, image in after.items():
            if before.get(image_id) != image:
                self._write_atomic(self._record_path(image_id), json.dumps(image.to_record(), indent=1).encode())
        for image_id in before.keys() - after.keys():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._record_path(image_id))
        repos: dict[str, dict[str, str]] = {}
        for image in after.values():
            for ref in image.repo_tags + image.repo_digests:
                repos.setdefault(repository_of(ref), {})[ref] = image.id
        index = {"Repositories": {r: dict(sorted(refs.items())) for r, refs in sorted(repos.items())}}
        self._write_atomic(os.path.join(self.root, "repositories.json"), json.dumps(index, indent=1).encode())

    @staticmethod
    def _with_ref(records: dict[str, Image], image_id: str, ref: str) -> None:
        """Point ``ref`` (a tag or a digest reference) at ``image_id``, taking it from any other image."""
        field = "repo_digests" if "@" in ref else "repo_tags"
        for other_id, other in records.items():
            if other_id != image_id and ref in getattr(other, field):
                records[other_id] = other._replace(**{field: tuple(r for r in getattr(other, field) if r != ref)})
        image = records[image_id]
        if ref not in getattr(image, field):
            records[image_id] = image._replace(**{field: (*getattr(image, field), ref)})

    def add_image(self, manifest_raw: bytes, config_raw: bytes, *, repo_tag: str | None = None,
                  repo_digest: str | None = None) -> Image:
        """Record an image whose layers are all in the store (stores the manifest and config blobs too).

        ``repo_tag`` moves to this image from any image that had it (which may become dangling), as
        with ``docker pull`` of a tag that has moved on.
        """
        try:
            manifest = json.loads(manifest_raw)
            config = json.loads(config_raw)
            layer_digests = tuple(check_digest(layer["digest"]) for layer in manifest["layers"])
            declared = manifest["config"]["digest"]
            diff_ids = config["rootfs"]["diff_ids"]
        except (ValueError, KeyError, TypeError) as e:
            raise StoreError(f"not an image manifest and config ({type(e).__name__}: {e})") from None
        config_digest = digest_bytes(config_raw)
        if declared != config_digest:
            raise DigestMismatch(declared, config_digest, "image config")
        if len(diff_ids) != len(layer_digests):
            raise StoreError(f"the manifest lists {len(layer_digests)} layers but the config has "
                             f"{len(diff_ids)} diff_ids")
        chains = chain_ids(diff_ids)
        with self.lease():
            missing = [c for c in chains if not self.has_layer(c)]
            if missing:
                raise StoreError(f"layer {missing[0]} is not unpacked yet: add_layer() every layer before "
                                 "add_image()")
            manifest_digest = self.put_blob(manifest_raw)
            self.put_blob(config_raw)
            size = sum(self.layer(c).size for c in chains)
            image_id = config_digest
            with self._flock("store"):
                before = self._records()
                records = dict(before)
                old = records.get(image_id)
                records[image_id] = Image(image_id, manifest_digest, config_digest, tuple(chains), layer_digests,
                                          str(config.get("created") or ""), size,
                                          old.repo_tags if old else (), old.repo_digests if old else (),
                                          self.root)
                for ref in (repo_tag, repo_digest):
                    if ref:
                        self._with_ref(records, image_id, ref)
                self._save(before, records)
                return records[image_id]

    # --- finding images ---------------------------------------------------------------------------------
    def images(self) -> list[Image]:
        """All images, newest first (as ``docker images`` lists them)."""
        return sorted(self._records().values(), key=lambda i: (i.created, i.id), reverse=True)

    def image(self, image_id: str) -> Image:
        try:
            with open(self._record_path(image_id), "rb") as f:
                return self._image_from(json.load(f))
        except FileNotFoundError:
            raise NotFound(f"No such image: {image_id}") from None

    @staticmethod
    def _find(records: dict[str, Image], name: str) -> Image:
        for image in records.values():
            if name in image.repo_tags or name in image.repo_digests:
                return image
        hexpart = name.removeprefix("sha256:")
        if _HEX.match(hexpart):
            found = [i for i in records.values() if i.id[7:].startswith(hexpart)]
            if len(found) == 1:
                return found[0]
            if found:
                raise Ambiguous(f"'{name}' is ambiguous: it is the start of several image IDs: "
                                 + ", ".join(sorted(i.id for i in found)))
        raise NotFound(f"No such image: {name}")

    def resolve(self, name_or_id: str) -> Image:
        """A full reference (``docker.io/library/busybox:latest``, or ``...@sha256:...``), an image ID
        (``sha256:<hex>``), or any unique prefix of its hex digits, as Docker accepts them."""
        return self._find(self._records(), name_or_id)

    # --- tags -------------------------------------------------------------------------------------------
    def tag(self, name_or_id: str, repo_tag: str) -> Image:
        """Point ``repo_tag`` at the image (``docker tag``); an image that had it loses it."""
        with self._flock("store"):
            before = self._records()
            records = dict(before)
            image = self._find(records, name_or_id)
            self._with_ref(records, image.id, repo_tag)
            self._save(before, records)
            return records[image.id]

    def untag(self, ref: str) -> Image:
        """Remove a tag (or digest reference); the image stays, dangling if that was its last tag."""
        with self._flock("store"):
            before = self._records()
            records = dict(before)
            for image in records.values():
                if ref in image.repo_tags or ref in image.repo_digests:
                    records[image.id] = image._replace(repo_tags=tuple(t for t in image.repo_tags if t != ref),
                                                       repo_digests=tuple(d for d in image.repo_digests if d != ref))
                    self._save(before, records)
                    return records[image.id]
        raise NotFound(f"No such image: {ref}")

    # --- removing ---------------------------------------------------------------------------------------
    @staticmethod
    def _parents(records: dict[str, Image], parent_of: Callable[[str], str]) -> set[str]:
        """The images some other image in ``records`` was made from (they have children)."""
        return {p for p in map(parent_of, records) if p in records}

    def _delete_parents(self, records: dict[str, Image], image_id: str, parent_of: Callable[[str], str],
                        in_use: Callable[[str], bool]) -> list[str]:
        """After ``image_id`` went: its parent goes too if it is untagged, unused and now has no child
        (a build's intermediate image nobody needs any more), and so on up the chain, as dockerd's rmi."""
        lines: list[str] = []
        parent = parent_of(image_id)
        while parent in records and not records[parent].repo_tags and not in_use(parent) \
                and parent not in self._parents(records, parent_of):
            lines += [f"Untagged: {d}" for d in records[parent].repo_digests]
            del records[parent]
            lines.append(f"Deleted: {parent}")
            parent = parent_of(parent)
        return lines

    def remove_image(self, name_or_id: str, *, force: bool = False,
                     in_use: Callable[[str], bool] = lambda image_id: False,
                     parent_of: Callable[[str], str] = lambda image_id: "", prune_parents: bool = True) -> list[str]:
        """``docker rmi``: returns the lines it prints (``Untagged: ref``, ``Deleted: sha256:...``).

        * By tag (or digest reference): untag it; the image is deleted when it has no tag left (its
          digest references go with it).
        * By ID: untag everything and delete; refused if its tags are in several repositories,
          unless ``force``.
        * ``in_use(image_id)`` says whether a container uses it: then deleting it is refused
          (:class:`ImageInUse`), and with ``force`` only the tags go: the image stays, dangling, until
          no container uses it (its layers are the container's lower directories).
        * An image that is another's parent (``parent_of``) stays: by tag it is only untagged (the
          child needs it), by ID it is refused, forced or not.  Once deleted, its parents that are
          untagged and needed by nothing else go too, unless ``prune_parents`` is false
          (``docker rmi --no-prune``).
        """
        lines: list[str] = []
        with self._flock("store"):
            before = self._records()
            records = dict(before)
            image = self._find(records, name_or_id)
            short = image.short_id
            has_children = image.id in self._parents(records, parent_of)
            if name_or_id in image.repo_tags or name_or_id in image.repo_digests:
                tags = tuple(t for t in image.repo_tags if t != name_or_id)
                digests = tuple(d for d in image.repo_digests if d != name_or_id)
                delete = not tags
                if delete and in_use(image.id) and not force:
                    raise ImageInUse(f'conflict: unable to remove repository reference "{name_or_id}" (must '
                                     f"force) - a container is using its referenced image {short}")
                lines.append(f"Untagged: {name_or_id}")
                if delete:
                    lines += [f"Untagged: {d}" for d in digests]
                    digests = ()
                records[image.id] = image._replace(repo_tags=tags, repo_digests=digests)
            else:
                if has_children:
                    raise Conflict(f"conflict: unable to delete {short} (cannot be forced) - image has "
                                   "dependent child images")
                busy = in_use(image.id)
                if busy and not force:
                    raise ImageInUse(f"conflict: unable to delete {short} (must be forced) - image is being "
                                     "used by a container")
                if len({repository_of(t) for t in image.repo_tags}) > 1 and not force:
                    raise Conflict(f"conflict: unable to delete {short} (must be forced) - image is "
                                     "referenced in multiple repositories")
                lines += [f"Untagged: {r}" for r in image.repo_tags + image.repo_digests]
                records[image.id] = image._replace(repo_tags=(), repo_digests=())
                delete = True
            if delete and not in_use(image.id) and not has_children:
                del records[image.id]
                lines.append(f"Deleted: {image.id}")
                if prune_parents:
                    lines += self._delete_parents(records, image.id, parent_of, in_use)
            self._save(before, records)
        return lines + [f"Deleted: {c}" for c in self.gc(wait=False).layers]

    def prune(self, dangling_only: bool = True, in_use: Callable[[str], bool] = lambda image_id: False,
              parent_of: Callable[[str], str] = lambda image_id: "") -> list[str]:
        """``docker image prune`` (``-a`` is ``dangling_only=False``): delete the dangling images (or
        every image), except those a container uses, and the untagged parents that leaves unneeded.

        An image some other image was made from is never deleted before that child: so a build's
        intermediate images stay while the image at the end of the chain stays (they are the build
        cache), and go with it.  Hence the rounds: each deletes the images that are nobody's parent.
        """
        lines: list[str] = []
        with self._flock("store"):
            before = self._records()
            records = dict(before)
            while True:
                parents = self._parents(records, parent_of)
                doomed = [i for i in records.values() if i.id not in parents and not in_use(i.id)
                          and not (dangling_only and i.repo_tags)]
                if not doomed:
                    break
                for image in doomed:
                    lines += [f"Untagged: {r}" for r in image.repo_tags + image.repo_digests]
                    del records[image.id]
                    lines.append(f"Deleted: {image.id}")
            self._save(before, records)
        return lines + [f"Deleted: {c}" for c in self.gc(wait=False).layers]

    def gc(self, *, wait: bool = True) -> GcResult:
        """Remove the blobs and layers no image references, and old leftovers in ``tmp/``.

        Waits for running :meth:`lease` holders (pulls) to finish, or with ``wait=False`` collects
        nothing while one runs (the next gc will).  A layer another image uses is never removed: only
        chain IDs listed in no record go.
        """
        removed_blobs: list[str] = []
        removed_layers: list[str] = []
        freed = 0
        mode = fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB
        with self._flock("gc", mode) as locked:
            if not locked:
                return GcResult([], [], 0)
            keep_blobs: set[str] = set()
            keep_layers: set[str] = set()
            for image in self._records().values():
                keep_blobs.update((image.manifest_digest, image.config_digest, *image.layer_digests))
                keep_blobs.update(ref.split("@", 1)[1] for ref in image.repo_digests)  # e.g. an index
                keep_layers.update(image.chain_ids)

            layers_dir = os.path.join(self.root, "layers", "sha256")
            for name in sorted(os.listdir(layers_dir)):
                chain_id = "sha256:" + name
                if chain_id in keep_layers:
                    continue
                with contextlib.suppress(StoreError, KeyError, ValueError):
                    freed += self.layer(chain_id).size
                # Out of layers/ in one atomic step, then deleted at leisure: never a half layer there.
                doomed = self._tmp_path("deleting")
                os.rename(os.path.join(layers_dir, name), doomed)
                shutil.rmtree(doomed, ignore_errors=True)
                removed_layers.append(chain_id)

            blobs_dir = os.path.join(self.root, "blobs", "sha256")
            for name in sorted(os.listdir(blobs_dir)):
                digest = "sha256:" + name
                if digest in keep_blobs:
                    continue
                path = os.path.join(blobs_dir, name)
                with contextlib.suppress(FileNotFoundError):
                    freed += os.lstat(path).st_size
                    os.unlink(path)
                    removed_blobs.append(digest)

            now = time.time()
            for name in os.listdir(self.tmp):
                path = os.path.join(self.tmp, name)
                with contextlib.suppress(FileNotFoundError):
                    if name.endswith(".lock") or now - os.lstat(path).st_mtime < TMP_MAX_AGE:
                        continue
                    _remove(path)
        return GcResult(removed_blobs, removed_layers, freed)
