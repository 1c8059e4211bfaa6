"""Real local registries for the image tests (session-scoped: one process per kind, started on first use).

Every image test pulls from or pushes to a real registry, Debian's ``docker-registry`` (the
distribution 2.8 that Docker Hub grew from), on 127.0.0.1 with a free port and its storage in a
temporary directory.  All of them answer ``GET /v2/`` within ~0.1 s of starting and are stopped (by
PID) and deleted at the end of the session, also when tests fail.

Fixtures (each yields a :class:`RunningRegistry`: ``.host`` "127.0.0.1:PORT", ``.url``,
``.ref("name:tag")`` -> a Reference, ``.client(**kw)`` -> a RegistryClient with the right credentials,
``.blob_path(digest)`` -> the blob's file on the registry's disk):

``registry``
    anonymous, read-write, delete enabled.  ``fixture_images`` pushes the test images here.
``token_registry``
    ``auth: token``, like Docker Hub: its ``.token_server`` (a :class:`TokenServer`) issues JWTs,
    anonymous for pull, Basic credentials ``.user``/``.password`` required for push; it counts the
    tokens it issued (``.issued``), records each request (``.requests``), can ``.refuse`` everything
    and can be told ``.expires_in``.
``basic_registry``
    ``auth: htpasswd`` (bcrypt): user ``.user``, password ``.password``.
``redirect_registry``
    htpasswd auth, and blob GETs answer 307 to ``.blob_server`` (a :class:`BlobServer` on another
    port, serving the storage files) which answers 400 to any request carrying ``Authorization``,
    like a CDN's presigned URL, and records every request it saw.

``fixture_images`` (on ``registry``): see :class:`FixtureImages` for the images and their contents.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NamedTuple
from urllib.parse import parse_qs, urlsplit

import pytest
from imagefactory import (
    Dir,
    Image,
    Index,
    QuietHandler,
    ThreadedServer,
    build_image,
    build_index,
    busybox_files,
    make_layer,
    push_image,
    push_index,
)
from registry_support import RunningRegistry

from minicontainer.image.reference import Reference
from minicontainer.image.registry import Platform

SERVICE = "minicontainer-test-registry"
ISSUER = "minicontainer-test-token-issuer"


@contextlib.contextmanager
def _registry_process(kind: str, **kwargs) -> Iterator[RunningRegistry]:
    workdir = Path(tempfile.mkdtemp(prefix=f"minicontainer-{kind}-registry-"))
    reg = RunningRegistry(workdir, kind, **kwargs)
    try:
        reg.start()
        yield reg
    finally:
        reg.stop()
        shutil.rmtree(workdir, ignore_errors=True)


# --- small HTTP servers in threads -----------------------------------------------------------------


# --- the token server ------------------------------------------------------------------------------


def libtrust_key_id(public_key) -> str:
    """The key ID distribution looks keys up by (the JWT header's ``kid``): base32 of the first 240 bits
    of the sha256 of the DER SubjectPublicKeyInfo, in 12 groups of 4 separated by ':'."""
    from cryptography.hazmat.primitives import serialization

    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    b32 = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode()
    return ":".join(b32[i:i + 4] for i in range(0, 48, 4))


class TokenServer(ThreadedServer):
    """Issues registry tokens as Docker Hub's auth service does: ``GET /token?service=..&scope=..``.

    Anonymous requests get pull access; push needs the Basic credentials ``user``/``password``;
    wrong credentials are refused (401).  ``issued`` counts tokens, ``requests`` records
    ``{"scopes": [...], "user": ...}`` per request, ``refuse = True`` refuses everything,
    ``expires_in`` sets the lifetime it announces (and puts in the JWT).
    """

    def __init__(self, user: str, password: str, workdir: Path) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        super().__init__(_TokenHandler)
        self.user, self.password = user, password
        self.issued = 0
        self.requests: list[dict] = []
        self.refuse = False
        self.expires_in = 300
        self._lock = threading.Lock()
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "minicontainer test token signer")])
        now = datetime.now(UTC)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=30))
                .sign(self.key, hashes.SHA256()))
        self.cert_path = workdir / "token-signer.pem"
        self.cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        self.kid = libtrust_key_id(self.key.public_key())
        self.realm = f"{self.url}/token"

    def auth_config(self) -> dict:
        return {"token": {"realm": self.realm, "service": SERVICE, "issuer": ISSUER,
                          "rootcertbundle": str(self.cert_path)}}

    @contextlib.contextmanager
    def settings(self, **changes) -> Iterator[None]:
        """``with token_server.settings(expires_in=1): ...``: changed for the block only."""
        saved = {k: getattr(self, k) for k in changes}
        for k, v in changes.items():
            setattr(self, k, v)
        try:
            yield
        finally:
            for k, v in saved.items():
                setattr(self, k, v)

    def grant(self, query: dict[str, list[str]], authorization: str | None) -> tuple[int, dict]:
        import jwt

        user = None
        if authorization:
            try:
                user, _, password = base64.b64decode(authorization.split(" ", 1)[1]).decode().partition(":")
            except (ValueError, IndexError):
                return 400, {"details": "bad Authorization header"}
            if (user, password) != (self.user, self.password):
                return 401, {"details": "incorrect username or password"}
        scopes = [s for value in query.get("scope", []) for s in value.split()]
        with self._lock:
            self.requests.append({"scopes": scopes, "user": user, "service": query.get("service", [None])[0]})
        if self.refuse:
            return 401, {"details": "this token server refuses everything (test setting)"}
        access = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            wanted = actions.split(",")
            if "push" in wanted and user is None:
                return 401, {"details": f"push to {name} needs credentials"}
            access.append({"type": kind, "name": name, "actions": wanted})
        now = int(time.time())
        claims = {"iss": ISSUER, "sub": user or "", "aud": query.get("service", [SERVICE])[0],
                  "exp": now + self.expires_in + 5, "nbf": now - 10, "iat": now, "jti": uuid.uuid4().hex,
                  "access": access}
        token = jwt.encode(claims, self.key, algorithm="ES256", headers={"kid": self.kid})
        with self._lock:
            self.issued += 1
        # With fractions of a second, as Docker Hub's: whole seconds would shorten a 1 s token at random.
        issued_at = datetime.fromtimestamp(time.time(), UTC).strftime("%Y-%m-%dT%H:%M:%S.%f000Z")
        return 200, {"token": token, "access_token": token, "expires_in": self.expires_in, "issued_at": issued_at}


class _TokenHandler(QuietHandler):
    def do_GET(self):
        url = urlsplit(self.path)
        if url.path != "/token":
            return self.reply(404)
        status, body = self.server.owner.grant(parse_qs(url.query), self.headers.get("Authorization"))
        headers = {"Content-Type": "application/json"}
        if status == 401:
            headers["WWW-Authenticate"] = 'Basic realm="minicontainer test token server"'
        self.reply(status, json.dumps(body).encode(), headers)


# --- the blob server behind the redirect -----------------------------------------------------------


class BlobServer(ThreadedServer):
    """Serves the registry's storage files, like the CDN Docker Hub redirects blob downloads to.

    It answers 400 to any request that carries an ``Authorization`` header (as S3 presigned URLs do)
    and records ``(method, path, headers)`` of every request in ``seen``.
    """

    def __init__(self, root: Path) -> None:
        super().__init__(_BlobHandler)
        self.root = root
        self.seen: list[tuple[str, str, dict[str, str]]] = []


class _BlobHandler(QuietHandler):
    def do_GET(self):
        server: BlobServer = self.server.owner
        server.seen.append((self.command, self.path, dict(self.headers)))
        if "Authorization" in self.headers:
            return self.reply(400, b"<Error><Code>InvalidArgument</Code><Message>Only one auth mechanism "
                                   b"allowed</Message></Error>", {"Content-Type": "application/xml"})
        path = urlsplit(self.path).path
        target = (server.root / path.lstrip("/")).resolve()
        if not str(target).startswith(str(server.root.resolve()) + "/") or not target.is_file():
            return self.reply(404)
        self.reply(200, target.read_bytes(), {"Content-Type": "application/octet-stream"})

    do_HEAD = do_GET


# --- the fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def registry() -> Iterator[RunningRegistry]:
    """An anonymous read-write registry (delete enabled); the fixture images live here."""
    with _registry_process("plain") as reg:
        yield reg


@pytest.fixture(scope="session")
def token_registry() -> Iterator[RunningRegistry]:
    """A registry with ``auth: token``; ``.token_server`` is its :class:`TokenServer`."""
    user, password = "tokenuser", "token-secret"
    workdir = Path(tempfile.mkdtemp(prefix="minicontainer-token-server-"))
    server = TokenServer(user, password, workdir).start()
    try:
        with _registry_process("token", auth=server.auth_config(), user=user, password=password) as reg:
            reg.token_server = server
            yield reg
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def _htpasswd(workdir: Path, user: str, password: str) -> Path:
    import bcrypt

    path = workdir / "htpasswd"
    # Cost 5 (Go's minimum is 4): the registry checks the password on every request.
    path.write_bytes(user.encode() + b":" + bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=5)) + b"\n")
    return path


@pytest.fixture(scope="session")
def basic_registry() -> Iterator[RunningRegistry]:
    """A registry with ``auth: htpasswd`` (Basic): ``.user`` / ``.password``."""
    user, password = "basicuser", "basic-secret"
    workdir = Path(tempfile.mkdtemp(prefix="minicontainer-htpasswd-"))
    try:
        auth = {"htpasswd": {"realm": "minicontainer-test", "path": str(_htpasswd(workdir, user, password))}}
        with _registry_process("basic", auth=auth, user=user, password=password) as reg:
            yield reg
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def redirect_registry() -> Iterator[RunningRegistry]:
    """Basic auth, and blob downloads redirected (307) to ``.blob_server``, which refuses Authorization."""
    user, password = "redirectuser", "redirect-secret"
    workdir = Path(tempfile.mkdtemp(prefix="minicontainer-redirect-registry-"))
    reg = blob_server = None
    try:
        auth = {"htpasswd": {"realm": "minicontainer-test", "path": str(_htpasswd(workdir, user, password))}}
        reg = RunningRegistry(workdir / "registry", "redirect", auth=auth, user=user, password=password)
        # The blob server serves the registry's storage directory; the registry redirects to it
        # (distribution's redirect middleware keeps the baseurl's scheme and host, and appends the
        # storage path: /docker/registry/v2/blobs/sha256/<2 hex>/<hex>/data).
        blob_server = BlobServer(reg.storage).start()
        reg._middleware = {"storage": [{"name": "redirect", "options": {"baseurl": blob_server.url + "/"}}]}
        reg.start()
        reg.blob_server = blob_server
        yield reg
    finally:
        if reg is not None:
            reg.stop()
        if blob_server is not None:
            blob_server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


# --- the fixture images ----------------------------------------------------------------------------


class FixtureImage(NamedTuple):
    """One pushed image: ``ref`` (Reference), ``name`` ("127.0.0.1:PORT/library/busybox:latest"),
    ``image`` (the built :class:`imagefactory.Image`: manifest/config/layers bytes and digests)."""

    ref: Reference
    image: Image

    @property
    def name(self) -> str:
        return str(self.ref)

    @property
    def digest(self) -> str:
        return self.image.digest


class FixtureIndex(NamedTuple):
    """A pushed multi-platform index: ``ref``, ``index`` (:class:`imagefactory.Index`),
    ``platforms``: {"linux/amd64": Image, "linux/arm64/v8": Image}."""

    ref: Reference
    index: Index

    @property
    def name(self) -> str:
        return str(self.ref)

    @property
    def digest(self) -> str:
        return self.index.digest

    @property
    def platforms(self) -> dict[str, Image]:
        return self.index.images


class FixtureImages(NamedTuple):
    """The images ``fixture_images`` pushes to ``registry`` (all deterministic: same digests every session).

    ``busybox`` -- ``<registry>/library/busybox:latest``: a real, runnable busybox image, Docker v2
        manifest, one gzip layer: ``/bin/busybox`` (the host's static busybox), ``/bin/<applet>`` symlinks
        to it (``/bin/sh`` among them), ``/etc/passwd``, ``/etc/group``, ``/tmp`` (1777), ``/root``,
        ``/home``, ``/var``.  Config: ``Cmd ["sh"]``, ``Env [PATH=...]``.  Also tagged ``:1.36`` (same digest).
    ``tiny`` -- ``<registry>/tests/tiny:latest``: OCI, one small gzip layer: ``/hello.txt`` = "hello from
        minicontainer\\n", ``/etc/motd``.  No shell (not runnable): for fast pull and store tests.
        ``Cmd ["cat", "/hello.txt"]``, ``Env`` has ``GREETING=hello``, ``WorkingDir /``.
    ``multiarch`` -- ``<registry>/tests/multiarch:latest``: an OCI **index** with three entries:
        ``linux/amd64`` (layers: the busybox layer + a gzip layer with ``/platform.txt`` = "amd64\\n";
        runnable on x86_64, ``Cmd ["cat", "/platform.txt"]``), ``linux/arm64/v8`` (one layer,
        ``/platform.txt`` = "arm64\\n"; not runnable here) and an ``unknown/unknown`` attestation
        manifest (as BuildKit adds on Docker Hub) that platform selection must skip.
    ``zstd`` -- ``<registry>/tests/zstd:latest``: OCI, two layers: the busybox files as a **zstd**
        layer (``+zstd``), then an **uncompressed** tar layer (``application/vnd.oci.image.layer.v1.tar``)
        with ``/etc/motd`` = "compressed with zstd\\n".  Runnable, ``Cmd ["sh"]``.
    ``whiteout`` -- ``<registry>/tests/whiteout:latest``: OCI, gzip, three layers:
        1. busybox files;
        2. ``/etc/old.conf`` ("old\\n"), ``/etc/keep.conf`` ("keep\\n"), ``/data/a`` ("a\\n"),
           ``/data/b`` ("b\\n"), ``/data/sub/c`` ("c\\n");
        3. ``/etc/.wh.old.conf`` (deletes /etc/old.conf), then ``/data/new`` ("new\\n"), then
           ``/data/.wh..wh..opq`` (the opaque marker AFTER the layer's own entry in /data: it still
           hides only what is below).
        The expected result (``whiteout_expected``): /etc/keep.conf present, /etc/old.conf absent,
        /data holds only ``new``; no ``.wh.`` file anywhere.  ``Cmd ["ls", "/data"]`` prints "new".
    """

    busybox: FixtureImage
    tiny: FixtureImage
    multiarch: FixtureIndex
    zstd: FixtureImage
    whiteout: FixtureImage
    registry: RunningRegistry

    @property
    def whiteout_expected(self) -> dict[str, str | None]:
        """path -> content (None: must not exist) after unpacking ``whiteout``'s layers in order."""
        return {"etc/keep.conf": "keep\n", "etc/old.conf": None, "data/new": "new\n", "data/a": None,
                "data/b": None, "data/sub": None, "data/.wh..wh..opq": None, "etc/.wh.old.conf": None}


@pytest.fixture(scope="session")
def fixture_images(registry: RunningRegistry) -> FixtureImages:
    """Push the test images (see :class:`FixtureImages`) to ``registry``; takes ~0.5 s once per session."""
    client = registry.client()
    base = make_layer(busybox_files(), "gzip")
    busybox = build_image([make_layer(busybox_files(), "gzip", "docker")], fmt="docker", cmd=["sh"])
    for tag in ("latest", "1.36"):
        push_image(client, registry.ref(f"library/busybox:{tag}"), busybox)

    tiny = build_image([{"hello.txt": "hello from minicontainer\n", "etc/motd": "welcome\n"}],
                       cmd=["cat", "/hello.txt"], env=["PATH=/bin", "GREETING=hello"], working_dir="/")
    push_image(client, registry.ref("tests/tiny:latest"), tiny)

    amd64 = build_image([base, make_layer({"platform.txt": "amd64\n"})], cmd=["cat", "/platform.txt"],
                        platform=Platform("linux", "amd64"))
    arm64 = build_image([{"platform.txt": "arm64\n"}], cmd=["cat", "/platform.txt"],
                        platform=Platform("linux", "arm64", "v8"))
    index = build_index([amd64, arm64], attestation_for=amd64)
    push_index(client, registry.ref("tests/multiarch:latest"), index)

    zstd = build_image([make_layer(busybox_files(), "zstd"), make_layer({"etc/motd": "compressed with zstd\n"},
                                                                        None)], cmd=["sh"])
    push_image(client, registry.ref("tests/zstd:latest"), zstd)

    whiteout = build_image([
        base,
        {"etc/old.conf": "old\n", "etc/keep.conf": "keep\n", "data/a": "a\n", "data/b": "b\n",
         "data/sub/c": "c\n"},
        {"etc": Dir(), "etc/.wh.old.conf": b"", "data": Dir(), "data/new": "new\n", "data/.wh..wh..opq": b""},
    ], cmd=["ls", "/data"])
    push_image(client, registry.ref("tests/whiteout:latest"), whiteout)
    client.close()
    return FixtureImages(
        busybox=FixtureImage(registry.ref("library/busybox:latest"), busybox),
        tiny=FixtureImage(registry.ref("tests/tiny:latest"), tiny),
        multiarch=FixtureIndex(registry.ref("tests/multiarch:latest"), index),
        zstd=FixtureImage(registry.ref("tests/zstd:latest"), zstd),
        whiteout=FixtureImage(registry.ref("tests/whiteout:latest"), whiteout),
        registry=registry,
    )


