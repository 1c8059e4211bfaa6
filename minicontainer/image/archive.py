"""``save``, ``load`` and ``import``: images as tar files, to move them without a registry.

Two archive formats hold whole images, and a third kind of tar becomes one:

* **docker-archive**, what ``docker save`` writes and ``docker load`` reads::

      manifest.json          [{"Config": "<hex>.json", "RepoTags": ["busybox:latest"],
                               "Layers": ["<diffid-hex>/layer.tar", ...]}, ...]
      repositories           {"busybox": {"latest": "<top layer's directory>"}}  (the v1 leftover)
      <config-hex>.json      the image config, byte for byte: its sha256 is the image ID
      <diffid-hex>/layer.tar each layer **uncompressed**: its sha256 is the config's DiffID

  There are no layer digests and no media types: a layer is known only by the DiffID the config
  lists, so the store's compressed blobs are decompressed on the way out, and on the way in each
  layer is checked against the config's DiffIDs.  (Docker before 25 also wrote a v1 ``json`` and
  ``VERSION`` file per layer; nothing has read them since Docker 1.10, so they are not written here
  and are skipped when loading.)

* **OCI image layout** (image-spec ``image-layout.md``), here in a tar, as ``skopeo``'s
  ``oci-archive:`` and ``docker save`` since Docker 25 write it::

      oci-layout             {"imageLayoutVersion": "1.0.0"}
      index.json             the manifests, each tagged by an annotation
      blobs/sha256/<hex>     manifests, configs and layers, exactly as a registry would serve them

  Every blob is named by its digest, so every blob is checked as it is read.  The layers stay
  compressed (a registry's bytes, unchanged); a Docker v2 manifest is rewritten with the OCI media
  types, as ``skopeo copy`` does, since OCI tools (``umoci``) accept OCI media types only.  The
  manifest's digest then changes; the config, and so the image ID, does not.

* **a root filesystem tarball** (``docker import``): a plain, gzip or zstd tar of files becomes a
  one-layer image, with a config made from a few Dockerfile instructions (``--change``).

**Loading is all or nothing.**  A ``load`` streams the archive once (it may be gigabytes: nothing
but the small JSON files is kept in memory), writing each large member into the store as a blob,
checked against its digest as it streams.  The archive's order is not known in advance (``docker
save`` writes ``manifest.json`` last), so only at the end are the images worked out, every layer
unpacked and checked against its DiffID, and only then are the images recorded.  All of it happens
under a :meth:`~minicontainer.image.store.Store.lease`; if anything fails, no image is recorded and
a garbage collection removes whatever was written for it.  Member names are only ever looked up,
never used as paths: an archive cannot write outside the store (blobs are named by their digests,
and layers are unpacked by :mod:`.layers`, which refuses any escape).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import posixpath
import re
import shlex
import tarfile
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, BinaryIO, NamedTuple

from minicontainer.image import builder
from minicontainer.image import layers as layer_files
from minicontainer.image.digest import DigestMismatch, digest_bytes, hex_of
from minicontainer.image.reference import parse
from minicontainer.image.store import Image, NotFound, Store, chain_ids, repository_of

Progress = Callable[[dict], None]

DOCKER_ARCHIVE = "docker-archive"
OCI_ARCHIVE = "oci-archive"
FORMATS = (DOCKER_ARCHIVE, OCI_ARCHIVE)

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
# The OCI annotation that names a manifest in index.json: by convention just the tag ("latest")...
REF_NAME = "org.opencontainers.image.ref.name"
# ...so containerd (and Docker 25's save) add the full name in one of their own.
IMAGE_NAME = "io.containerd.image.name"
OCI_LAYOUT = b'{"imageLayoutVersion":"1.0.0"}'

CHUNK = 1 << 20
METADATA_MAX = 16 << 20  # manifest.json, index.json, a config: kilobytes; more is not an image archive
GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"

# Docker v2 media types and their OCI equivalents: the documents have the same shape.
_OCI_EQUIVALENT = {
    builder.DOCKER_MANIFEST: builder.OCI_MANIFEST,
    builder.DOCKER_CONFIG: builder.OCI_CONFIG,
    builder.DOCKER_LAYER_GZIP: builder.OCI_LAYER_GZIP,
    "application/vnd.docker.image.rootfs.diff.tar": builder.OCI_LAYER,
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip":
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
}
_BLOB_NAME = re.compile(r"^blobs/sha256/([0-9a-f]{64})$")
_NAMED_BY_DIGEST = re.compile(r"(?:^|/)([0-9a-f]{64})(?:\.json)?$")  # <hex>.json, blobs/sha256/<hex>


class ArchiveError(Exception):
    """The input is not an image archive we can read, or it contradicts itself."""


# --- save -----------------------------------------------------------------------------------------


class Selected(NamedTuple):
    """An image to save, and the tags (full references) the archive should give it."""

    image: Image
    tags: list[str]


def select(store: Store, names: Iterable[str]) -> list[Selected]:
    """The images ``docker save NAME...`` saves, each once, with the tags the names asked for.

    As with Docker: ``busybox:1.36`` is that tag; ``busybox`` (no tag) is *every* tag of the
    repository (``docker save fedora > fedora-all.tar``); an image ID, or a digest reference, saves
    the image without a tag (it then loads as ``<none>``).
    """
    chosen: dict[str, Selected] = {}
    for name in names:
        for image, tag in _lookup(store, name):
            entry = chosen.setdefault(image.id, Selected(image, []))
            if tag and tag not in entry.tags:
                entry.tags.append(tag)
    return list(chosen.values())


def _lookup(store: Store, name: str) -> list[tuple[Image, str | None]]:
    try:
        ref = parse(name)
    except ValueError:
        ref = None  # not a name: an ID, or an ID prefix
    if ref is not None:
        if not ref.digest and ":" not in name.rsplit("/", 1)[-1]:
            everything = sorted((t, image) for image in store.images() for t in image.repo_tags
                                if repository_of(t) == ref.name)
            if everything:
                return [(image, t) for t, image in everything]
        with contextlib.suppress(NotFound):
            return [(store.resolve(str(ref)), None if ref.digest else str(ref))]
    return [(store.resolve(name), None)]  # NotFound: "No such image: NAME"


def save(store: Store, names: list[str], out: BinaryIO, *, format: str = DOCKER_ARCHIVE) -> list[Selected]:
    """Write the named images to ``out`` as a tar (``format``: docker-archive or oci-archive).

    ``out`` may be a pipe: the tar is written in one pass, never seeked.  The names are resolved
    first, so a missing image fails before a byte is written.  Returns what was saved.
    """
    if format not in FORMATS:
        raise ValueError(f"unknown archive format '{format}' (expected {' or '.join(FORMATS)})")
    selected = select(store, names)
    # "w|": a stream, so stdout works; entries must then be sized before they are written.
    with tarfile.open(fileobj=out, mode="w|", bufsize=CHUNK, format=tarfile.PAX_FORMAT) as tar:
        if format == DOCKER_ARCHIVE:
            _save_docker(store, selected, tar)
        else:
            _save_oci(store, selected, tar)
    return selected


def _entry(name: str, size: int = 0, *, directory: bool = False) -> tarfile.TarInfo:
    """A tar header owned by root, dated 1970: the same images always give the same bytes."""
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    info.mode = 0o755 if directory else 0o644
    return info


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    tar.addfile(_entry(name, len(data)), io.BytesIO(data))


def _add_blob(store: Store, tar: tarfile.TarFile, name: str, digest: str) -> None:
    with store.open_blob(digest) as blob:
        tar.addfile(_entry(name, os.fstat(blob.fileno()).st_size), blob)


def _add_uncompressed_layer(store: Store, tar: tarfile.TarFile, name: str, desc: dict, diff_id: str) -> None:
    """Write the layer blob ``desc`` as the plain tar whose sha256 is ``diff_id``."""
    if desc["digest"] == diff_id:  # stored uncompressed already (a loaded docker-archive, an import)
        _add_blob(store, tar, name, diff_id)
        return
    # A tar header carries the size, known only once decompressed: so, to a temporary file first
    # (in the store's tmp/, which is on a disk; /tmp may be a small tmpfs).
    import tempfile

    with store.open_blob(desc["digest"]) as blob, tempfile.TemporaryFile(dir=store.tmp) as plain:
        sha = hashlib.sha256()
        for chunk in layer_files.uncompressed_chunks(blob, desc.get("mediaType", "")):
            sha.update(chunk)
            plain.write(chunk)
        if "sha256:" + sha.hexdigest() != diff_id:
            raise DigestMismatch(diff_id, "sha256:" + sha.hexdigest(), f"layer {desc['digest']} (uncompressed)")
        size = plain.tell()
        plain.seek(0)
        tar.addfile(_entry(name, size), plain)


def _save_docker(store: Store, selected: list[Selected], tar: tarfile.TarFile) -> None:
    manifest: list[dict] = []
    repositories: dict[str, dict[str, str]] = {}
    written: set[str] = set()  # a layer two images share is written once
    for image, tags in selected:
        config_raw = store.read_blob(image.config_digest)
        diff_ids = json.loads(config_raw)["rootfs"]["diff_ids"]
        descriptors = json.loads(store.read_blob(image.manifest_digest))["layers"]
        layer_paths = []
        for diff_id, desc in zip(diff_ids, descriptors, strict=True):
            folder = hex_of(diff_id)
            path = f"{folder}/layer.tar"
            if path not in written:
                tar.addfile(_entry(folder, directory=True))
                _add_uncompressed_layer(store, tar, path, desc, diff_id)
                written.add(path)
            layer_paths.append(path)
        config_path = hex_of(image.config_digest) + ".json"
        if config_path not in written:
            _add_bytes(tar, config_path, config_raw)
            written.add(config_path)
        familiar = [parse(t) for t in tags]
        manifest.append({"Config": config_path, "RepoTags": [r.familiar() for r in familiar] or None,
                         "Layers": layer_paths})
        for ref in familiar:
            if diff_ids and ref.tag:
                repositories.setdefault(ref.familiar_name(), {})[ref.tag] = hex_of(diff_ids[-1])
    _add_bytes(tar, "manifest.json", json.dumps(manifest, separators=(",", ":")).encode())
    if repositories:
        _add_bytes(tar, "repositories", json.dumps(repositories, separators=(",", ":")).encode())


def as_oci_manifest(raw: bytes) -> bytes:
    """An OCI manifest for the same image: a Docker v2 manifest gets the OCI media types (same shape,
    same blobs); an OCI one is returned unchanged, byte for byte (so its digest is kept)."""
    manifest = json.loads(raw)
    media_type = manifest.get("mediaType", builder.OCI_MANIFEST)
    if media_type == builder.OCI_MANIFEST:
        return raw
    if media_type != builder.DOCKER_MANIFEST:
        raise ArchiveError(f"cannot write a manifest of type {media_type} to an OCI layout")

    def converted(desc: dict) -> dict:
        return {**desc, "mediaType": _OCI_EQUIVALENT.get(desc["mediaType"], desc["mediaType"])}

    oci = {"schemaVersion": 2, "mediaType": builder.OCI_MANIFEST, "config": converted(manifest["config"]),
           "layers": [converted(d) for d in manifest["layers"]]}
    return json.dumps(oci, separators=(",", ":")).encode()


def _save_oci(store: Store, selected: list[Selected], tar: tarfile.TarFile) -> None:
    _add_bytes(tar, "oci-layout", OCI_LAYOUT)
    tar.addfile(_entry("blobs", directory=True))
    tar.addfile(_entry("blobs/sha256", directory=True))
    written: set[str] = set()
    descriptors: list[dict] = []
    for image, tags in selected:
        manifest_raw = as_oci_manifest(store.read_blob(image.manifest_digest))
        manifest = json.loads(manifest_raw)
        for desc in (manifest["config"], *manifest["layers"]):
            if desc["digest"] not in written:
                _add_blob(store, tar, "blobs/sha256/" + hex_of(desc["digest"]), desc["digest"])
                written.add(desc["digest"])
        manifest_digest = digest_bytes(manifest_raw)
        if manifest_digest not in written:
            _add_bytes(tar, "blobs/sha256/" + hex_of(manifest_digest), manifest_raw)
            written.add(manifest_digest)
        config = image.config
        platform = {"architecture": config.get("architecture", ""), "os": config.get("os", "")}
        if config.get("variant"):
            platform["variant"] = config["variant"]
        descriptor = {"mediaType": builder.OCI_MANIFEST, "digest": manifest_digest, "size": len(manifest_raw),
                      "platform": platform}
        # One entry per tag: the OCI annotation holds only the tag (umoci's and skopeo's "DIR:TAG"
        # look it up), containerd's the full name (what a load needs to re-tag the image).
        for tag in tags:
            ref = parse(tag)
            descriptors.append({**descriptor, "annotations": {IMAGE_NAME: str(ref), REF_NAME: ref.tag or ""}})
        if not tags:
            descriptors.append(descriptor)
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": descriptors}
    _add_bytes(tar, "index.json", json.dumps(index, separators=(",", ":")).encode())


# --- reading a tar stream ---------------------------------------------------------------------------


class _Prepended:
    """A stream whose first bytes were read already (to look at them): they are read again first."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self.head, self.rest = head, rest

    def read(self, n: int = -1) -> bytes:
        if self.head:
            if 0 <= n < len(self.head):
                data, self.head = self.head[:n], self.head[n:]
                return data
            data, self.head = self.head, b""
            return data
        return self.rest.read(n)


def _peek(source: BinaryIO, n: int) -> tuple[bytes, BinaryIO]:
    """The first ``n`` bytes of ``source`` (fewer at its end), and a stream that still starts with them:
    stdin is a pipe, and cannot seek back."""
    head = b""
    while len(head) < n and (more := source.read(n - len(head))):
        head += more
    return head, _Prepended(head, source)  # type: ignore[return-value]


def _sniff_layer(head: bytes) -> str:
    """The layer media type that fits these first bytes: gzip, zstd, or a plain tar."""
    if head.startswith(GZIP_MAGIC):
        return builder.OCI_LAYER_GZIP
    if head.startswith(ZSTD_MAGIC):
        return builder.OCI_LAYER_ZSTD
    return builder.OCI_LAYER


class _Contents:
    """What a pass over the archive found: small JSON members kept in memory, large ones stored in the
    store as blobs (by name -> digest), and links (name -> the member they point to)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.files: dict[str, bytes] = {}
        self.blobs: dict[str, str] = {}
        self.links: dict[str, str] = {}

    def resolve(self, name: str) -> str:
        name = _clean(name)
        for _ in range(16):  # skopeo's docker-archive links <id>/layer.tar -> ../<diffid>.tar
            if name not in self.links:
                return name
            name = self.links[name]
        raise ArchiveError(f"too many links to follow from {name}")

    def has(self, name: str) -> bool:
        name = self.resolve(name)
        return name in self.files or name in self.blobs

    def read(self, name: str) -> bytes:
        name = self.resolve(name)
        if name in self.files:
            return self.files[name]
        if name in self.blobs:
            return self.document(self.blobs[name], name)
        raise ArchiveError(f"the archive has no {name}")

    def document(self, digest: str, what: str) -> bytes:
        """A manifest, index or config stored as a blob, read whole: refused if it is too large to be one
        (an archive could name a gigabyte layer as its "manifest")."""
        if os.stat(self.store.blob_path(digest)).st_size > METADATA_MAX:
            raise ArchiveError(f"{what} is too large to be a manifest or config")
        return self.store.read_blob(digest)

    def blob(self, name: str) -> str:
        """The digest of a member that was stored as a blob (a layer)."""
        name = self.resolve(name)
        if name in self.blobs:
            return self.blobs[name]
        raise ArchiveError(f"the archive has no {name}")

    def blob_by_digest(self, digest: str) -> str:
        """An OCI layout's blob: it must be in the archive (a layout holds all its blobs)."""
        name = "blobs/sha256/" + hex_of(digest)
        if name not in self.blobs:
            raise ArchiveError(f"the archive has no blob {digest} ({name})")
        return digest


def _clean(name: str) -> str:
    """``./manifest.json`` (``tar -C dir .``) is ``manifest.json``."""
    name = posixpath.normpath(name.lstrip("/"))
    return "" if name == "." else name


def _is_metadata(name: str) -> bool:
    return name in ("manifest.json", "repositories", "index.json", "oci-layout") or \
        (name.endswith(".json") and "/" not in name)


def _is_v1_leftover(name: str) -> bool:
    return name.endswith(("/json", "/VERSION"))


def _read_archive(store: Store, source: BinaryIO, emit: Progress) -> _Contents:
    """One pass over the tar: every member is sorted into memory, the store, or ignored."""
    head, source = _peek(source, 4)
    if not head:
        raise ArchiveError("the input is empty: expected an image archive (a tar from save)")
    if head.startswith(ZSTD_MAGIC):  # tarfile itself knows gzip, bzip2 and xz, not zstd
        import zstandard

        source = zstandard.ZstdDecompressor().stream_reader(source, read_across_frames=True)
    contents = _Contents(store)
    try:
        with tarfile.open(fileobj=source, mode="r|*", bufsize=CHUNK) as tar:
            for member in tar:
                name = _clean(member.name)
                if member.issym():
                    contents.links[name] = _clean(posixpath.join(posixpath.dirname(name), member.linkname))
                elif member.islnk():
                    contents.links[name] = _clean(member.linkname)
                elif not member.isreg() or _is_v1_leftover(name):
                    continue  # directories; the v1 files nothing reads
                elif _is_metadata(name):
                    if member.size > METADATA_MAX:
                        raise ArchiveError(f"{name} is {member.size} bytes: too large for an image archive's "
                                           "metadata")
                    contents.files[name] = tar.extractfile(member).read()
                else:
                    contents.blobs[name] = _store_member(store, name, tar.extractfile(member), member.size, emit)
    except (tarfile.TarError, EOFError) as e:
        raise ArchiveError(f"not a valid tar archive, or a truncated one: {e}") from None
    return contents


def _store_member(store: Store, name: str, data: BinaryIO, size: int, emit: Progress) -> str:
    """Stream one member into the store as a blob; a member named ``blobs/sha256/<hex>`` must hash to it."""
    match = _BLOB_NAME.match(name)
    expected = "sha256:" + match.group(1) if match else None
    short = (match.group(1) if match else name.split("/", 1)[0].removesuffix(".tar"))[:12]
    done = 0

    def chunks() -> Iterator[bytes]:
        nonlocal done
        while chunk := data.read(CHUNK):
            done += len(chunk)
            emit({"status": "Loading layer", "id": short, "progressDetail": {"current": done, "total": size}})
            yield chunk

    if expected and store.has_blob(expected):  # already here: only check that the archive agrees
        sha = hashlib.sha256()
        for chunk in chunks():
            sha.update(chunk)
        if "sha256:" + sha.hexdigest() != expected:
            raise DigestMismatch(expected, "sha256:" + sha.hexdigest(), f"archive member {name}")
        return expected
    with store.blob_writer(expected) as writer:
        for chunk in chunks():
            writer.write(chunk)
        try:
            return writer.commit()
        except DigestMismatch as e:
            raise DigestMismatch(e.expected, e.actual, f"archive member {name}") from None


# --- load -------------------------------------------------------------------------------------------


class _Plan(NamedTuple):
    """One image found in an archive, ready to record once its layers are unpacked."""

    manifest_raw: bytes
    config_raw: bytes
    tags: list[str]  # full references


def load(store: Store, source: BinaryIO, *, progress: Progress | None = None) -> list[Image]:
    """``docker load``: record the images of a docker-archive or OCI-layout tar; returns them.

    ``source`` may be gzip, bzip2, xz or zstd compressed.  ``progress`` receives
    ``{"status": "Loading layer", "id", "progressDetail"}`` while members stream in, then the lines
    ``docker load`` prints, as ``{"stream": "Loaded image: busybox:latest\\n"}`` (``Loaded image ID:
    sha256:...`` for an untagged image).  Nothing is recorded unless everything checks out.
    """
    emit = progress or (lambda _msg: None)
    with _all_or_nothing(store):
        contents = _read_archive(store, source, emit)
        if "manifest.json" in contents.files:  # Docker 25's archives are both: its RepoTags are simpler
            plans = _docker_plans(store, contents)
        elif "index.json" in contents.files:
            plans = _oci_plans(contents)
        else:
            raise ArchiveError("not an image archive: it has neither manifest.json (docker save) nor "
                               "index.json (an OCI image layout)")
        for plan in plans:  # every layer unpacked and checked before any image is recorded
            _unpack_layers(store, plan)
        return [_record(store, plan, emit) for plan in plans]


@contextlib.contextmanager
def _all_or_nothing(store: Store) -> Iterator[None]:
    """Hold a lease while adding; on failure, collect what was added for nothing (once the lease is
    released: gc waits for leases)."""
    try:
        with store.lease():
            yield
    except BaseException:
        store.gc(wait=False)  # returns at once, collecting nothing, if another pull or load is running
        raise


def _json(data: bytes, what: str) -> Any:
    try:
        return json.loads(data)
    except ValueError as e:
        raise ArchiveError(f"{what} is not valid JSON: {e}") from None


def _docker_plans(store: Store, contents: _Contents) -> list[_Plan]:
    entries = _json(contents.files["manifest.json"], "manifest.json")
    if not isinstance(entries, list):
        raise ArchiveError("manifest.json must be a list of {Config, RepoTags, Layers}")
    plans = []
    for entry in entries:
        try:
            config_name, layer_names = entry["Config"], list(entry["Layers"])
            repo_tags = entry.get("RepoTags") or []
        except (KeyError, TypeError) as e:
            raise ArchiveError(f"manifest.json: an entry lacks {e}") from None
        config_raw = contents.read(config_name)
        named = _NAMED_BY_DIGEST.search(contents.resolve(config_name))
        if named and digest_bytes(config_raw) != "sha256:" + named.group(1):
            raise DigestMismatch("sha256:" + named.group(1), digest_bytes(config_raw), f"image config {config_name}")
        diff_ids = _diff_ids(config_raw, config_name)
        if len(diff_ids) != len(layer_names):
            raise ArchiveError(f"manifest.json lists {len(layer_names)} layers for {config_name}, but the "
                               f"config has {len(diff_ids)} DiffIDs")
        layers = [_docker_layer(store, contents, name, diff_id) for name, diff_id in zip(layer_names, diff_ids)]
        # The store keeps images by manifest: write the one a registry would serve for these blobs.
        manifest = {"schemaVersion": 2, "mediaType": builder.OCI_MANIFEST,
                    "config": {"mediaType": builder.OCI_CONFIG, "digest": digest_bytes(config_raw),
                               "size": len(config_raw)},
                    "layers": layers}
        plans.append(_Plan(json.dumps(manifest, separators=(",", ":")).encode(), config_raw,
                           [str(parse(t)) for t in repo_tags]))
    return plans


def _diff_ids(config_raw: bytes, what: str) -> list[str]:
    try:
        diff_ids = _json(config_raw, what)["rootfs"]["diff_ids"]
    except (KeyError, TypeError):
        raise ArchiveError(f"{what} is not an image config (no rootfs.diff_ids)") from None
    return list(diff_ids)


def _docker_layer(store: Store, contents: _Contents, name: str, diff_id: str) -> dict:
    """The descriptor of a docker-archive layer.  A plain tar must hash to its DiffID (else it was
    changed); a compressed one (docker load accepts those too) is checked when it is unpacked."""
    digest = contents.blob(name)
    size = os.stat(store.blob_path(digest)).st_size
    if digest == diff_id:
        return {"mediaType": builder.OCI_LAYER, "digest": digest, "size": size}
    with store.open_blob(digest) as f:
        media_type = _sniff_layer(f.read(4))
    if media_type == builder.OCI_LAYER:
        raise DigestMismatch(diff_id, digest, f"layer {name} (its sha256 must be the DiffID its config lists)")
    return {"mediaType": media_type, "digest": digest, "size": size}


def _oci_plans(contents: _Contents) -> list[_Plan]:
    layout = _json(contents.files.get("oci-layout", b"null"), "oci-layout")
    if not isinstance(layout, dict) or layout.get("imageLayoutVersion") != "1.0.0":
        raise ArchiveError('not an OCI image layout: oci-layout must say {"imageLayoutVersion": "1.0.0"}')
    index = _json(contents.files["index.json"], "index.json")
    if not isinstance(index, dict) or not isinstance(index.get("manifests") or [], list):
        raise ArchiveError("index.json is not an OCI image index")
    plans: dict[str, _Plan] = {}  # by manifest digest: one image, several tags
    for desc in index.get("manifests") or []:
        if not isinstance(desc, dict) or not isinstance(desc.get("digest"), str):
            raise ArchiveError("index.json: a manifest entry has no digest")
        manifest_digest = _pick_manifest(contents, desc)
        manifest_raw = contents.document(contents.blob_by_digest(manifest_digest), f"manifest {manifest_digest}")
        manifest = _json(manifest_raw, f"manifest {manifest_digest}")
        try:
            config_digest = manifest["config"]["digest"]
            layer_digests = [d["digest"] for d in manifest["layers"]]
        except (KeyError, TypeError):
            raise ArchiveError(f"manifest {manifest_digest} has no config or layers") from None
        config_raw = contents.document(contents.blob_by_digest(config_digest), f"config {config_digest}")
        for digest in layer_digests:
            contents.blob_by_digest(digest)
        plan = plans.setdefault(manifest_digest, _Plan(manifest_raw, config_raw, []))
        tag = _tag_of(desc.get("annotations") or {})
        if tag and tag not in plan.tags:
            plan.tags.append(tag)
    if not plans:
        raise ArchiveError("index.json lists no image")
    return list(plans.values())


def _pick_manifest(contents: _Contents, desc: dict, depth: int = 0) -> str:
    """The digest of the image manifest ``desc`` names: an index (several platforms) is followed to
    this machine's entry, as a pull does."""
    if desc.get("mediaType") not in (OCI_INDEX, DOCKER_MANIFEST_LIST):
        return desc["digest"]
    if depth > 4:
        raise ArchiveError("indexes nested too deep")
    index = _json(contents.document(contents.blob_by_digest(desc["digest"]), "index"), f"index {desc['digest']}")
    arch = builder.host_architecture()
    for entry in index.get("manifests") or []:
        platform = (entry.get("platform") or {}) if isinstance(entry, dict) else {}
        if platform.get("os") == "linux" and platform.get("architecture") == arch:
            return _pick_manifest(contents, entry, depth + 1)
    raise ArchiveError(f"index {desc['digest']} has no image for linux/{arch}")


def _tag_of(annotations: dict) -> str | None:
    """The tag an index.json entry gives its image, as a full reference; None if it names none.

    containerd's full name wins.  The OCI annotation alone is used only if it is a full name itself
    (``busybox:latest``): a bare ``latest`` (what the OCI convention writes) says no repository."""
    if annotations.get(IMAGE_NAME):
        return str(parse(annotations[IMAGE_NAME]))
    name = annotations.get(REF_NAME) or ""
    if ":" in name or "/" in name:
        with contextlib.suppress(ValueError):
            ref = parse(name)
            return None if ref.digest else str(ref)
    return None


def _unpack_layers(store: Store, plan: _Plan) -> None:
    from minicontainer.image.pull import unpack_layer  # pull imports the HTTP client: only when needed

    layers = _json(plan.manifest_raw, "manifest")["layers"]
    diff_ids = _diff_ids(plan.config_raw, "image config")
    if len(layers) != len(diff_ids):
        raise ArchiveError(f"the manifest lists {len(layers)} layers but the config {len(diff_ids)} DiffIDs")
    chains = chain_ids(diff_ids)
    for i, desc in enumerate(layers):
        if not store.has_layer(chains[i]):
            unpack_layer(store, chains[i], chains[i - 1] if i else None, diff_ids[i], desc["digest"],
                         desc.get("mediaType", ""))


def _record(store: Store, plan: _Plan, emit: Progress) -> Image:
    image_id = digest_bytes(plan.config_raw)
    for tag in plan.tags:  # docker says when a tag leaves another image
        with contextlib.suppress(NotFound):
            old = store.resolve(tag)
            if old.id != image_id:
                emit({"stream": f"The image {parse(tag).familiar()} already exists, renaming the old one with "
                                f"ID {old.id} to empty string\n"})
    image = store.add_image(plan.manifest_raw, plan.config_raw, repo_tag=plan.tags[0] if plan.tags else None)
    for tag in plan.tags[1:]:
        image = store.tag(image.id, tag)
    for tag in plan.tags:
        emit({"stream": f"Loaded image: {parse(tag).familiar()}\n"})
    if not plan.tags:
        emit({"stream": f"Loaded image ID: {image.id}\n"})
    return image


# --- import -----------------------------------------------------------------------------------------


def import_tarball(store: Store, source: BinaryIO, *, reference: str | None = None,
                   changes: Iterable[str] = (), message: str = "") -> Image:
    """``docker import``: a tar of a root filesystem (plain, gzip or zstd) becomes a one-layer image.

    The tar is stored as it came (compressed or not) while its uncompressed bytes are hashed for
    the DiffID, in one pass; then it is unpacked like any pulled layer.  ``changes`` are Dockerfile
    instructions applied to the empty config (see :func:`apply_changes`); ``message`` is the history
    comment (default ``Imported from -``, as docker writes for a file or stdin).
    """
    from minicontainer.image.pull import install

    repo_tag = None
    if reference:
        ref = parse(reference)
        if ref.digest:
            raise ValueError(f"cannot import to '{reference}': a digest names existing content, give a tag")
        repo_tag = str(ref)
    container_config = apply_changes({}, changes)  # a bad --change fails before reading anything
    head, source = _peek(source, 4)
    if not head:
        raise ArchiveError("the input is empty: expected a tar of a root filesystem")
    media_type = _sniff_layer(head)
    with _all_or_nothing(store):
        with store.blob_writer() as writer:
            tee = _Tee(source, writer)
            sha = hashlib.sha256()
            for chunk in layer_files.uncompressed_chunks(tee, media_type):  # type: ignore[arg-type]
                sha.update(chunk)
            while tee.read(CHUNK):  # whatever follows the compressed stream belongs to the blob too
                pass
            layer_digest = writer.commit()
            size = writer.offset
        diff_id = "sha256:" + sha.hexdigest()
        created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        config = {"architecture": builder.host_architecture(), "os": "linux", "created": created,
                  "config": container_config, "rootfs": {"type": "layers", "diff_ids": [diff_id]},
                  "history": [{"created": created, "comment": message or "Imported from -"}]}
        config_raw = json.dumps(config, separators=(",", ":")).encode()
        manifest = {"schemaVersion": 2, "mediaType": builder.OCI_MANIFEST,
                    "config": {"mediaType": builder.OCI_CONFIG, "digest": digest_bytes(config_raw),
                               "size": len(config_raw)},
                    "layers": [{"mediaType": media_type, "digest": layer_digest, "size": size}]}
        manifest_raw = json.dumps(manifest, separators=(",", ":")).encode()
        return install(store, manifest_raw, config_raw, repo_tag=repo_tag)


class _Tee:
    """Reads from ``source`` and writes the same bytes to ``sink``: one pass stores and hashes."""

    def __init__(self, source: BinaryIO, sink) -> None:
        self.source, self.sink = source, sink

    def read(self, n: int = -1) -> bytes:
        data = self.source.read(n)
        self.sink.write(data)
        return data


# --- --change: the Dockerfile instructions docker import and commit accept ---------------------------


def apply_changes(config: dict, changes: Iterable[str]) -> dict:
    """Apply ``--change`` instructions (``CMD ["sh"]``, ``ENV A=b``, ``WORKDIR /x``...) to an image's
    container config (the ``config`` object of the image config); returns it.

    The subset ``docker import`` accepts: CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, STOPSIGNAL,
    USER, VOLUME, WORKDIR.  Not done here: ``$VAR`` substitution, and the escape directive.
    """
    for change in changes:
        words = change.strip().split(None, 1)
        if not words:
            continue
        instruction, rest = words[0].upper(), (words[1].strip() if len(words) > 1 else "")
        apply = _INSTRUCTIONS.get(instruction)
        if apply is None:
            raise ValueError(f"{words[0]} is not a valid change command (import accepts "
                             f"{', '.join(sorted(_INSTRUCTIONS))})")
        if not rest:
            raise ValueError(f"{instruction} requires at least one argument")
        apply(config, rest)
    return config


def _exec_form(rest: str) -> list[str]:
    """``["sh", "-c", "x"]`` (JSON: run as is) or ``sh -c x`` (shell form: run by /bin/sh -c)."""
    if rest.startswith("["):
        with contextlib.suppress(ValueError):
            words = json.loads(rest)
            if isinstance(words, list) and all(isinstance(w, str) for w in words):
                return words
    return ["/bin/sh", "-c", rest]  # as Docker: text that is not a JSON list of strings is the shell form


def _pairs(rest: str, instruction: str) -> list[tuple[str, str]]:
    """``A=1 B="two words"`` -> [(A, 1), (B, two words)]; the old form ``A one value`` -> [(A, one value)]."""
    words = shlex.split(rest)
    if "=" not in words[0]:
        key, _, value = rest.partition(" ")
        return [(key, value.strip())]
    pairs = []
    for word in words:
        key, eq, value = word.partition("=")
        if not eq or not key:
            raise ValueError(f"{instruction}: '{word}' is not of the form name=value")
        pairs.append((key, value))
    return pairs


def _env(config: dict, rest: str) -> None:
    env = config.setdefault("Env", [])
    for key, value in _pairs(rest, "ENV"):
        env[:] = [e for e in env if e.split("=", 1)[0] != key] + [f"{key}={value}"]


def _label(config: dict, rest: str) -> None:
    config.setdefault("Labels", {}).update(_pairs(rest, "LABEL"))


def _workdir(config: dict, rest: str) -> None:
    # A relative WORKDIR is relative to the previous one, as in a Dockerfile.
    config["WorkingDir"] = posixpath.normpath(posixpath.join(config.get("WorkingDir") or "/", rest))


def _expose(config: dict, rest: str) -> None:
    ports = config.setdefault("ExposedPorts", {})
    for word in rest.split():
        port, _, proto = word.partition("/")
        proto = (proto or "tcp").lower()
        first, _, last = port.partition("-")
        if not first.isdigit() or (last and not last.isdigit()) or proto not in ("tcp", "udp", "sctp"):
            raise ValueError(f"EXPOSE: invalid port '{word}' (expected PORT, PORT/udp or FIRST-LAST)")
        for number in range(int(first), int(last or first) + 1):
            ports[f"{number}/{proto}"] = {}


def _volume(config: dict, rest: str) -> None:
    paths = rest.split()
    if rest.startswith("["):  # VOLUME ["/data", "/logs"]
        with contextlib.suppress(ValueError):
            paths = [str(p) for p in json.loads(rest)]
    config.setdefault("Volumes", {}).update({p: {} for p in paths})


def _setter(key: str, value: Callable[[str], object] = str) -> Callable[[dict, str], None]:
    """An instruction that sets one field: ``USER x`` sets ``User``, ``CMD ...`` sets ``Cmd``."""

    def apply(config: dict, rest: str) -> None:
        config[key] = value(rest)

    return apply


def _onbuild(config: dict, rest: str) -> None:
    config.setdefault("OnBuild", []).append(rest)  # kept as text: run by a later build FROM this image


_INSTRUCTIONS: dict[str, Callable[[dict, str], None]] = {
    "CMD": _setter("Cmd", _exec_form),
    "ENTRYPOINT": _setter("Entrypoint", _exec_form),
    "ENV": _env,
    "EXPOSE": _expose,
    "LABEL": _label,
    "ONBUILD": _onbuild,
    "STOPSIGNAL": _setter("StopSignal"),
    "USER": _setter("User"),
    "VOLUME": _volume,
    "WORKDIR": _workdir,
}
