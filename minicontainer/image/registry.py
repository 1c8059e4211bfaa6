"""The registry HTTP API v2: how images travel.

A registry is a web server with a handful of URLs per repository (``<name>`` is ``library/busybox``)::

    GET  /v2/                                  "do you speak v2?" (and: who am I to you?)
    GET  /v2/<name>/manifests/<tag|digest>     a manifest or an index (a JSON document)
    GET  /v2/<name>/blobs/<digest>             a config or a layer (may redirect to a CDN)
    HEAD /v2/<name>/blobs/<digest>             "do you have it?"
    POST /v2/<name>/blobs/uploads/             start an upload; PATCH the bytes; PUT ...&digest= to finish
    PUT  /v2/<name>/manifests/<tag|digest>     publish a manifest
    GET  /v2/<name>/tags/list                  the tags

Everything is named by digest, so nothing has to be trusted on the way: each manifest is checked
here against the digest we asked for (or the one the registry announced), and each blob is checked
by the caller's sink (:class:`minicontainer.image.digest.VerifyingWriter`) as it streams to disk.

The hard parts are the network's: a 401 means "get a token first" (:mod:`.auth`), a 429 means
"too many pulls, wait", a 307 sends the download to another host (which must NOT see our
``Authorization`` header), and a download cut halfway resumes with ``Range`` instead of starting over.
"""

from __future__ import annotations

import io
import json
import platform as _platform
import re
import time
from collections.abc import Callable, Iterable
from typing import BinaryIO, NamedTuple, Protocol, Self
from urllib.parse import quote, urljoin, urlsplit

import requests

from minicontainer.image.auth import (
    AuthError,
    Challenge,
    TokenCache,
    basic_header,
    fetch_token,
    normalize_registry_host,
    parse_www_authenticate,
)
from minicontainer.image.digest import DigestMismatch, check_digest, digest_bytes
from minicontainer.image.reference import DEFAULT_DOMAIN, Reference, is_loopback_host
from minicontainer.observe.events import Event

# The four manifest media types.  distribution 2.8 answers 404 for an OCI index when the OCI types
# are missing from Accept, and the deprecated "schema1" when Accept is empty: send them all.
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
ACCEPT = f"{OCI_INDEX}, {DOCKER_LIST}, {OCI_MANIFEST}, {DOCKER_MANIFEST}"

MAX_MANIFEST_BYTES = 4 * 1024 * 1024  # the limit registries enforce; a bigger one is not a manifest
CHUNK = 64 * 1024
_REDIRECTS = (301, 302, 303, 307, 308)
_RETRY_STATUS = (500, 502, 503, 504)
_IDEMPOTENT = ("GET", "HEAD", "PUT")
_NO_PROXY = {"http": None, "https": None}


# --- errors ----------------------------------------------------------------------------------------


class RegistryError(Exception):
    """A registry refused or failed; the message is for the user.

    ``status`` is the HTTP status (None: no answer at all), ``codes`` the registry's error codes
    (``MANIFEST_UNKNOWN``, ``DENIED``, ``NAME_UNKNOWN``...).
    """

    def __init__(self, message: str, *, status: int | None = None, codes: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.codes = list(codes)


class RegistryAuthError(RegistryError, AuthError):
    """Credentials refused or a token refused: ``minicontainer login`` is the fix."""


class RateLimitError(RegistryError):
    """429 Too Many Requests, still after waiting and retrying."""


class UnreachableError(RegistryError):
    """The registry's name does not resolve: this machine is offline, or its DNS does not know the
    name.  Not retried: waiting does not make a name resolve, and a learner should know at once."""


# --- platforms -------------------------------------------------------------------------------------

# Python names machines as the kernel does (uname -m); images use Go's names.
_MACHINE_TO_PLATFORM = {
    "x86_64": ("amd64", None), "amd64": ("amd64", None),
    "aarch64": ("arm64", "v8"), "arm64": ("arm64", "v8"),
    "armv7l": ("arm", "v7"), "armv6l": ("arm", "v6"), "armv5tel": ("arm", "v5"),
    "i386": ("386", None), "i686": ("386", None),
    "ppc64le": ("ppc64le", None), "s390x": ("s390x", None), "riscv64": ("riscv64", None),
}


class Platform(NamedTuple):
    """Which build of an image: ``linux/amd64``, ``linux/arm64/v8``, ``linux/arm/v7``..."""

    os: str
    architecture: str
    variant: str | None = None

    @classmethod
    def parse(cls, text: str) -> Platform:
        """``linux/arm64/v8`` -> Platform("linux", "arm64", "v8"); the os may be left out (``arm64``)."""
        parts = text.strip().lower().split("/")
        if len(parts) == 1:
            parts = ["linux", *parts]
        if len(parts) > 3 or not all(parts):
            raise ValueError(f"invalid platform '{text}': expected OS/ARCH[/VARIANT], e.g. linux/arm64/v8")
        machine = _MACHINE_TO_PLATFORM.get(parts[1])
        arch = machine[0] if machine else parts[1]
        return cls(parts[0], arch, parts[2] if len(parts) == 3 else None)

    @classmethod
    def host(cls) -> Platform:
        """The platform of this machine (what ``docker pull`` picks by default)."""
        machine = _platform.machine().lower()
        arch, variant = _MACHINE_TO_PLATFORM.get(machine, (machine, None))
        return cls("linux", arch, variant)

    def matches(self, entry: dict) -> bool:
        """Does an index entry's ``platform`` object fit?  os and architecture must be equal; the
        variant too when we ask for one (arm64 without a variant is v8, as Docker assumes)."""
        os_, arch = entry.get("os"), entry.get("architecture")
        if os_ != self.os or arch != self.architecture:
            return False
        if not self.variant:
            return True
        variant = entry.get("variant") or ("v8" if arch == "arm64" else None)
        return variant == self.variant

    def __str__(self) -> str:
        return "/".join(p for p in self if p)


def select_platform(index: dict, wanted: Platform) -> dict:
    """The first entry of an index (``manifests[]``) built for ``wanted``; RegistryError if none."""
    entries = index.get("manifests") or []
    for entry in entries:
        if wanted.matches(entry.get("platform") or {}):
            return entry
    available = sorted({str(Platform(p.get("os", "?"), p.get("architecture", "?"), p.get("variant")))
                        for p in (e.get("platform") or {} for e in entries) if p.get("os") != "unknown"})
    raise RegistryError(f"no matching manifest for {wanted} in the manifest list entries "
                        f"(the image is built for: {', '.join(available) or 'nothing'})")


# --- what the client hands back --------------------------------------------------------------------


class Manifest(NamedTuple):
    """One image manifest (never an index: :meth:`RegistryClient.get_manifest` has chosen already)."""

    media_type: str
    raw: bytes  # exactly as served: its sha256 is ``digest``; store these bytes, not a re-encoding
    digest: str
    parsed: dict
    index_digest: str | None = None  # the index/list it was chosen from (what a tag points to), if any
    index_raw: bytes | None = None  # that index's bytes, as served (its sha256 is index_digest)

    @property
    def config_digest(self) -> str:
        return self.parsed["config"]["digest"]

    @property
    def layers(self) -> list[dict]:
        """The layer descriptors: ``mediaType``, ``digest``, ``size`` (and ``urls`` for foreign layers)."""
        return self.parsed.get("layers") or []


class Sink(Protocol):
    """Where :meth:`RegistryClient.fetch_blob` writes: e.g. a :class:`~minicontainer.image.digest.VerifyingWriter`."""

    offset: int

    def write(self, chunk: bytes) -> object: ...
    def reset(self) -> None: ...


class _Endpoint(NamedTuple):
    base: str  # "https://registry-1.docker.io"
    key: str  # the name credentials and tokens are kept under: "docker.io", "127.0.0.1:5000"
    mirror: bool


class _Cut(Exception):
    """The body ended before its announced length: the connection was cut."""


def _error_text(resp: requests.Response) -> tuple[str, list[str]]:
    """The registry's JSON errors as ``CODE: message`` (the spec's ``errors[].code/message``)."""
    try:
        errors = resp.json().get("errors") or []
        codes = [str(e.get("code", "")) for e in errors]
        text = "; ".join(f"{e.get('code', '?')}: {e.get('message', '')}".strip() for e in errors)
        return text or resp.text[:200].strip(), codes
    except (ValueError, AttributeError):
        return resp.text[:200].strip(), []


# --- the client ------------------------------------------------------------------------------------


class RegistryClient:
    """Speaks the registry HTTP API v2 for pulls and pushes.

    ``credentials(host)`` gives ``(user, password)`` for a registry (``host`` as in references:
    ``docker.io``, ``127.0.0.1:5000``), e.g. ``load_docker_credentials().get``.  ``mirrors`` work like
    Docker's ``registry-mirrors``: for docker.io only, tried in order, then Docker Hub itself.
    ``insecure`` hosts are spoken to over plain http; loopback hosts always are.  ``on_notice`` gets
    plain-words messages worth showing the user (rate limits, retries, resumed downloads).

    One client may be shared by threads downloading layers in parallel (the token cache is locked;
    requests' connection pool is thread-safe).
    """

    def __init__(self, *, credentials: Callable[[str], tuple[str, str] | None] | None = None,
                 mirrors: Iterable[str] = (), insecure: Iterable[str] = (),
                 user_agent: str = "minicontainer/0.1", timeout: float = 30, retries: int = 4,
                 on_notice: Callable[[str], None] | None = None, backoff: float = 0.5,
                 max_wait: float = 60, upload_chunk_size: int = 8 * 1024 * 1024) -> None:
        self.credentials = credentials or (lambda host: None)
        self.mirrors = [m.rstrip("/") for m in mirrors]
        self.insecure = {normalize_registry_host(h) for h in insecure}
        self.user_agent = user_agent
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff  # first wait between retries, doubled each time
        self.max_wait = max_wait  # the longest we wait on a Retry-After
        self.upload_chunk_size = upload_chunk_size
        self.on_notice = on_notice or (lambda message: None)
        self.session = requests.Session()
        self.tokens = TokenCache()
        self._challenges: dict[str, Challenge] = {}  # registry -> how it wants to be authenticated
        self._dead_mirrors: set[str] = set()

    def explain(self, listener: Callable[[Event], None]) -> None:
        """Tell ``listener`` of every HTTP exchange with a registry or token server, as an :class:`Event`
        (``pull --explain``).  A requests response hook sees them all, token requests included."""

        def hook(resp: requests.Response, *args: object, **kwargs: object) -> None:
            listener(exchange_event(resp))

        self.session.hooks["response"].append(hook)

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- where to send requests --------------------------------------------------------------------

    def _base_url(self, host: str) -> str:
        if "://" in host:
            return host.rstrip("/")
        plain = is_loopback_host(host) or normalize_registry_host(host) in self.insecure
        return ("http://" if plain else "https://") + host

    def _endpoint(self, ref: Reference) -> _Endpoint:
        return _Endpoint(self._base_url(ref.api_host()), ref.domain, False)

    def _pull_endpoints(self, ref: Reference) -> list[_Endpoint]:
        """Mirrors first (docker.io only, like Docker), then the registry itself."""
        endpoints = []
        if ref.domain == DEFAULT_DOMAIN:
            for mirror in self.mirrors:
                if mirror not in self._dead_mirrors:
                    base = self._base_url(mirror)
                    endpoints.append(_Endpoint(base, normalize_registry_host(base), True))
        return [*endpoints, self._endpoint(ref)]

    def _on_pull_endpoints(self, ref: Reference, op: Callable[[_Endpoint], object]):
        endpoints = self._pull_endpoints(ref)
        for endpoint in endpoints:
            try:
                return op(endpoint)
            except (RegistryError, DigestMismatch) as e:
                if not endpoint.mirror:
                    raise
                if e.__cause__ is not None and isinstance(e.__cause__, requests.ConnectionError):
                    self._dead_mirrors.add(endpoint.base)
                self.on_notice(f"mirror {endpoint.base} failed ({e}); trying the next source")
        raise AssertionError("unreachable: the last endpoint is the registry itself")

    @staticmethod
    def _url(endpoint: _Endpoint, ref: Reference, tail: str) -> str:
        return f"{endpoint.base}/v2/{ref.path}/{tail}"

    # -- sending, with auth, retries and redirects -------------------------------------------------

    def _auth_header(self, endpoint: _Endpoint, scopes: list[str]) -> str | None:
        """What to send before being asked: a cached token, or Basic credentials for a Basic registry."""
        challenge = self._challenges.get(endpoint.key)
        if challenge is None:
            return None
        if challenge.scheme == "basic":
            creds = self.credentials(endpoint.key)
            return basic_header(*creds) if creds else None
        token = self.tokens.get(endpoint.key, scopes)
        if token is None:
            # We know this registry's token server already: get the token now, save a 401 round trip.
            token = self._get_token(endpoint, challenge, scopes)
        return "Bearer " + token

    def _get_token(self, endpoint: _Endpoint, challenge: Challenge, ask_for: list[str],
                   cache_under: list[str] | None = None) -> str:
        """A token from the registry's token server for the scopes ``ask_for``, cached (under
        ``cache_under``: the scopes our request needs, which is what the next lookup will ask)."""
        try:
            token = fetch_token(self.session, challenge, ask_for, self.credentials(endpoint.key),
                                registry=endpoint.key, timeout=self.timeout, user_agent=self.user_agent)
        except AuthError as e:
            raise RegistryAuthError(str(e)) from e
        self.tokens.put(endpoint.key, ask_for if cache_under is None else cache_under, token)
        return token.value

    def _answer_challenge(self, endpoint: _Endpoint, resp: requests.Response, scopes: list[str],
                          sent: str | None) -> bool:
        """After a 401: learn how this registry authenticates and get ready to retry.

        Returns True when a retry may succeed (a new token; credentials for a Basic registry).
        """
        challenges = parse_www_authenticate(resp.headers.get("WWW-Authenticate", ""))
        bearer = next((c for c in challenges if c.scheme == "bearer"), None)
        basic = next((c for c in challenges if c.scheme == "basic"), None)
        if bearer:
            self._challenges[endpoint.key] = bearer
            self.tokens.forget(endpoint.key, scopes)
            # Ask for the challenge's scopes (never hard-coded) plus ours (a push or a mount needs more).
            self._get_token(endpoint, bearer, sorted(set(scopes) | set(bearer.scopes)), cache_under=scopes)
            return True
        if basic:
            self._challenges[endpoint.key] = basic
            creds = self.credentials(endpoint.key)
            if creds and sent and sent.startswith("Basic "):
                raise RegistryAuthError(f"login to {endpoint.key} failed: it refused the user name and password "
                                        f"for '{creds[0]}'; check them with `minicontainer login {endpoint.key}`",
                                        status=401)
            return creds is not None
        return False

    def _request(self, method: str, endpoint: _Endpoint, url: str, *, scopes: list[str],
                 headers: dict[str, str] | None = None, data: bytes | None = None,
                 stream: bool = False, retries: int | None = None) -> requests.Response:
        """One API call: authenticate (answering one 401 challenge), retry, follow redirects.

        A second 401 after a fresh token is returned to the caller: the token server gave us a
        token without the access we need (how Docker Hub says "no such repository, or private").
        """
        if retries is None:
            # A mirror that fails is skipped at once (the next source is there), not retried.
            retries = 0 if endpoint.mirror else self.retries

        def send() -> tuple[requests.Response, str | None]:
            hdrs = {"User-Agent": self.user_agent, **(headers or {})}
            auth = self._auth_header(endpoint, scopes)
            if auth:
                hdrs["Authorization"] = auth
            return self._send(method, url, hdrs, data=data, stream=stream, retries=retries), auth

        resp, auth = send()
        if resp.status_code == 401 and self._answer_challenge(endpoint, resp, scopes, auth):
            resp.close()
            resp, auth = send()
            if resp.status_code == 401 and auth and auth.startswith("Basic "):
                self._answer_challenge(endpoint, resp, scopes, auth)  # raises: the password is wrong
        return resp

    def _send(self, method: str, url: str, headers: dict[str, str], *, data: bytes | None,
              stream: bool, retries: int) -> requests.Response:
        """Send, retrying connection errors and 5xx (with exponential backoff) and 429 (after the
        wait the registry asks for).  Connection errors are retried only for idempotent methods: a
        POST or PATCH may have reached the registry before the connection broke."""
        attempt = 0
        while True:
            try:
                resp = self._follow(method, url, headers, data=data, stream=stream)
            except (requests.ConnectionError, requests.Timeout) as e:
                if _name_unresolved(e):
                    raise UnreachableError(f"cannot reach {urlsplit(url).netloc}: its name does not resolve "
                                           f"({_reason(e)}): this machine is offline, or its DNS does not know "
                                           "the registry") from e
                if method not in _IDEMPOTENT or attempt >= retries:
                    raise RegistryError(f"cannot reach {urlsplit(url).netloc}: {_reason(e)}") from e
                self._pause(attempt, f"cannot reach {urlsplit(url).netloc} ({_reason(e)})", retries)
                attempt += 1
                continue
            if resp.status_code == 429:
                wait = self._rate_limited(resp, url, attempt, retries)
                resp.close()
                time.sleep(wait)
                attempt += 1
                continue
            if resp.status_code in _RETRY_STATUS and attempt < retries:
                resp.close()
                self._pause(attempt, f"{urlsplit(url).netloc} answered {resp.status_code} {resp.reason}", retries)
                attempt += 1
                continue
            return resp

    def _follow(self, method: str, url: str, headers: dict[str, str], *, data: bytes | None,
                stream: bool) -> requests.Response:
        """Follow redirects ourselves, to make one rule visible: ``Authorization`` never goes to
        another host.  Docker Hub sends blob downloads to a CDN with a presigned URL, which answers
        400 to a request that carries our token (and must never see it anyway)."""
        origin = urlsplit(url)[:2]  # (scheme, host:port)
        for _ in range(10):
            # A proxy from the environment (HTTP_PROXY) cannot reach our own loopback: bypass it there.
            proxies = _NO_PROXY if is_loopback_host(urlsplit(url).netloc) else None
            resp = self.session.request(method, url, headers=headers, data=data, stream=stream,
                                        timeout=self.timeout, allow_redirects=False, proxies=proxies)
            if resp.status_code not in _REDIRECTS or method not in ("GET", "HEAD") \
                    or "Location" not in resp.headers:
                return resp
            url = urljoin(url, resp.headers["Location"])
            resp.close()
            if urlsplit(url)[:2] != origin:
                headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
        raise RegistryError(f"too many redirects, last to {url}")

    def _pause(self, attempt: int, why: str, retries: int) -> None:
        wait = min(self.backoff * 2 ** attempt, self.max_wait)
        self.on_notice(f"{why}; retrying in {wait:g} s (retry {attempt + 1} of {retries})")
        time.sleep(wait)

    def _rate_limited(self, resp: requests.Response, url: str, attempt: int, retries: int) -> float:
        """Explain a 429 to the user; return how long to wait, or raise when out of retries."""
        host = urlsplit(url).netloc
        facts = []
        for header in ("ratelimit-limit", "ratelimit-remaining", "Retry-After"):
            if header in resp.headers:
                facts.append(f"{header}: {resp.headers[header]}")
        detail = f" ({', '.join(facts)})" if facts else ""
        try:
            wait = float(resp.headers.get("Retry-After", ""))
        except ValueError:
            wait = self.backoff * 2 ** attempt  # absent, or an HTTP date: back off as for an error
        wait = max(0.0, min(wait, self.max_wait))
        if attempt >= retries:
            raise RateLimitError(
                f"rate limit reached on {host}: it refused with 429 Too Many Requests{detail}, still after "
                f"{retries} retries. Log in (`minicontainer login`) for a higher limit, wait until the limit "
                "resets, or pull through a registry mirror.", status=429)
        self.on_notice(f"{host} is limiting how many pulls we may make: 429 Too Many Requests{detail}. "
                       f"Waiting {wait:g} s, then retrying (retry {attempt + 1} of {retries}).")
        return wait

    def _fail(self, resp: requests.Response, what: str) -> RegistryError:
        text, codes = _error_text(resp)
        cls = RegistryAuthError if resp.status_code in (401, 403) else RegistryError
        return cls(f"{what}: the registry answered {resp.status_code} {resp.reason}"
                   + (f": {text}" if text else ""), status=resp.status_code, codes=codes)

    # -- pulling -----------------------------------------------------------------------------------

    @staticmethod
    def _pull_scope(ref: Reference) -> list[str]:
        return [f"repository:{ref.path}:pull"]

    def get_manifest(self, ref: Reference, *, platform: Platform | None = None) -> Manifest:
        """The image manifest for ``ref``; from an index, the one for ``platform`` (default: this host's).

        Every manifest body is checked against its digest: the one in ``ref`` (or in the index)
        when pulling by digest, else the ``Docker-Content-Digest`` the registry announced.
        """
        return self._on_pull_endpoints(ref, lambda ep: self._get_manifest(ep, ref, platform))

    def _get_manifest(self, endpoint: _Endpoint, ref: Reference, platform: Platform | None) -> Manifest:
        media_type, raw, digest, parsed = self._fetch_manifest(endpoint, ref, ref.manifest_key)
        if media_type in MANIFEST_TYPES:
            return Manifest(media_type, raw, digest, parsed, None)
        # An index: one manifest per platform.  Choose, then fetch the chosen one by its digest.
        entry = select_platform(parsed, platform or Platform.host())
        child = check_digest(entry.get("digest", ""))
        child_type, child_raw, _, child_parsed = self._fetch_manifest(endpoint, ref, child)
        if child_type not in MANIFEST_TYPES:
            raise RegistryError(f"{ref}: the index entry for {platform or Platform.host()} is a "
                                f"{child_type}, not an image manifest (nested indexes are not supported)")
        return Manifest(child_type, child_raw, child, child_parsed, digest, raw)

    def _fetch_manifest(self, endpoint: _Endpoint, ref: Reference, key: str) -> tuple[str, bytes, str, dict]:
        url = self._url(endpoint, ref, f"manifests/{key}")
        resp = self._request("GET", endpoint, url, scopes=self._pull_scope(ref), headers={"Accept": ACCEPT},
                             stream=True)
        with resp:
            if resp.status_code != 200:
                raise self._manifest_error(resp, ref)
            raw = _read_limited(resp, MAX_MANIFEST_BYTES, f"the manifest of {ref}")
            announced = resp.headers.get("Docker-Content-Digest")
            content_type = resp.headers.get("Content-Type", "").split(";")[0].strip()
        digest = digest_bytes(raw)
        if key.startswith("sha256:"):
            expected = key  # by digest: the bytes must be exactly those we asked for
        elif announced and announced.startswith("sha256:"):
            expected = announced
        else:
            expected = digest
        if digest != expected:
            raise DigestMismatch(expected, digest, f"manifest of {ref.name}")
        try:
            parsed = json.loads(raw)
        except ValueError as e:
            raise RegistryError(f"the manifest of {ref} is not JSON: {e}") from e
        return _media_type(content_type, parsed, ref), raw, digest, parsed

    def _manifest_error(self, resp: requests.Response, ref: Reference) -> RegistryError:
        text, codes = _error_text(resp)
        said = f" (the registry said: {text})" if text else ""
        if resp.status_code == 404 and "MANIFEST_UNKNOWN" in codes:
            return RegistryError(f"manifest for {ref.familiar()} not found: manifest unknown{said}",
                                 status=404, codes=codes)
        if resp.status_code in (401, 403, 404):
            cls = RegistryAuthError if resp.status_code in (401, 403) else RegistryError
            return cls(f"pull access denied for {ref.familiar_name()}: the repository does not exist or needs "
                       f"`minicontainer login {ref.domain}`{said}", status=resp.status_code, codes=codes)
        return self._fail(resp, f"cannot get the manifest of {ref}")

    def fetch_blob(self, ref: Reference, digest: str, sink: Sink, *, size: int | None = None,
                   progress: Callable[[int, int | None], None] | None = None) -> None:
        """Stream blob ``digest`` of ``ref``'s repository into ``sink``.

        A connection cut midway resumes from ``sink.offset`` with ``Range: bytes=<offset>-`` (a
        server that answers 200 instead of 206 sends everything again: the sink is reset).  The
        digest is checked by the sink (``VerifyingWriter.verify()``), not here.
        """
        check_digest(digest)
        tried = []

        def from_endpoint(endpoint: _Endpoint) -> None:
            if tried and sink.offset:
                sink.reset()  # a mirror failed midway: the bytes it sent may be what was wrong
            tried.append(endpoint)
            self._fetch_blob(endpoint, ref, digest, sink, size, progress)

        self._on_pull_endpoints(ref, from_endpoint)

    def _fetch_blob(self, endpoint: _Endpoint, ref: Reference, digest: str, sink: Sink, size: int | None,
                    progress: Callable[[int, int | None], None] | None) -> None:
        url = self._url(endpoint, ref, f"blobs/{digest}")
        cuts = 0
        while True:
            headers = {"Range": f"bytes={sink.offset}-"} if sink.offset else {}
            resp = self._request("GET", endpoint, url, scopes=self._pull_scope(ref), headers=headers,
                                 stream=True)
            try:
                total = self._start_body(resp, ref, digest, sink, size)
                if progress:
                    progress(sink.offset, total)
                for chunk in resp.iter_content(CHUNK):
                    sink.write(chunk)
                    if progress:
                        progress(sink.offset, total)
                if total is not None and sink.offset < total:
                    raise _Cut(f"the body ended at {sink.offset} of {total} bytes")
                if total is not None and sink.offset > total:
                    raise RegistryError(f"blob {digest} of {ref.name} is longer than announced "
                                        f"({sink.offset} > {total} bytes)")
                return
            except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError, requests.Timeout,
                    _Cut) as e:
                if cuts >= self.retries:
                    raise RegistryError(f"download of {digest[:19]} from {endpoint.key} kept failing "
                                        f"({cuts} retries): {_reason(e)}") from e
                self.on_notice(f"download of {digest[:19]} was cut at {sink.offset} bytes ({_reason(e)}); "
                               "resuming where it stopped")
                if cuts:
                    time.sleep(min(self.backoff * 2 ** (cuts - 1), self.max_wait))
                cuts += 1
            finally:
                resp.close()

    def _start_body(self, resp: requests.Response, ref: Reference, digest: str, sink: Sink,
                    size: int | None) -> int | None:
        """Check the answer to a (maybe ranged) blob GET; returns the blob's total size if known."""
        if resp.status_code == 206:
            m = re.match(r"bytes (\d+)-\d+/(\d+|\*)", resp.headers.get("Content-Range", ""))
            if not m or int(m.group(1)) != sink.offset:
                raise RegistryError(f"blob {digest} of {ref.name}: the registry resumed at the wrong place "
                                    f"(Content-Range: {resp.headers.get('Content-Range')}, we have {sink.offset})")
            return int(m.group(2)) if m.group(2) != "*" else size
        if resp.status_code == 200:
            if sink.offset:
                # The server ignored our Range and sends the whole blob: start over.
                sink.reset()
            length = resp.headers.get("Content-Length")
            return int(length) if length and length.isdigit() else size
        if resp.status_code in (401, 403, 404):
            text, codes = _error_text(resp)
            cls = RegistryAuthError if resp.status_code != 404 else RegistryError
            raise cls(f"blob {digest} of {ref.familiar_name()}: the registry answered {resp.status_code} "
                      f"{resp.reason}" + (f": {text}" if text else ""), status=resp.status_code, codes=codes)
        raise self._fail(resp, f"cannot download blob {digest} of {ref.name}")

    def blob_exists(self, ref: Reference, digest: str) -> bool:
        """HEAD the blob: does this repository have it?  (A redirect counts as yes.)"""
        check_digest(digest)
        return bool(self._on_pull_endpoints(ref, lambda ep: self._blob_exists(ep, ref, digest,
                                                                              self._pull_scope(ref))))

    def _blob_exists(self, endpoint: _Endpoint, ref: Reference, digest: str, scopes: list[str]) -> bool:
        resp = self._request("HEAD", endpoint, self._url(endpoint, ref, f"blobs/{digest}"), scopes=scopes)
        with resp:
            if resp.status_code in (200, *_REDIRECTS):
                return True
            if resp.status_code == 404:
                return False
            raise self._fail(resp, f"cannot check for blob {digest} in {ref.name}")

    def tags(self, ref: Reference) -> list[str]:
        """All tags of ``ref``'s repository (following ``Link: <...>; rel="next"`` pages)."""

        def list_tags(endpoint: _Endpoint) -> list[str]:
            found: list[str] = []
            url: str | None = self._url(endpoint, ref, "tags/list")
            while url:
                resp = self._request("GET", endpoint, url, scopes=self._pull_scope(ref))
                with resp:
                    if resp.status_code != 200:
                        raise self._manifest_error(resp, ref) if resp.status_code in (401, 403, 404) \
                            else self._fail(resp, f"cannot list the tags of {ref.name}")
                    found += resp.json().get("tags") or []
                    nxt = re.search(r'<([^>]+)>\s*;\s*rel="?next"?', resp.headers.get("Link", ""))
                    url = urljoin(url, nxt.group(1)) if nxt else None
            return found

        return self._on_pull_endpoints(ref, list_tags)

    # -- pushing -----------------------------------------------------------------------------------

    @staticmethod
    def _push_scope(ref: Reference) -> list[str]:
        return [f"repository:{ref.path}:pull,push"]

    def push_blob(self, ref: Reference, digest: str, data: bytes | BinaryIO, size: int, *,
                  mount_from: Reference | None = None) -> str:
        """Upload a blob to ``ref``'s repository, unless it is there already.

        Returns what happened: ``"exists"``, ``"mounted"`` (the registry linked it from
        ``mount_from``, another repository of the same registry: no bytes sent) or ``"uploaded"``.
        ``data`` is bytes or a binary file positioned at the blob's start.
        """
        check_digest(digest)
        endpoint = self._endpoint(ref)
        scopes = self._push_scope(ref)
        if self._blob_exists(endpoint, ref, digest, scopes):
            return "exists"
        uploads = self._url(endpoint, ref, "blobs/uploads/")
        if mount_from is not None and mount_from.domain == ref.domain and mount_from.path != ref.path:
            # Cross-repository mount: "you have these bytes in <from>, link them here".  201: done.
            # 202: the registry would not (or could not) and opened an ordinary upload instead.
            resp = self._request("POST", endpoint,
                                 f"{uploads}?mount={digest}&from={quote(mount_from.path, safe='/')}",
                                 scopes=[*scopes, f"repository:{mount_from.path}:pull"])
        else:
            resp = self._request("POST", endpoint, uploads, scopes=scopes)
        with resp:
            if resp.status_code == 201:
                return "mounted"
            if resp.status_code != 202 or "Location" not in resp.headers:
                raise self._fail(resp, f"cannot start an upload to {ref.name}")
            location = urljoin(resp.url, resp.headers["Location"])
        self._upload(endpoint, ref, location, digest, data, size, scopes)
        return "uploaded"

    def _upload(self, endpoint: _Endpoint, ref: Reference, location: str, digest: str,
                data: bytes | BinaryIO, size: int, scopes: list[str]) -> None:
        """PATCH the bytes in chunks (``Content-Range: <first>-<last>``), then PUT ``?digest=``.

        Each answer carries the ``Location`` for the next request: always use the newest.
        """
        source = io.BytesIO(data) if isinstance(data, (bytes, bytearray, memoryview)) else data
        offset = 0
        while offset < size:
            chunk = source.read(min(self.upload_chunk_size, size - offset))
            if not chunk:
                raise RegistryError(f"blob {digest}: the data ended at {offset} of {size} bytes")
            resp = self._request("PATCH", endpoint, location, scopes=scopes, data=chunk, headers={
                "Content-Type": "application/octet-stream",
                "Content-Range": f"{offset}-{offset + len(chunk) - 1}",
                "Content-Length": str(len(chunk))})
            with resp:
                if resp.status_code != 202:
                    raise self._fail(resp, f"upload of {digest} to {ref.name} failed at byte {offset}")
                location = urljoin(resp.url, resp.headers.get("Location", location))
            offset += len(chunk)
        sep = "&" if "?" in location else "?"
        resp = self._request("PUT", endpoint, f"{location}{sep}digest={digest}", scopes=scopes, data=b"",
                             headers={"Content-Type": "application/octet-stream", "Content-Length": "0"})
        with resp:
            if resp.status_code != 201:
                raise self._fail(resp, f"upload of {digest} to {ref.name} was not accepted")
            announced = resp.headers.get("Docker-Content-Digest")
        if announced and announced != digest:
            raise DigestMismatch(digest, announced, f"uploaded blob in {ref.name}")

    def push_manifest(self, ref: Reference, raw: bytes, media_type: str) -> str:
        """PUT a manifest (or index) under ``ref``'s tag (or digest); returns its digest.

        The blobs it names must be in the repository first: the registry checks.
        """
        digest = digest_bytes(raw)
        if ref.digest and ref.digest != digest:
            raise DigestMismatch(ref.digest, digest, "manifest to push")
        endpoint = self._endpoint(ref)
        url = self._url(endpoint, ref, f"manifests/{ref.tag or ref.digest or digest}")
        resp = self._request("PUT", endpoint, url, scopes=self._push_scope(ref), data=raw,
                             headers={"Content-Type": media_type})
        with resp:
            if resp.status_code != 201:
                raise self._fail(resp, f"cannot push the manifest of {ref}")
            announced = resp.headers.get("Docker-Content-Digest")
        if announced and announced != digest:
            raise DigestMismatch(digest, announced, f"pushed manifest of {ref.name}")
        return digest

    # -- logging in --------------------------------------------------------------------------------

    def check_login(self, host: str, user: str, password: str) -> None:
        """Try credentials against ``host`` (``GET /v2/``, as ``docker login`` does); raises
        :class:`RegistryAuthError` if refused.  Nothing is stored: see :func:`.auth.save_login`."""
        key = normalize_registry_host(host)
        api_host = "registry-1.docker.io" if key == DEFAULT_DOMAIN else key
        endpoint = _Endpoint(self._base_url(api_host), key, False)
        saved = self.credentials
        self.credentials = lambda h: (user, password) if normalize_registry_host(h) == key else saved(h)
        try:
            self._challenges.pop(key, None)
            resp = self._request("GET", endpoint, f"{endpoint.base}/v2/", scopes=[])
            with resp:
                if resp.status_code == 401:
                    raise RegistryAuthError(f"login to {key} failed: it refused the user name and password "
                                            f"for '{user}'", status=401)
                if resp.status_code != 200:
                    raise self._fail(resp, f"login to {key} failed")
        finally:
            self.credentials = saved
            self._challenges.pop(key, None)


def _read_limited(resp: requests.Response, limit: int, what: str) -> bytes:
    out = bytearray()
    for chunk in resp.iter_content(CHUNK):
        out += chunk
        if len(out) > limit:
            raise RegistryError(f"{what} is larger than {limit} bytes: refusing it")
    return bytes(out)


def _media_type(content_type: str, parsed: dict, ref: Reference) -> str:
    """Which of the four kinds a manifest is: the Content-Type, else its ``mediaType`` field, else its shape."""
    if not isinstance(parsed, dict):
        raise RegistryError(f"the manifest of {ref} is not a JSON object")
    for candidate in (content_type, parsed.get("mediaType")):
        if candidate in INDEX_TYPES or candidate in MANIFEST_TYPES:
            return candidate
    if parsed.get("schemaVersion") == 1:
        raise RegistryError(f"{ref} only has a Docker schema 1 manifest, deprecated since 2017 and not supported")
    if "manifests" in parsed:
        return OCI_INDEX
    if "config" in parsed and "layers" in parsed:
        return OCI_MANIFEST
    raise RegistryError(f"the manifest of {ref} has an unknown media type '{content_type}'")


def _name_unresolved(e: BaseException) -> bool:
    """Did the connection fail because the host's name does not resolve (getaddrinfo failed)?"""
    import socket

    seen: set[int] = set()
    todo: list[object] = [e]
    while todo:
        err = todo.pop()
        if id(err) in seen or not isinstance(err, BaseException):
            continue
        seen.add(id(err))
        if isinstance(err, socket.gaierror) or type(err).__name__ == "NameResolutionError":
            return True
        todo += [err.__cause__, err.__context__, getattr(err, "reason", None), *err.args]
    return False


def _reason(e: BaseException) -> str:
    """A short reason for a network error, without urllib3's nested reprs."""
    text = str(e)
    m = re.search(r"\[Errno -?\d+\] ([^'\")]+)", text)
    if m:
        return m.group(1)
    m = re.search(r"(Connection (?:broken|aborted|refused|reset)[^'\")]*)", text)
    return (m.group(1) if m else text)[:160]


# --- narration -------------------------------------------------------------------------------------


def exchange_event(resp: requests.Response) -> Event:
    """One request and its answer as an event: ``GET https://.../manifests/latest -> 200 OK``, with
    what the answer means for the pull.  Credentials and tokens never appear: they travel in headers,
    and only the answer's headers are quoted."""
    elapsed_ns = int(resp.elapsed.total_seconds() * 1e9)
    return Event(op=resp.request.method or "GET", args=_shown_url(resp.url), result=f"{resp.status_code} {resp.reason}",
                 ms=elapsed_ns / 1e6, side="daemon", at_ns=time.monotonic_ns() - elapsed_ns,
                 detail=_meaning(resp))


def _shown_url(url: str) -> str:
    """The URL without its query, but for a token request's ``service`` and ``scope``: a blob
    store's presigned URL carries its signature there (S3's X-Amz-Signature, Azure's sig)."""
    parts = urlsplit(url)
    kept = [(k, v) for k, v in _query(url) if k in ("service", "scope")]
    return parts._replace(query="&".join(f"{k}={v}" for k, v in kept), fragment="").geturl()


def _meaning(resp: requests.Response) -> str:
    headers, path, status = resp.headers, urlsplit(resp.url).path, resp.status_code
    if status == 401:
        return f"no (valid) token: WWW-Authenticate says where to get one: {headers.get('WWW-Authenticate', '')}"
    if status in _REDIRECTS:
        where = urlsplit(urljoin(resp.url, headers.get("Location", ""))).netloc
        return f"the bytes are elsewhere ({where}); our Authorization header is not sent there"
    if status == 429:
        return "rate limited: " + ", ".join(f"{k}: {v}" for k, v in headers.items() if k.lower().startswith("ratelimit"))
    if status >= 400:
        return ""
    if path.rstrip("/") == "/v2" or path == "/v2/":
        return "the registry answers the v2 protocol, and needs no token for this ping"
    if "/manifests/" in path:
        kind = headers.get("Content-Type", "").split(";")[0]
        what = "an index: one manifest per platform, one is chosen" if kind in INDEX_TYPES else \
            "a manifest: the config and the layers, each by digest"
        return f"{what} ({kind}, Docker-Content-Digest {headers.get('Docker-Content-Digest', '?')})"
    if "/blobs/uploads/" in path:
        return "an upload session: the blob's bytes go to the Location given"
    if "/blobs/" in path:
        size = headers.get("Content-Length", "?")
        return f"{size} bytes, checked against the digest in the URL as they stream in"
    if "/tags/list" in path:
        return "the repository's tags"
    scope = next((v for k, v in _query(resp.url) if k == "scope"), "")
    if scope:  # a token server
        return f"a bearer token for {scope}; it goes in the Authorization header of the retried request"
    return ""


def _query(url: str) -> list[tuple[str, str]]:
    from urllib.parse import parse_qsl

    return parse_qsl(urlsplit(url).query)
