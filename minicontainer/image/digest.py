"""Digests: every blob is named by the sha256 of its bytes, and checked against it as it arrives.

``sha256:<64 hex digits>`` is a blob's name in the registry, in manifests and in the store, so a
blob that does not hash to its name is corrupt (or forged) and must never be kept.  The check
happens *while streaming*: the bytes pass through a hash on their way to disk, and the verdict is
known the moment the last byte is written, without reading the file again.
"""

from __future__ import annotations

import hashlib
import re
from typing import BinaryIO

_DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$")


class DigestMismatch(Exception):
    """The bytes do not hash to the digest they were announced with."""

    def __init__(self, expected: str, actual: str, what: str = "blob") -> None:
        super().__init__(f"{what} digest mismatch: expected {expected}, got {actual} (the download was "
                         "corrupted or tampered with; nothing was stored)")
        self.expected = expected
        self.actual = actual


def check_digest(digest: str) -> str:
    """Refuse anything but ``sha256:<64 lowercase hex>``: digests become file names in the store."""
    if not _DIGEST.match(digest or ""):
        raise ValueError(f"invalid digest '{digest}': expected sha256: followed by 64 lowercase hex digits")
    return digest


def digest_bytes(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def hex_of(digest: str) -> str:
    """``sha256:abc...`` -> ``abc...`` (the file name in the store)."""
    return check_digest(digest).split(":", 1)[1]


class VerifyingWriter:
    """Writes to ``out`` and hashes the same bytes; :meth:`verify` compares with the expected digest.

    ``offset`` is how many bytes it holds, so an interrupted download can resume with an HTTP
    ``Range: bytes=<offset>-`` request; :meth:`reset` starts over (a server that ignores Range).
    """

    def __init__(self, out: BinaryIO, expected: str | None = None) -> None:
        self.out = out
        self.expected = check_digest(expected) if expected else None
        self._hash = hashlib.sha256()
        self.offset = 0

    def write(self, chunk: bytes) -> None:
        self.out.write(chunk)
        self._hash.update(chunk)
        self.offset += len(chunk)

    def reset(self) -> None:
        self.out.seek(0)
        self.out.truncate()
        self._hash = hashlib.sha256()
        self.offset = 0

    @property
    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()

    def verify(self, what: str = "blob") -> str:
        """The digest of what was written; raises :class:`DigestMismatch` if it is not the expected one."""
        actual = self.digest
        if self.expected and actual != self.expected:
            raise DigestMismatch(self.expected, actual, what)
        return actual
