"""Registry authentication: challenges, bearer tokens, and the credentials file.

A registry says how to authenticate only when refused.  A request without credentials gets
``401 Unauthorized`` and a ``WWW-Authenticate`` header, one of::

    Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull"
    Basic realm="Registry Realm"

**Bearer** (Docker Hub, most registries): the registry does not check passwords itself.  We ask the
token server named by ``realm`` for a token, giving the ``service`` and the ``scope`` (which
repository, which actions: ``pull``, ``push``), with our user name and password if we have some
(anonymous otherwise), and retry with ``Authorization: Bearer <token>``.  A token is good for one
registry and one set of scopes until it expires, so it is cached and reused.

**Basic**: the user name and password go with every request (base64, so only safe over TLS).

Where the passwords live: the same file as Docker's, ``~/.docker/config.json`` (or
``$DOCKER_CONFIG/config.json``; ``$MINICONTAINER_CONFIG/config.json`` wins if set), in its format::

    {"auths": {"registry.example.com": {"auth": "<base64 of user:password>"}}}

so a ``docker login`` is seen by minicontainer and the other way round.  (Docker's credential
helpers, ``credsStore``, are not supported: a teaching engine keeps the mechanism visible.)
"""

from __future__ import annotations

import base64
import json
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import NamedTuple
from urllib.parse import urlsplit

import requests

from minicontainer.image.reference import is_loopback_host

#: host -> (user, password), or None when we have nothing for that registry.
Credentials = Callable[[str], "tuple[str, str] | None"]

# Docker writes Docker Hub's credentials under its old v1 index URL; we read all spellings.
DOCKER_HUB_CONFIG_KEY = "https://index.docker.io/v1/"
_DOCKER_HUB_ALIASES = ("docker.io", "index.docker.io", "registry-1.docker.io")


class AuthError(Exception):
    """Credentials were refused, or a token could not be obtained.  The message says what to do.

    (:class:`minicontainer.image.registry.RegistryError` subclasses it as ``RegistryAuthError``;
    catching ``AuthError`` is enough.)
    """


# --- WWW-Authenticate ------------------------------------------------------------------------------


class Challenge(NamedTuple):
    """One challenge of a ``WWW-Authenticate`` header: ``Bearer`` or ``Basic``, and its parameters."""

    scheme: str  # lowercase: "bearer" or "basic"
    params: dict[str, str]

    @property
    def scopes(self) -> list[str]:
        """The scopes the registry asked for (one ``scope`` parameter may hold several, space-separated)."""
        return self.params.get("scope", "").split()


# A token is letters and some punctuation; a quoted string may hold anything but an unescaped quote.
_PARAM = re.compile(r'\s*([A-Za-z0-9_.-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?')
_SCHEME = re.compile(r"\s*,?\s*([A-Za-z][A-Za-z0-9_-]*)(?=\s|$)")


def parse_www_authenticate(header: str) -> list[Challenge]:
    """``Bearer realm="r",service="s",scope="a b"`` -> ``[Challenge("bearer", {...})]``.

    A header may hold several challenges (``Basic realm="x", Bearer realm="y"``): a new one starts
    wherever a bare word (the scheme) stands instead of a ``name=value`` pair.
    """
    challenges: list[Challenge] = []
    pos = 0
    while pos < len(header):
        m = _SCHEME.match(header, pos)
        if not m:
            break
        scheme, pos = m.group(1).lower(), m.end()
        params: dict[str, str] = {}
        while pos < len(header):
            p = _PARAM.match(header, pos)
            if not p:
                break
            value = p.group(2) if p.group(2) is not None else p.group(3)
            params[p.group(1).lower()] = re.sub(r"\\(.)", r"\1", value)
            pos = p.end()
        challenges.append(Challenge(scheme, params))
    return challenges


# --- tokens ----------------------------------------------------------------------------------------


class Token(NamedTuple):
    value: str
    expires_at: float  # time.time() after which it is no longer used

    def valid(self, now: float | None = None) -> bool:
        return (now if now is not None else time.time()) < self.expires_at


def _parse_issued_at(text: str | None) -> float | None:
    if not text:
        return None
    try:
        # RFC 3339; Python 3.11 reads "Z" and fractional seconds of any length up to 6 digits.
        text = re.sub(r"(\.\d{6})\d+", r"\1", text)
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def token_from_response(body: dict, now: float | None = None) -> Token:
    """Read a token server's answer: ``token`` (or the OAuth2 name ``access_token``), ``expires_in``
    (seconds, 60 when absent, as the spec says) counted from ``issued_at`` when given."""
    now = time.time() if now is None else now
    value = body.get("token") or body.get("access_token")
    if not value or not isinstance(value, str):
        raise AuthError("the token server's answer holds no token")
    try:
        expires_in = float(body.get("expires_in") or 60)
    except (TypeError, ValueError):
        expires_in = 60.0
    issued = _parse_issued_at(body.get("issued_at")) or now
    expires_at = issued + expires_in
    if expires_at <= now:
        # The server's clock is behind ours: trust the duration rather than its clock, or we would
        # ask for a new token before every request.
        expires_at = now + expires_in
    # Stop using it a little early: a token that expires in flight gets a 401 for nothing.
    return Token(value, expires_at - min(5.0, expires_in * 0.1))


class TokenCache:
    """Tokens per (registry, scopes), until they expire.  Shared by threads, hence the lock."""

    def __init__(self) -> None:
        self._tokens: dict[tuple[str, tuple[str, ...]], Token] = {}
        self._lock = threading.Lock()

    @staticmethod
    def key(registry: str, scopes: Iterable[str]) -> tuple[str, tuple[str, ...]]:
        return registry, tuple(sorted(set(scopes)))

    def get(self, registry: str, scopes: Iterable[str]) -> str | None:
        with self._lock:
            token = self._tokens.get(self.key(registry, scopes))
        return token.value if token and token.valid() else None

    def put(self, registry: str, scopes: Iterable[str], token: Token) -> None:
        with self._lock:
            self._tokens[self.key(registry, scopes)] = token

    def forget(self, registry: str, scopes: Iterable[str]) -> None:
        with self._lock:
            self._tokens.pop(self.key(registry, scopes), None)


def basic_header(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def fetch_token(session: requests.Session, challenge: Challenge, scopes: Iterable[str],
                credentials: tuple[str, str] | None, *, registry: str, timeout: float,
                user_agent: str) -> Token:
    """Ask the token server named in a Bearer challenge for a token covering ``scopes``.

    ``GET <realm>?service=<service>&scope=<scope>&scope=<scope>...``, with Basic credentials when we
    have them for this registry (anonymous otherwise).  Each scope is its own ``scope`` parameter.
    """
    realm = challenge.params.get("realm")
    if not realm:
        raise AuthError(f"{registry} asked for a token but named no token server (no realm in the challenge)")
    params: list[tuple[str, str]] = []
    if "service" in challenge.params:
        params.append(("service", challenge.params["service"]))
    params += [("scope", s) for s in sorted(set(scopes))]
    headers = {"User-Agent": user_agent}
    if credentials:
        headers["Authorization"] = basic_header(*credentials)
    try:
        # No redirects: the realm is where the credentials were meant for, nowhere else.
        proxies = {"http": None, "https": None} if is_loopback_host(urlsplit(realm).netloc) else None
        resp = session.get(realm, params=params, headers=headers, timeout=timeout, allow_redirects=False,
                           proxies=proxies)
    except requests.RequestException as e:
        raise AuthError(f"cannot reach the token server {realm} for {registry}: {e}") from e
    with resp:
        if resp.status_code in (401, 403):
            if credentials:
                raise AuthError(f"login to {registry} failed: the token server {realm} refused the user name "
                                f"and password for '{credentials[0]}' ({resp.status_code}); check them with "
                                f"`minicontainer login {registry}`")
            raise AuthError(f"{registry} refused anonymous access (token server {realm} answered "
                            f"{resp.status_code}): the repository does not exist or needs "
                            f"`minicontainer login {registry}`")
        if resp.status_code != 200:
            raise AuthError(f"the token server {realm} for {registry} answered {resp.status_code} "
                            f"{resp.reason}: {resp.text[:200]}")
        try:
            body = resp.json()
        except ValueError as e:
            raise AuthError(f"the token server {realm} for {registry} did not answer JSON") from e
    return token_from_response(body)


# --- the credentials file --------------------------------------------------------------------------


def normalize_registry_host(host: str) -> str:
    """The key credentials are stored and looked up under: ``https://index.docker.io/v1/`` and
    ``registry-1.docker.io`` are ``docker.io``; a scheme and a path are dropped."""
    host = re.sub(r"^[a-z]+://", "", host.strip()).split("/", 1)[0].lower()
    return "docker.io" if host in _DOCKER_HUB_ALIASES else host


def default_config_path() -> str:
    """``$MINICONTAINER_CONFIG/config.json``, else ``$DOCKER_CONFIG/config.json``, else
    ``~/.docker/config.json`` (shared with Docker on purpose)."""
    for var in ("MINICONTAINER_CONFIG", "DOCKER_CONFIG"):
        if os.environ.get(var):
            return os.path.join(os.environ[var], "config.json")
    return os.path.join(os.path.expanduser("~"), ".docker", "config.json")


def _read_config(path: str) -> dict:
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise AuthError(f"cannot read the credentials file {path}: {e}") from e
    return data if isinstance(data, dict) else {}


def load_docker_credentials(path: str | None = None) -> dict[str, tuple[str, str]]:
    """Read ``auths`` from a Docker-style config file: ``{host: (user, password)}``, hosts normalised.

    Use it as the client's lookup: ``RegistryClient(credentials=load_docker_credentials().get)``.
    A missing file is no credentials; entries without an ``auth`` field are skipped.
    """
    found: dict[str, tuple[str, str]] = {}
    for key, entry in (_read_config(path or default_config_path()).get("auths") or {}).items():
        if not isinstance(entry, dict):
            continue
        try:
            user, _, password = base64.b64decode(entry.get("auth") or "").decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            continue
        if user:
            found[normalize_registry_host(key)] = (user, password)
    return found


def _write_config(path: str, data: dict) -> None:
    """Write atomically, readable by the owner only: the file holds passwords."""
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, mode=0o700, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".config.json.")  # mkstemp: mode 0600 from the start
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent="\t")
            f.write("\n")
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _config_key(host: str) -> str:
    host = normalize_registry_host(host)
    return DOCKER_HUB_CONFIG_KEY if host == "docker.io" else host


def save_login(host: str, user: str, password: str, path: str | None = None) -> str:
    """Store credentials for ``host`` (as ``docker login`` does; other entries are kept).  Returns the path."""
    path = path or default_config_path()
    data = _read_config(path)
    auths = data.setdefault("auths", {})
    for key in [k for k in auths if normalize_registry_host(k) == normalize_registry_host(host)]:
        del auths[key]
    auths[_config_key(host)] = {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}
    _write_config(path, data)
    return path


def remove_login(host: str, path: str | None = None) -> bool:
    """Forget the credentials for ``host`` (``logout``); False if there were none."""
    path = path or default_config_path()
    data = _read_config(path)
    auths = data.get("auths") or {}
    keys = [k for k in auths if normalize_registry_host(k) == normalize_registry_host(host)]
    for key in keys:
        del auths[key]
    if keys:
        _write_config(path, data)
    return bool(keys)
