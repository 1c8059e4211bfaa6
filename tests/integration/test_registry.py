"""The registry client against real local registries (distribution 2.8) and a few fake servers.

Real registries (see conftest.py): anonymous, token auth, Basic auth, and blob redirects to another
host.  Fake servers stand in where a real registry cannot be made to misbehave on cue: a 429 rate
limit, a 503, a server that ignores ``Range``.  A TCP proxy cuts a real download halfway.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid

import pytest
from imagefactory import QuietHandler, ThreadedServer, build_image, push_image, sha256

from minicontainer.image.auth import (
    load_docker_credentials,
    parse_www_authenticate,
    save_login,
    token_from_response,
)
from minicontainer.image.digest import DigestMismatch, VerifyingWriter, digest_bytes
from minicontainer.image.reference import parse
from minicontainer.image.registry import (
    DOCKER_MANIFEST,
    OCI_MANIFEST,
    Platform,
    RateLimitError,
    RegistryAuthError,
    RegistryClient,
    RegistryError,
)


def fetch(client, ref, digest, size=None) -> bytes:
    """Download a blob through a VerifyingWriter, as the store does; verified."""
    sink = VerifyingWriter(io.BytesIO(), digest)
    client.fetch_blob(ref, digest, sink, size=size)
    sink.verify()
    return sink.out.getvalue()


def unique(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def small_image(text: str = ""):
    """A one-layer image whose content differs per call (so its blobs are new to any registry)."""
    return build_image([{"id.txt": (text or uuid.uuid4().hex) + "\n"}], cmd=["cat", "/id.txt"])


# --- anonymous pulls ---------------------------------------------------------------------------------


def test_pull_busybox_manifest_and_blobs(fixture_images):
    fx = fixture_images.busybox
    with fixture_images.registry.client() as client:
        m = client.get_manifest(fx.ref)
        assert (m.media_type, m.digest, m.raw, m.index_digest) == (DOCKER_MANIFEST, fx.digest, fx.image.manifest,
                                                                   None)
        config = fetch(client, fx.ref, m.config_digest)
        assert json.loads(config)["config"]["Cmd"] == ["sh"]
        progress = []
        layer = m.layers[0]
        sink = VerifyingWriter(io.BytesIO(), layer["digest"])
        client.fetch_blob(fx.ref, layer["digest"], sink, size=layer["size"], progress=lambda d, t: progress.append((d, t)))
        assert sink.verify() == layer["digest"]
        assert progress[-1] == (layer["size"], layer["size"])
        # The diff ID in the config is the sha256 of the uncompressed tar.
        assert digest_bytes(gzip.decompress(sink.out.getvalue())) == json.loads(config)["rootfs"]["diff_ids"][0]
        # By digest, and the same manifest under another tag.
        assert client.get_manifest(fx.ref.with_digest(fx.digest)).raw == fx.image.manifest
        assert client.get_manifest(fx.ref.with_tag("1.36")).digest == fx.digest
        assert client.blob_exists(fx.ref, m.config_digest)
        assert not client.blob_exists(fx.ref, sha256(b"nothing"))


def test_fixture_images_are_what_they_say(fixture_images):
    with fixture_images.registry.client() as client:
        z = client.get_manifest(fixture_images.zstd.ref)
        assert [x["mediaType"] for x in z.layers] == ["application/vnd.oci.image.layer.v1.tar+zstd",
                                                      "application/vnd.oci.image.layer.v1.tar"]
        w = client.get_manifest(fixture_images.whiteout.ref)
        assert w.media_type == OCI_MANIFEST and len(w.layers) == 3
        t = client.get_manifest(fixture_images.tiny.ref)
        assert t.digest == fixture_images.tiny.digest


def test_skopeo_reads_our_images(fixture_images):
    """A peer client agrees: the images we build and push are valid for other tools too."""
    if not shutil.which("skopeo"):
        pytest.skip("skopeo is not installed")
    out = subprocess.run(["skopeo", "inspect", "--tls-verify=false", "--raw",
                          f"docker://{fixture_images.multiarch.name}"], capture_output=True, text=True, timeout=30,
                         check=False)
    assert out.returncode == 0, out.stderr
    assert digest_bytes(out.stdout.encode()) == fixture_images.multiarch.digest
    out = subprocess.run(["skopeo", "inspect", "--tls-verify=false", "--config",
                          f"docker://{fixture_images.busybox.name}"], capture_output=True, text=True, timeout=30,
                         check=False)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["config"]["Cmd"] == ["sh"]


def test_multiplatform_index_selects_the_platform(fixture_images):
    fx = fixture_images.multiarch
    with fixture_images.registry.client() as client:
        amd = client.get_manifest(fx.ref, platform=Platform.parse("linux/amd64"))
        arm = client.get_manifest(fx.ref, platform=Platform.parse("linux/arm64/v8"))
        assert amd.digest == fx.platforms["linux/amd64"].digest
        assert arm.digest == fx.platforms["linux/arm64/v8"].digest
        assert amd.index_digest == arm.index_digest == fx.digest
        assert digest_bytes(amd.index_raw) == fx.digest
        assert client.get_manifest(fx.ref, platform=Platform.parse("arm64")).digest == arm.digest
        # The host's platform by default (this test VM: x86_64 = amd64).
        if Platform.host().architecture == "amd64":
            assert client.get_manifest(fx.ref).digest == amd.digest
        # By the index's digest.
        assert client.get_manifest(fx.ref.with_digest(fx.digest), platform=Platform.parse("arm64")).digest \
            == arm.digest
        with pytest.raises(RegistryError) as e:
            client.get_manifest(fx.ref, platform=Platform.parse("linux/arm/v7"))
        assert "no matching manifest for linux/arm/v7" in str(e.value)
        assert "linux/amd64, linux/arm64/v8" in str(e.value) and "unknown" not in str(e.value)
        # A platform blob is the platform's own.
        layer = arm.layers[0]["digest"]
        assert b"arm64\n" in gzip.decompress(fetch(client, fx.ref, layer))


def test_missing_manifest_and_repository(registry):
    with registry.client() as client:
        with pytest.raises(RegistryError) as e:
            client.get_manifest(registry.ref("library/busybox:no-such-tag"))
        assert "manifest for" in str(e.value) and "not found" in str(e.value)
        with pytest.raises(RegistryError) as e:
            client.get_manifest(registry.ref(f"nobody/{unique()}:latest"))
        # distribution 2.8 says MANIFEST_UNKNOWN for a repository that does not exist, too.
        assert "not found" in str(e.value) and e.value.status == 404


def test_tags_list(registry):
    repo = f"tests/{unique('tags')}"
    image = small_image()
    with registry.client() as client:
        for tag in ("v2", "v1", "latest"):
            push_image(client, registry.ref(f"{repo}:{tag}"), image)
        assert sorted(client.tags(registry.ref(repo))) == ["latest", "v1", "v2"]


def test_mirror_fallback_for_docker_hub_names(fixture_images):
    """docker.io names go to the mirrors first; a dead mirror is skipped with a notice."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"  # nothing listens there once closed
    notices: list[str] = []
    with fixture_images.registry.client(mirrors=[dead, fixture_images.registry.url],
                                        on_notice=notices.append) as client:
        m = client.get_manifest(parse("busybox"))
        assert m.digest == fixture_images.busybox.digest
        fetch(client, parse("busybox"), m.config_digest)
    assert any(dead in n for n in notices), notices


# --- push ------------------------------------------------------------------------------------------


def test_push_upload_in_chunks_mount_and_exists(registry):
    data = os.urandom(300_000)
    digest = sha256(data)
    a, b = registry.ref(f"tests/{unique('a')}"), registry.ref(f"tests/{unique('b')}")
    with registry.client(upload_chunk_size=64 * 1024) as client:  # 5 PATCHes
        assert client.push_blob(a, digest, io.BytesIO(data), len(data)) == "uploaded"
        assert client.push_blob(a, digest, data, len(data)) == "exists"
        assert client.push_blob(b, digest, data, len(data), mount_from=a) == "mounted"  # 201, no bytes sent
        assert fetch(client, b, digest) == data
        # An empty blob (some images have one) uploads with no PATCH at all.
        assert client.push_blob(a, sha256(b""), b"", 0) == "uploaded"


def test_push_manifest_returns_digest_and_checks_it(registry):
    image = small_image()
    ref = registry.ref(f"tests/{unique()}:v1")
    with registry.client() as client:
        assert push_image(client, ref, image) == image.digest
        assert client.get_manifest(ref).raw == image.manifest
        with pytest.raises(DigestMismatch):
            client.push_manifest(ref.with_digest(sha256(b"other")), image.manifest, image.media_type)
        with pytest.raises(RegistryError) as e:  # its blobs are not in this repository
            client.push_manifest(registry.ref(f"tests/{unique()}:v1"), image.manifest, image.media_type)
        assert "BLOB_UNKNOWN" in str(e.value) or "MANIFEST_BLOB_UNKNOWN" in str(e.value)


# --- token auth ------------------------------------------------------------------------------------


def test_token_auth_pull_caches_tokens(token_registry):
    ts = token_registry.token_server
    ref = token_registry.ref(f"tests/{unique()}:latest")
    image = small_image()
    with token_registry.client() as pusher:
        push_image(pusher, ref, image)
    assert any(r["user"] == "tokenuser" and f"repository:{ref.path}:pull,push" in r["scopes"] for r in ts.requests)

    with token_registry.client(credentials=None) as client:  # anonymous pull
        before = ts.issued
        m = client.get_manifest(ref)
        assert ts.issued == before + 1
        assert ts.requests[-1]["scopes"] == [f"repository:{ref.path}:pull"] and ts.requests[-1]["user"] is None
        assert ts.requests[-1]["service"] == "minicontainer-test-registry"
        fetch(client, ref, m.config_digest)
        fetch(client, ref, m.layers[0]["digest"])
        client.get_manifest(ref)
        assert ts.issued == before + 1, "the token must be cached and reused"


def test_token_expiry_is_honoured(token_registry):
    ts = token_registry.token_server
    ref = token_registry.ref(f"tests/{unique()}:latest")
    with token_registry.client() as pusher:
        push_image(pusher, ref, small_image())
    with ts.settings(expires_in=1), token_registry.client(credentials=None) as client:
        before = ts.issued
        client.get_manifest(ref)
        client.get_manifest(ref)
        assert ts.issued == before + 1
        time.sleep(1.1)
        client.get_manifest(ref)
        assert ts.issued == before + 2, "an expired token must be replaced"


def test_token_push_needs_login_and_wrong_password_is_clear(token_registry):
    ref = token_registry.ref(f"tests/{unique()}:latest")
    image = small_image()
    with token_registry.client(credentials=None) as anonymous, pytest.raises(RegistryAuthError) as e:
        push_image(anonymous, ref, image)
    assert "minicontainer login" in str(e.value)
    with token_registry.client(credentials=lambda host: ("tokenuser", "wrong")) as client:
        with pytest.raises(RegistryAuthError) as e:
            push_image(client, ref, image)
        assert "refused the user name and password for 'tokenuser'" in str(e.value)
        with pytest.raises(RegistryAuthError):
            client.check_login(token_registry.host, "tokenuser", "wrong")
        client.check_login(token_registry.host, "tokenuser", "token-secret")


def test_token_server_refusing(token_registry):
    ts = token_registry.token_server
    with ts.settings(refuse=True), token_registry.client(credentials=None) as client:
        with pytest.raises(RegistryAuthError) as e:
            client.get_manifest(token_registry.ref("tests/anything:latest"))
        assert "refused anonymous access" in str(e.value)


def test_token_cross_repo_mount_asks_for_both_scopes(token_registry):
    ts = token_registry.token_server
    src, dst = token_registry.ref(f"tests/{unique('src')}:v1"), token_registry.ref(f"tests/{unique('dst')}:v1")
    image = small_image()
    with token_registry.client() as client:
        push_image(client, src, image)
        layer = image.layers[0]
        assert client.push_blob(dst, layer.digest, layer.blob, len(layer.blob), mount_from=src) == "mounted"
    assert any(set(r["scopes"]) >= {f"repository:{dst.path}:pull,push", f"repository:{src.path}:pull"}
               for r in ts.requests)


# --- Basic auth ------------------------------------------------------------------------------------


def test_basic_auth(basic_registry):
    ref = basic_registry.ref(f"tests/{unique()}:latest")
    image = small_image()
    with basic_registry.client() as client:
        push_image(client, ref, image)
        m = client.get_manifest(ref)
        assert fetch(client, ref, m.config_digest) == image.config
        client.check_login(basic_registry.host, basic_registry.user, basic_registry.password)
        with pytest.raises(RegistryAuthError):
            client.check_login(basic_registry.host, basic_registry.user, "nope")
    with basic_registry.client(credentials=None) as anonymous, pytest.raises(RegistryAuthError) as e:
        anonymous.get_manifest(ref)
    assert "pull access denied" in str(e.value) and "minicontainer login" in str(e.value)
    with basic_registry.client(credentials=lambda h: ("basicuser", "wrong")) as bad, \
            pytest.raises(RegistryAuthError) as e:
        bad.get_manifest(ref)
    assert "refused the user name and password for 'basicuser'" in str(e.value)


# --- redirects -------------------------------------------------------------------------------------


def test_blob_redirect_to_another_host_without_authorization(redirect_registry):
    blob_server = redirect_registry.blob_server
    ref = redirect_registry.ref(f"tests/{unique()}:latest")
    image = small_image()
    with redirect_registry.client() as client:
        push_image(client, ref, image)
        blob_server.seen.clear()
        m = client.get_manifest(ref)
        assert fetch(client, ref, m.config_digest) == image.config
        assert fetch(client, ref, m.layers[0]["digest"]) == image.layers[0].blob
        assert client.blob_exists(ref, m.config_digest)  # HEAD is redirected too
    assert len(blob_server.seen) >= 3, "the registry should have redirected the blob requests"
    assert all("Authorization" not in headers for _, _, headers in blob_server.seen)
    assert all(path.startswith("/docker/registry/v2/blobs/sha256/") for _, path, _ in blob_server.seen)


# --- corrupted content -----------------------------------------------------------------------------


def test_tampered_blob_is_a_digest_mismatch(registry):
    ref = registry.ref(f"tests/{unique()}:latest")
    image = small_image()
    with registry.client() as client:
        push_image(client, ref, image)
        path = registry.blob_path(image.config_digest)
        data = bytearray(path.read_bytes())
        data[-5] ^= 0x20  # same length, one byte changed
        path.write_bytes(bytes(data))
        sink = VerifyingWriter(io.BytesIO(), image.config_digest)
        client.fetch_blob(ref, image.config_digest, sink)
        with pytest.raises(DigestMismatch):
            sink.verify()


def test_tampered_manifest_is_a_digest_mismatch(registry):
    ref = registry.ref(f"tests/{unique()}:latest")
    image = small_image()
    with registry.client() as client:
        push_image(client, ref, image)
        path = registry.blob_path(image.digest)
        # Still valid JSON of the same length (the registry parses it), but other bytes.
        path.write_bytes(path.read_bytes().replace(b"\n   ", b"\n\t  ", 1))
        with pytest.raises(DigestMismatch):
            client.get_manifest(ref)  # against the Docker-Content-Digest the registry announces
        with pytest.raises(DigestMismatch):
            client.get_manifest(ref.with_digest(image.digest))  # against the digest we asked for


# --- fake servers: cut downloads, Range ignored, 429, 503 --------------------------------------------


class CuttingProxy:
    """A TCP proxy to ``upstream`` that cuts the first connection whose answer passes ``cut_after``
    bytes (once), and keeps what clients sent (to see the ``Range`` header of the resumed request)."""

    def __init__(self, upstream_port: int, cut_after: int) -> None:
        self.upstream_port = upstream_port
        self.cut_after: int | None = cut_after
        self.cuts = 0
        self.sent = bytearray()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.host = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self._threads: list[threading.Thread] = []
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._spawn(self._accept)

    def _spawn(self, target, *args) -> None:
        t = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(t)
        t.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            self._sockets += [client, upstream]
            self._spawn(self._pump, client, upstream, False)
            self._spawn(self._pump, upstream, client, True)

    def _pump(self, src: socket.socket, dst: socket.socket, answers: bool) -> None:
        passed = 0
        try:
            while data := src.recv(65536):
                if answers:
                    with self._lock:
                        limit = self.cut_after
                        if limit is not None and passed + len(data) > limit:
                            self.cut_after = None
                            self.cuts += 1
                            dst.sendall(data[:limit - passed])
                            raise ConnectionAbortedError("cut on purpose")
                    passed += len(data)
                else:
                    self.sent += data
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
        self.listener.close()
        for s in self._sockets:  # shutdown, not just close: it wakes a thread blocked in recv()
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()
        for t in self._threads:
            t.join(timeout=2)


def test_cut_download_resumes_with_range(fixture_images):
    fx = fixture_images.busybox
    layer = fx.image.layers[0]
    proxy = CuttingProxy(int(fixture_images.registry.host.split(":")[1]), cut_after=len(layer.blob) // 2)
    notices: list[str] = []
    try:
        ref = parse(f"{proxy.host}/{fx.ref.path}:latest")
        with fixture_images.registry.client(on_notice=notices.append) as client:
            assert fetch(client, ref, layer.digest, size=len(layer.blob)) == layer.blob
    finally:
        proxy.close()
    assert proxy.cuts == 1
    assert b"Range: bytes=" in bytes(proxy.sent)
    assert any("resuming" in n for n in notices), notices


class FakeRegistry(ThreadedServer):
    """Answers from a script: ``script(handler, count) -> None`` is called for every request, with
    how many requests came before for the same path."""

    def __init__(self, script) -> None:
        super().__init__(_FakeHandler)
        self.script = script
        self.counts: dict[str, int] = {}
        self.headers_seen: list[dict[str, str]] = []


class _FakeHandler(QuietHandler):
    def do_GET(self):
        owner: FakeRegistry = self.server.owner
        n = owner.counts.get(self.path, 0)
        owner.counts[self.path] = n + 1
        owner.headers_seen.append(dict(self.headers))
        owner.script(self, n)

    do_HEAD = do_GET


BLOB = os.urandom(200_000)
BLOB_DIGEST = sha256(BLOB)


def test_server_ignoring_range_starts_over():
    def script(h, n):
        if n == 0:  # announce everything, send half, hang up
            h.send_response(200)
            h.send_header("Content-Length", str(len(BLOB)))
            h.end_headers()
            h.wfile.write(BLOB[:len(BLOB) // 2])
            h.wfile.flush()
            h.close_connection = True
            h.connection.shutdown(socket.SHUT_RDWR)
        else:  # ignores the Range header: the whole blob again, with 200
            assert "Range" in h.headers
            h.reply(200, BLOB)

    notices: list[str] = []
    with FakeRegistry(script) as fake, RegistryClient(on_notice=notices.append, backoff=0.01) as client:
        assert fetch(client, parse(f"{fake.host}/x/y"), BLOB_DIGEST) == BLOB
    assert any("resuming" in n for n in notices)


def test_rate_limit_429_then_success():
    def script(h, n):
        if n < 2:
            h.reply(429, b'{"errors":[{"code":"TOOMANYREQUESTS","message":"You have reached your pull rate limit."}]}',
                    {"ratelimit-limit": "100;w=21600", "ratelimit-remaining": "0;w=21600",
                     "Retry-After": "1" if n == 0 else "0", "Content-Type": "application/json"})
        else:
            h.reply(200, BLOB, {"Docker-Content-Digest": BLOB_DIGEST})

    notices: list[str] = []
    with FakeRegistry(script) as fake, RegistryClient(on_notice=notices.append, backoff=0.01) as client:
        start = time.monotonic()
        assert fetch(client, parse(f"{fake.host}/x/y"), BLOB_DIGEST) == BLOB
        assert time.monotonic() - start >= 0.9, "Retry-After: 1 must be waited for"
    assert len(notices) == 2
    assert "429 Too Many Requests" in notices[0] and "ratelimit-remaining: 0;w=21600" in notices[0]
    assert "ratelimit-limit: 100;w=21600" in notices[0] and "Retry-After: 1" in notices[0]


def test_rate_limit_gives_up_with_advice():
    def script(h, n):
        h.reply(429, b"", {"ratelimit-limit": "100;w=21600", "ratelimit-remaining": "0;w=21600", "Retry-After": "0"})

    with FakeRegistry(script) as fake, RegistryClient(retries=2, backoff=0.01) as client, \
            pytest.raises(RateLimitError) as e:
        client.get_manifest(parse(f"{fake.host}/x/y:latest"))
    text = str(e.value)
    assert "rate limit" in text and "minicontainer login" in text and "mirror" in text and "remaining: 0" in text


def test_server_errors_are_retried_with_backoff():
    manifest = build_image([{"a": "a"}]).manifest

    def script(h, n):
        if n == 0:
            h.reply(503, b"busy")
        else:
            h.reply(200, manifest, {"Content-Type": OCI_MANIFEST, "Docker-Content-Digest": sha256(manifest)})

    notices: list[str] = []
    with FakeRegistry(script) as fake, RegistryClient(on_notice=notices.append, backoff=0.01) as client:
        assert client.get_manifest(parse(f"{fake.host}/x/y:latest")).raw == manifest
        assert "Accept" in fake.headers_seen[0] and "application/vnd.oci.image.index.v1+json" in \
            fake.headers_seen[0]["Accept"]
    assert "503" in notices[0]


def test_manifest_with_wrong_announced_digest():
    manifest = build_image([{"a": "a"}]).manifest

    def script(h, n):
        h.reply(200, manifest, {"Content-Type": OCI_MANIFEST, "Docker-Content-Digest": sha256(b"something else")})

    with FakeRegistry(script) as fake, RegistryClient() as client, pytest.raises(DigestMismatch):
        client.get_manifest(parse(f"{fake.host}/x/y:latest"))


# --- credentials and challenges (no network) -------------------------------------------------------


def test_parse_www_authenticate():
    [c] = parse_www_authenticate('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
                                 'scope="repository:library/busybox:pull repository:other/x:pull"')
    assert c.scheme == "bearer" and c.params["realm"] == "https://auth.docker.io/token"
    assert c.params["service"] == "registry.docker.io"
    assert c.scopes == ["repository:library/busybox:pull", "repository:other/x:pull"]
    [c] = parse_www_authenticate('Basic realm="Registry Realm"')
    assert c == ("basic", {"realm": "Registry Realm"})
    both = parse_www_authenticate('Basic realm="a, b", Bearer realm="https://x/token",service=s')
    assert [c.scheme for c in both] == ["basic", "bearer"] and both[1].params["service"] == "s"


def test_credentials_file_round_trip(tmp_path):
    path = str(tmp_path / "cfg" / "config.json")
    save_login("127.0.0.1:5000", "alice", "p:ss", path)
    save_login("docker.io", "bob", "hub", path)
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    with open(path) as f:
        doc = json.load(f)
    assert set(doc["auths"]) == {"127.0.0.1:5000", "https://index.docker.io/v1/"}  # Docker's own keys
    creds = load_docker_credentials(path)
    assert creds == {"127.0.0.1:5000": ("alice", "p:ss"), "docker.io": ("bob", "hub")}
    assert load_docker_credentials(str(tmp_path / "missing.json")) == {}


def test_token_lifetime():
    now = 1_700_000_000.0
    t = token_from_response({"token": "a", "access_token": "b", "expires_in": 300,
                             "issued_at": "2023-11-14T22:13:20.123456789Z"}, now=now)
    assert t.value == "a"  # "token" wins over "access_token"
    assert now + 300 - 5 < t.expires_at <= now + 300.2
    t = token_from_response({"access_token": "b"}, now=now)
    assert t.value == "b" and t.expires_at == pytest.approx(now + 60 - 5)  # 60 s when not said
    # A server clock far behind ours: count from when we got it, not from its issued_at.
    t = token_from_response({"token": "a", "expires_in": 60, "issued_at": "2001-01-01T00:00:00Z"}, now=now)
    assert t.expires_at == pytest.approx(now + 55)
