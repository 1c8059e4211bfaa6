"""Build small, real OCI/Docker images in memory and push them: the test images of the registry fixtures.

An image is made here exactly as a registry expects it, which makes this file a worked example:

1. each **layer** is a tar of files, compressed (gzip, zstd, or not at all); its **diff ID** is the
   sha256 of the *uncompressed* tar, its **digest** the sha256 of the compressed blob;
2. the **config** lists the diff IDs (``rootfs.diff_ids``) and the run defaults (``Cmd``, ``Env``);
3. the **manifest** lists the config and the layers by digest, size and media type;
4. for several platforms, an **index** lists one manifest per platform.

Everything is deterministic (fixed times, owners root, entries in the order given), so the same
files give the same digests in every test session.

Files are given as ``{path: content}``, in tar order; parent directories are added when missing::

    build_image([{"hello.txt": "hi\\n", "bin/tool": File(data, 0o755), "bin/t": Symlink("tool")}])

Whiteouts are ordinary (empty) files with the special names: ``"etc/.wh.old.conf": b""`` deletes
``/etc/old.conf`` from the layers below, ``"data/.wh..wh..opq": b""`` hides everything below in
``/data``.

It also holds :class:`ThreadedServer`, the small in-thread HTTP server the fixtures and the tests
use for token servers, blob servers and fake registries.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import json
import os
import subprocess
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import NamedTuple

import zstandard

from minicontainer.image.reference import Reference, parse
from minicontainer.image.registry import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    Platform,
    RegistryClient,
)

EPOCH = 946684800  # 2000-01-01: the mtime of every entry, for reproducible digests
CREATED = "2000-01-01T00:00:00Z"
AMD64 = Platform("linux", "amd64")
DEFAULT_ENV = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]

LAYER_TYPES = {
    ("oci", None): "application/vnd.oci.image.layer.v1.tar",
    ("oci", "gzip"): "application/vnd.oci.image.layer.v1.tar+gzip",
    ("oci", "zstd"): "application/vnd.oci.image.layer.v1.tar+zstd",
    ("docker", "gzip"): "application/vnd.docker.image.rootfs.diff.tar.gzip",
}
CONFIG_TYPES = {"oci": "application/vnd.oci.image.config.v1+json",
                "docker": "application/vnd.docker.container.image.v1+json"}
MANIFEST_FORMATS = {"oci": OCI_MANIFEST, "docker": DOCKER_MANIFEST}
INDEX_FORMATS = {"oci": OCI_INDEX, "docker": DOCKER_LIST}


class File(NamedTuple):
    data: bytes
    mode: int = 0o644


class Dir(NamedTuple):
    mode: int = 0o755


class Symlink(NamedTuple):
    target: str


class Hardlink(NamedTuple):
    target: str  # path inside the layer, e.g. "bin/busybox"


Entry = bytes | str | File | Dir | Symlink | Hardlink


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer_tar(files: dict[str, Entry]) -> bytes:
    """An uncompressed layer tar of ``files`` (in the given order; missing parent dirs added first)."""
    out = io.BytesIO()
    seen: set[str] = set()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:

        def add(name: str, entry: Entry) -> None:
            info = tarfile.TarInfo(name)
            info.mtime, info.uid, info.gid, info.uname, info.gname = EPOCH, 0, 0, "root", "root"
            data = None
            if isinstance(entry, str):
                entry = File(entry.encode())
            elif isinstance(entry, bytes):
                entry = File(entry)
            if isinstance(entry, File):
                info.mode, info.size, data = entry.mode, len(entry.data), io.BytesIO(entry.data)
            elif isinstance(entry, Dir):
                info.type, info.mode = tarfile.DIRTYPE, entry.mode
            elif isinstance(entry, Symlink):
                info.type, info.linkname, info.mode = tarfile.SYMTYPE, entry.target, 0o777
            elif isinstance(entry, Hardlink):
                info.type, info.linkname, info.mode = tarfile.LNKTYPE, entry.target, 0o644
            tar.addfile(info, data)
            seen.add(name)

        for path, entry in files.items():
            path = path.strip("/")
            parts = path.split("/")
            for i in range(1, len(parts)):
                parent = "/".join(parts[:i])
                if parent not in seen and parent not in files:
                    add(parent, Dir())
            add(path, entry)
    return out.getvalue()


class Layer(NamedTuple):
    media_type: str
    blob: bytes  # as pushed (compressed)
    digest: str  # sha256 of blob
    diff_id: str  # sha256 of the uncompressed tar
    files: dict[str, Entry]

    @property
    def descriptor(self) -> dict:
        return {"mediaType": self.media_type, "digest": self.digest, "size": len(self.blob)}


def make_layer(files: dict[str, Entry], compression: str | None = "gzip", fmt: str = "oci") -> Layer:
    """``compression``: ``"gzip"``, ``"zstd"`` or None (an uncompressed tar, OCI only)."""
    tar = layer_tar(files)
    if compression == "gzip":
        blob = gzip.compress(tar, compresslevel=6, mtime=0)
    elif compression == "zstd":
        blob = zstandard.ZstdCompressor(level=3).compress(tar)
    else:
        blob = tar
    media_type = LAYER_TYPES[(fmt, compression)]
    return Layer(media_type, blob, sha256(blob), sha256(tar), files)


class Image(NamedTuple):
    """One platform's image: manifest, config and layers, all as bytes with their digests."""

    manifest: bytes
    media_type: str
    digest: str  # of the manifest
    config: bytes
    config_digest: str  # = the image ID
    layers: list[Layer]
    platform: Platform

    @property
    def blobs(self) -> list[tuple[str, bytes]]:
        """(digest, bytes) of the config and the layers: what must be in the registry first."""
        return [(self.config_digest, self.config)] + [(layer.digest, layer.blob) for layer in self.layers]

    @property
    def config_json(self) -> dict:
        return json.loads(self.config)

    @property
    def diff_ids(self) -> list[str]:
        return [layer.diff_id for layer in self.layers]


def _dumps(doc: dict) -> bytes:
    return json.dumps(doc, indent=3).encode()  # indented, as registries often serve them


def build_image(layers: list[dict[str, Entry]] | list[Layer], *, compression: str | None = "gzip",
                fmt: str = "oci", cmd: list[str] | None = None, entrypoint: list[str] | None = None,
                env: list[str] | None = None, working_dir: str = "",
                platform: Platform = AMD64, labels: dict[str, str] | None = None) -> Image:
    """An image of ``layers`` (dicts of files, bottom first, or prebuilt :class:`Layer`)."""
    built = [x if isinstance(x, Layer) else make_layer(x, compression, fmt) for x in layers]
    config_doc: dict = {
        "created": CREATED,
        "architecture": platform.architecture,
        "os": platform.os,
        "config": {"Env": env if env is not None else DEFAULT_ENV, "Cmd": cmd,
                   "WorkingDir": working_dir, "Labels": labels or {}},
        "rootfs": {"type": "layers", "diff_ids": [x.diff_id for x in built]},
        "history": [{"created": CREATED, "created_by": f"imagefactory: layer {i + 1}"} for i in range(len(built))],
    }
    if entrypoint is not None:
        config_doc["config"]["Entrypoint"] = entrypoint
    if platform.variant:
        config_doc["variant"] = platform.variant
    config = _dumps(config_doc)
    manifest_doc = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_FORMATS[fmt],
        "config": {"mediaType": CONFIG_TYPES[fmt], "digest": sha256(config), "size": len(config)},
        "layers": [x.descriptor for x in built],
    }
    manifest = _dumps(manifest_doc)
    return Image(manifest, MANIFEST_FORMATS[fmt], sha256(manifest), config, sha256(config), built, platform)


class Index(NamedTuple):
    raw: bytes
    media_type: str
    digest: str
    images: dict[str, Image]  # "linux/amd64" -> Image
    extra: list[Image]  # entries that are not runnable images (an attestation)


def build_index(images: list[Image], fmt: str = "oci", attestation_for: Image | None = None) -> Index:
    """A multi-platform index of ``images``.  ``attestation_for``: add an ``unknown/unknown`` entry as
    BuildKit does on Docker Hub (a provenance document for that image): clients must skip it."""
    entries = []
    for image in images:
        plat = {"architecture": image.platform.architecture, "os": image.platform.os}
        if image.platform.variant:
            plat["variant"] = image.platform.variant
        entries.append({"mediaType": image.media_type, "digest": image.digest, "size": len(image.manifest),
                        "platform": plat})
    extra = []
    if attestation_for is not None:
        statement = make_layer({"provenance.json": '{"_type": "https://in-toto.io/Statement/v0.1"}\n'}, None)
        att = build_image([statement], platform=Platform("unknown", "unknown"), cmd=None)
        extra.append(att)
        entries.append({"mediaType": att.media_type, "digest": att.digest, "size": len(att.manifest),
                        "platform": {"architecture": "unknown", "os": "unknown"},
                        "annotations": {"vnd.docker.reference.digest": attestation_for.digest,
                                        "vnd.docker.reference.type": "attestation-manifest"}})
    doc = {"schemaVersion": 2, "mediaType": INDEX_FORMATS[fmt], "manifests": entries}
    raw = _dumps(doc)
    return Index(raw, INDEX_FORMATS[fmt], sha256(raw), {str(i.platform): i for i in images}, extra)


# --- pushing ---------------------------------------------------------------------------------------


def push_image(client: RegistryClient, ref: Reference | str, image: Image, *, tag: bool = True) -> str:
    """Push the blobs, then the manifest (under ``ref``'s tag, or by digest if ``tag`` is False)."""
    ref = parse(ref) if isinstance(ref, str) else ref
    for digest, data in image.blobs:
        client.push_blob(ref, digest, data, len(data))
    target = ref if tag else ref.with_digest(image.digest)
    return client.push_manifest(target, image.manifest, image.media_type)


def push_index(client: RegistryClient, ref: Reference | str, index: Index) -> str:
    ref = parse(ref) if isinstance(ref, str) else ref
    for image in [*index.images.values(), *index.extra]:
        push_image(client, ref, image, tag=False)
    return client.push_manifest(ref, index.raw, index.media_type)


# --- ready-made contents ---------------------------------------------------------------------------

_BUSYBOX = "/bin/busybox"


def busybox_files() -> dict[str, Entry]:
    """A real, runnable busybox root: the host's static /bin/busybox, a symlink per applet
    (``bin/sh -> busybox``...), /etc/passwd and /etc/group, /tmp (1777), /root (700)."""
    return dict(_busybox_files())


@functools.cache
def _busybox_files() -> dict[str, Entry]:
    path = _BUSYBOX if os.path.exists(_BUSYBOX) else "/usr/bin/busybox"
    with open(path, "rb") as f:
        binary = f.read()
    applets = subprocess.run([path, "--list"], capture_output=True, text=True, check=True).stdout.split()
    files: dict[str, Entry] = {"bin": Dir(), "bin/busybox": File(binary, 0o755)}
    for applet in sorted(set(applets) - {"busybox"}):
        files[f"bin/{applet}"] = Symlink("busybox")
    files.update({
        "etc/passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        "etc/group": "root:x:0:\nnogroup:x:65534:\n",
        "tmp": Dir(0o1777), "root": Dir(0o700), "home": Dir(), "var": Dir(),
    })
    return files


# --- small HTTP servers in threads -----------------------------------------------------------------


class QuietHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):
        pass

    def reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


class ThreadedServer:
    """A ThreadingHTTPServer on 127.0.0.1 with a free port, in a daemon thread; ``with`` stops it."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.httpd.owner = self  # handlers reach their server object through self.server.owner
        self.port = self.httpd.server_address[1]
        self.host = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.host}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    def start(self) -> ThreadedServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
