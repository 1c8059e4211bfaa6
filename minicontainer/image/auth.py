"""Registry authentication: challenges and bearer tokens.

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

The passwords themselves live in Docker's own file: :mod:`minicontainer.image.credentials`.
"""

from __future__ import annotations

import base64
import re
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import NamedTuple
from urllib.parse import urlsplit

import requests

from minicontainer.image.credentials import (  # noqa: F401 - the file's API, also reachable from here
    DOCKER_HUB_CONFIG_KEY,
    default_config_path,
    load_docker_credentials,
    normalize_registry_host,
    remove_login,
    save_login,
)
from minicontainer.image.reference import is_loopback_host

#: host -> (user, password), or None when we have nothing for that registry.
Credentials = Callable[[str], "tuple[str, str] | None"]



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
