"""Making an image by hand: a layer is a tar, a config is JSON, a manifest ties them by digest.

What ``docker build`` (and, in this project, the starter images and the test fixtures) produce is
nothing more than this.  Writing it out step by step shows what a registry and a store hold:

1. a **layer**: a tar of files, compressed; its *digest* is the sha256 of the compressed bytes (the
   name the registry knows it by) and its *DiffID* the sha256 of the uncompressed tar (the name the
   config uses, because it does not depend on how the tar was compressed);
2. the **config**: how to run the image (Cmd, Env...) and the DiffIDs in order;
3. the **manifest**: the config's digest and size, and each layer's digest, size and media type.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import platform
import tarfile
import time
from typing import NamedTuple

from minicontainer.image.context import add_entry
from minicontainer.image.digest import digest_bytes

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"

_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x"}


def host_architecture() -> str:
    """The OCI name of this machine's architecture (Python says x86_64 where OCI says amd64)."""
    machine = platform.machine()
    return _ARCH.get(machine, machine)


class Layer(NamedTuple):
    data: bytes  # the compressed tar, as it travels
    digest: str  # sha256 of ``data``
    diff_id: str  # sha256 of the uncompressed tar
    media_type: str


class BuiltImage(NamedTuple):
    manifest: bytes
    config: bytes
    layers: list[Layer]

    @property
    def manifest_digest(self) -> str:
        return digest_bytes(self.manifest)

    @property
    def image_id(self) -> str:
        """An image's ID is the digest of its config: the same content gets the same ID anywhere."""
        return digest_bytes(self.config)


def tar_directory(root: str, mtime: int | None = None) -> bytes:
    """A tar of everything below ``root``, with numeric owners and paths relative to it.

    ``mtime`` (seconds since 1970), when given, is every entry's modification time: the same files
    then make the same bytes, hence the same digest, whenever they were copied (reproducible builds
    call it SOURCE_DATE_EPOCH)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for top, dirs, files in os.walk(root):
            dirs.sort()
            for name in sorted(dirs) + sorted(files):
                path = os.path.join(top, name)
                add_entry(tar, path, os.path.relpath(path, root), mtime=mtime)
    return buf.getvalue()


def compress_layer(tar_bytes: bytes, compression: str = "gzip", *, oci: bool = True) -> Layer:
    """Compress a layer tar and name it both ways (digest of the compressed, DiffID of the plain)."""
    diff_id = "sha256:" + hashlib.sha256(tar_bytes).hexdigest()
    if compression == "gzip":
        # mtime=0 so the same files always give the same digest: layers are shared by content.
        data = gzip.compress(tar_bytes, compresslevel=6, mtime=0)
        media_type = OCI_LAYER_GZIP if oci else DOCKER_LAYER_GZIP
    elif compression == "zstd":
        import zstandard

        data = zstandard.ZstdCompressor(level=3).compress(tar_bytes)
        media_type = OCI_LAYER_ZSTD
    elif compression == "none":
        data, media_type = tar_bytes, OCI_LAYER
    else:
        raise ValueError(f"unknown compression '{compression}' (gzip, zstd or none)")
    return Layer(data, digest_bytes(data), diff_id, media_type)


def make_config(layers: list[Layer], *, cmd: list[str] | None = None, entrypoint: list[str] | None = None,
                env: list[str] | None = None, working_dir: str = "", user: str = "",
                labels: dict[str, str] | None = None, architecture: str | None = None,
                created_by: list[str] | None = None, created: str | None = None) -> bytes:
    created = created or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    config = {
        "architecture": architecture or host_architecture(),
        "os": "linux",
        "created": created,
        "config": {
            "Env": env or ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": cmd, "Entrypoint": entrypoint, "WorkingDir": working_dir, "User": user,
            "Labels": labels or None,
        },
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
        "history": [{"created": created, "created_by": (created_by or [])[i] if created_by and i < len(created_by)
                     else "minicontainer image builder"} for i in range(len(layers))],
    }
    return json.dumps(config, separators=(",", ":")).encode()


def make_manifest(config: bytes, layers: list[Layer], *, oci: bool = True) -> bytes:
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST if oci else DOCKER_MANIFEST,
        "config": {"mediaType": OCI_CONFIG if oci else DOCKER_CONFIG, "digest": digest_bytes(config),
                   "size": len(config)},
        "layers": [{"mediaType": layer.media_type, "digest": layer.digest, "size": len(layer.data)}
                   for layer in layers],
    }
    return json.dumps(manifest, separators=(",", ":")).encode()


def build(layer_dirs: list[str], *, compression: str = "gzip", oci: bool = True, mtime: int | None = None,
          **config) -> BuiltImage:
    """An image whose layers are the given directories, lowest first.  With ``mtime``, every file's
    time and the image's creation time are that moment: the same files give the same image ID."""
    if mtime is not None:
        config.setdefault("created", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(mtime)))
    layers = [compress_layer(tar_directory(d, mtime), compression, oci=oci) for d in layer_dirs]
    config_bytes = make_config(layers, **config)
    return BuiltImage(make_manifest(config_bytes, layers, oci=oci), config_bytes, layers)
