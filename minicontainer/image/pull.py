"""``pull``: from a name like ``busybox`` to layers on disk, the way Docker does it.

1. Parse the name (:mod:`.reference`): ``busybox`` is ``docker.io/library/busybox:latest``.
2. Ask the registry for the manifest (:mod:`.registry`).  If it is an index (one manifest per
   platform), pick this machine's platform and fetch that manifest.
3. Fetch the config: it names the layers' DiffIDs, and so their chain IDs.  A layer whose chain ID
   the store already has is not downloaded again ("Already exists").
4. Download the missing layers, several at once, each verified against its digest while it streams
   into the store; unpack each into its own directory, and check that what was unpacked hashes to
   the DiffID the config promised (else a registry could serve a layer that differs from the image).
5. Record the image under its tag and its repo digest.

Progress is reported as Docker's JSON messages (``{"status": "Downloading", "id": "a3ed95caeb02",
"progressDetail": {"current": 1024, "total": 2048}}``): the CLI prints them as ``docker pull`` does,
the daemon will stream them as the Engine API does, a notebook turns them into progress bars.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from minicontainer.image import layers as layer_files
from minicontainer.image.reference import Reference, parse
from minicontainer.image.store import Image, Store, chain_ids

if TYPE_CHECKING:  # the registry client (and requests, ~100 ms to import) only when pulling for real
    from minicontainer.image.registry import Platform, RegistryClient

Progress = Callable[[dict], None]
PARALLEL_DOWNLOADS = 3  # as dockerd's max-concurrent-downloads default


class LayerMismatch(Exception):
    """A layer unpacked to something else than the DiffID its image's config names."""


def _short(digest: str) -> str:
    return digest.split(":", 1)[1][:12]


def pull(name: str | Reference, store: Store, client: RegistryClient, *, platform: Platform | None = None,
         progress: Progress | None = None) -> Image:
    ref = parse(name) if isinstance(name, str) else name
    emit = progress or (lambda _msg: None)
    emit({"status": f"Pulling from {ref.path}", "id": ref.tag if not ref.digest else ref.digest})
    manifest = client.get_manifest(ref, platform=platform)
    repo_digest = f"{ref.name}@{manifest.index_digest or manifest.digest}"
    config_digest = manifest.config_digest
    repo_tag = str(ref.with_tag(ref.tag)) if ref.tag and not ref.digest else None

    # Already here, and already tagged so: nothing to download (the manifest request was the check).
    before = _find(store, config_digest)
    if before is not None and (repo_tag is None or repo_tag in before.repo_tags) and \
            all(store.has_layer(c) for c in before.chain_ids):
        store.add_image(manifest.raw, store.read_blob(config_digest), repo_tag=repo_tag, repo_digest=repo_digest)
        _finish(emit, ref, manifest.index_digest or manifest.digest, "Image is up to date for")
        return store.image(before.id)

    with store.lease():  # no garbage collection of what we add until the image record exists
        if not store.has_blob(config_digest):
            _download(store, client, ref, config_digest, manifest.parsed["config"].get("size"), emit, show=False)
        config_raw = store.read_blob(config_digest)
        config = json.loads(config_raw)
        diff_ids = config["rootfs"]["diff_ids"]
        descriptors = manifest.layers
        if len(diff_ids) != len(descriptors):
            raise LayerMismatch(f"the manifest lists {len(descriptors)} layers but the config {len(diff_ids)}")
        chains = chain_ids(diff_ids)

        def fetch_and_unpack(i: int) -> None:
            desc = descriptors[i]
            layer_id = _short(desc["digest"])
            if store.has_layer(chains[i]):
                emit({"status": "Already exists", "id": layer_id})
                return
            if not store.has_blob(desc["digest"]):
                _download(store, client, ref, desc["digest"], desc.get("size"), emit)
            unpack_layer(store, chains[i], chains[i - 1] if i else None, diff_ids[i], desc["digest"],
                         desc["mediaType"], emit)

        for i, desc in enumerate(descriptors):
            if not store.has_layer(chains[i]):
                emit({"status": "Pulling fs layer", "id": _short(desc["digest"])})
        with ThreadPoolExecutor(max_workers=PARALLEL_DOWNLOADS, thread_name_prefix="pull") as pool:
            for future in [pool.submit(fetch_and_unpack, i) for i in range(len(descriptors))]:
                future.result()  # re-raises the first failure
        if not store.has_blob(manifest.digest):
            store.put_blob(manifest.raw, manifest.digest)
        image = store.add_image(manifest.raw, config_raw, repo_tag=repo_tag, repo_digest=repo_digest)
    _finish(emit, ref, manifest.index_digest or manifest.digest, "Downloaded newer image for")
    return image


def _find(store: Store, image_id: str) -> Image | None:
    try:
        return store.image(image_id)
    except LookupError:
        return None


PROGRESS_INTERVAL = 0.1  # seconds between two "Downloading" messages of one layer


def _finish(emit: Progress, ref: Reference, digest: str, verdict: str) -> None:
    emit({"status": f"Digest: {digest}"})
    emit({"status": f"Status: {verdict} {ref.familiar()}"})


def _download(store: Store, client: RegistryClient, ref: Reference, digest: str, size: int | None,
              emit: Progress, *, show: bool = True) -> None:
    layer_id = _short(digest)
    last = [0.0]

    def report(done: int, total: int | None) -> None:
        # At most ten a second (and the last one): a bar needs no more, and each message travels
        # from the daemon's thread through its event loop to the client.
        now = time.monotonic()
        if show and (now - last[0] >= PROGRESS_INTERVAL or done >= (total or size or 0)):
            last[0] = now
            emit({"status": "Downloading", "id": layer_id,
                  "progressDetail": {"current": done, "total": total or size or 0}})

    with store.blob_writer(digest) as writer:
        client.fetch_blob(ref, digest, writer, size=size, progress=report)
        if show:
            emit({"status": "Verifying Checksum", "id": layer_id})
        writer.commit()  # sha256 checked here: a mismatch raises and nothing is stored
    if show:
        emit({"status": "Download complete", "id": layer_id})


def unpack_layer(store: Store, chain_id: str, parent: str | None, diff_id: str, digest: str, media_type: str,
                 emit: Progress | None = None) -> None:
    """Unpack the stored blob ``digest`` as the layer ``chain_id``, checking its DiffID."""
    emit = emit or (lambda _msg: None)
    emit({"status": "Extracting", "id": _short(digest)})

    def unpack(dest: str) -> int:
        with store.open_blob(digest) as blob:
            result = layer_files.unpack(blob, dest, media_type)
        if result.diff_id != diff_id:
            raise LayerMismatch(f"layer {digest} unpacks to {result.diff_id}, but the image's config says "
                                f"{diff_id}: the image is inconsistent (or tampered with); nothing was kept")
        return result.size

    store.add_layer(chain_id, parent, diff_id, digest, unpack)
    emit({"status": "Pull complete", "id": _short(digest)})


def install(store: Store, manifest_raw: bytes, config_raw: bytes, *, repo_tag: str | None = None,
            repo_digest: str | None = None) -> Image:
    """Record an image whose blobs are already in the store (a load, a starter), unpacking its layers."""
    manifest = json.loads(manifest_raw)
    config = json.loads(config_raw)
    diff_ids = config["rootfs"]["diff_ids"]
    chains = chain_ids(diff_ids)
    with store.lease():
        for i, desc in enumerate(manifest["layers"]):
            if not store.has_layer(chains[i]):
                unpack_layer(store, chains[i], chains[i - 1] if i else None, diff_ids[i], desc["digest"],
                             desc["mediaType"])
        return store.add_image(manifest_raw, config_raw, repo_tag=repo_tag, repo_digest=repo_digest)
