"""Image references: what ``busybox`` really means.

A user types ``busybox``; Docker pulls ``docker.io/library/busybox:latest``.  A reference names an
image in a registry and has up to four parts::

    registry.example.com:5000/team/app:1.2@sha256:4f5c...
    \\______ domain _______/ \\_ path _/ tag \\__ digest __/

The rules are those of Docker's own parser (distribution's ``reference/normalize.go``):

* the part before the first ``/`` is a **domain** only if it looks like one: it contains a ``.`` or a
  ``:`` (a port), is ``localhost``, or has capitals (repository names never do).  Otherwise the
  whole thing is a Docker Hub path: ``alice/app`` is ``docker.io/alice/app``;
* ``index.docker.io`` (Docker Hub's old name) is ``docker.io``;
* on Docker Hub a one-part name is an "official image" under ``library/``;
* no tag and no digest means ``:latest``.  With a digest, the digest decides what is pulled (the tag
  is kept only for display).

The path must be lowercase; a tag is at most 128 characters of letters, digits, ``_``, ``.``, ``-``
(not starting with ``.`` or ``-``).  A bad reference raises :class:`InvalidReference` naming the rule.
"""

from __future__ import annotations

import re
from typing import NamedTuple

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
# docker.io is the name people write; the API itself lives on another host.
DOCKER_HUB_API_HOST = "registry-1.docker.io"
OFFICIAL_PREFIX = "library/"
DEFAULT_TAG = "latest"
NAME_TOTAL_LENGTH_MAX = 255

# The grammar, in the same pieces as distribution's reference/regexp.go.
_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]*)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
# A host name, or an IPv6 address in brackets, then maybe a port.
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"

_PATH_RE = re.compile(rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*")
_DOMAIN_RE = re.compile(_DOMAIN)
_TAG_RE = re.compile(r"[\w][\w.-]{0,127}", re.ASCII)
_DIGEST_RE = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}")
_SHA256_RE = re.compile(r"sha256:[a-f0-9]{64}")
_IMAGE_ID_RE = re.compile(r"[a-f0-9]{64}")


class InvalidReference(ValueError):
    """The text is not an image reference; the message says which rule it broke."""

    def __init__(self, text: str, rule: str) -> None:
        super().__init__(f"invalid reference format '{text}': {rule}")
        self.text = text
        self.rule = rule


class Reference(NamedTuple):
    """A fully qualified image reference: ``domain/path`` plus a tag and/or a digest.

    Build one with :func:`parse`; the fields are already normalised (``docker.io``, ``library/``).
    """

    domain: str
    path: str
    tag: str | None = DEFAULT_TAG
    digest: str | None = None

    @property
    def name(self) -> str:
        """``docker.io/library/busybox``: the repository, without tag or digest."""
        return f"{self.domain}/{self.path}"

    def familiar_name(self) -> str:
        """The repository as Docker prints it: ``busybox``, ``alice/app``, ``localhost:5000/app``."""
        if self.domain == DEFAULT_DOMAIN:
            path = self.path
            rest = path[len(OFFICIAL_PREFIX):]
            if path.startswith(OFFICIAL_PREFIX) and "/" not in rest:
                return rest
            return path
        return self.name

    def familiar(self) -> str:
        """The short form Docker shows in ``docker images``: ``busybox:latest``."""
        return self.familiar_name() + self._suffix()

    def api_host(self) -> str:
        """The host that answers the HTTP API: Docker Hub's is not ``docker.io``."""
        return DOCKER_HUB_API_HOST if self.domain == DEFAULT_DOMAIN else self.domain

    def with_tag(self, tag: str) -> Reference:
        """The same repository with this tag (and no digest)."""
        if not _TAG_RE.fullmatch(tag):
            raise InvalidReference(tag, _TAG_RULE)
        return self._replace(tag=tag, digest=None)

    def with_digest(self, digest: str) -> Reference:
        """The same repository pinned to this digest (the tag is kept for display)."""
        if not _DIGEST_RE.fullmatch(digest):
            raise InvalidReference(digest, _DIGEST_RULE)
        return self._replace(digest=digest)

    @property
    def manifest_key(self) -> str:
        """What goes after ``/manifests/`` in the API: the digest if pinned, else the tag."""
        return self.digest or self.tag or DEFAULT_TAG

    def _suffix(self) -> str:
        return (f":{self.tag}" if self.tag else "") + (f"@{self.digest}" if self.digest else "")

    def __str__(self) -> str:
        return self.name + self._suffix()


_TAG_RULE = ("a tag is 1 to 128 characters: letters, digits, '_', '.' and '-', "
             "and must not start with '.' or '-'")
_DIGEST_RULE = "a digest is ALGORITHM:HEX, e.g. sha256: followed by 64 hex digits"
_PATH_RULE = ("a repository name is lowercase letters and digits, in parts separated by '/', with single "
              "'.', '_' or '__', or any number of '-' only between letters or digits")


def parse(text: str) -> Reference:
    """Parse and normalise a reference the way ``docker pull`` does.

    >>> str(parse("busybox"))
    'docker.io/library/busybox:latest'
    >>> parse("localhost:5000/team/app:v1").familiar()
    'localhost:5000/team/app:v1'
    """
    if not text:
        raise InvalidReference(text, "the reference is empty")
    if _IMAGE_ID_RE.fullmatch(text):
        # Docker refuses these as names: they would be mistaken for image IDs.
        raise InvalidReference(text, "a repository name cannot be a 64-character hex string (that is an image ID)")

    # 1. Split off the digest (after '@'), then the tag (after the last ':' that follows the last '/':
    #    an earlier ':' is a port, as in localhost:5000/app).
    rest, at, digest = text.partition("@")
    if at:
        if not _DIGEST_RE.fullmatch(digest):
            raise InvalidReference(text, _DIGEST_RULE)
        if digest.startswith("sha256:") and not _SHA256_RE.fullmatch(digest):
            raise InvalidReference(text, "a sha256 digest is 'sha256:' followed by 64 lowercase hex digits")
    tag: str | None = None
    colon = rest.rfind(":")
    if colon > rest.rfind("/"):
        rest, tag = rest[:colon], rest[colon + 1:]
        if not _TAG_RE.fullmatch(tag):
            raise InvalidReference(text, _TAG_RULE)

    # 2. Is the first part a registry host?  Only if it looks like one (see the module docstring).
    first, slash, remainder = rest.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost" or first.lower() != first):
        domain, path = first, remainder
        if not _DOMAIN_RE.fullmatch(domain):
            raise InvalidReference(text, f"'{domain}' is not a valid registry host[:port]")
    else:
        domain, path = DEFAULT_DOMAIN, rest
    if domain == LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = OFFICIAL_PREFIX + path

    # 3. Check the repository path.
    if not path or path.endswith("/") or path == OFFICIAL_PREFIX:
        raise InvalidReference(text, "the repository name is empty")
    if path.lower() != path:
        raise InvalidReference(text, "repository name must be lowercase")
    if not _PATH_RE.fullmatch(path):
        raise InvalidReference(text, _PATH_RULE)
    if len(domain) + 1 + len(path) > NAME_TOTAL_LENGTH_MAX:
        raise InvalidReference(text, f"repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters")

    if tag is None and not digest:
        tag = DEFAULT_TAG
    return Reference(domain, path, tag, digest or None)


def is_loopback_host(host: str) -> bool:
    """``localhost``, ``127.x.x.x`` or ``::1``, with or without a port: always reachable over plain http."""
    if host.startswith("["):
        name = host[1:host.find("]")] if "]" in host else host
    else:
        name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    return name in ("localhost", "::1") or name.startswith("127.")
