"""Detach keys: the key sequence that lets a client leave a terminal session and the program running.

``docker run -it`` and ``docker attach`` put the user's terminal in raw mode: every key, Ctrl-C
included, goes to the program.  To leave without ending it the user types the *detach keys*,
``ctrl-p ctrl-q`` by default (bytes 16 and 17), or another sequence given with ``--detach-keys``
(``ctrl-a,x``: a comma-separated list of single characters, ``ctrl-<a-z @ [ \\ ] ^ _>`` or ``DEL``).

The daemon watches the client's input for them, only when there is a terminal (without one, stdin
is data, and any byte may occur in it).  The bytes of a sequence are held back while they match;
a byte that breaks the match lets them through, so a lone ctrl-p still reaches the program.
"""

from __future__ import annotations

DEFAULT_DETACH_KEYS = "ctrl-p,ctrl-q"

# ctrl-@ is 0, ctrl-a 1 ... ctrl-z 26, then ctrl-[ ctrl-\ ctrl-] ctrl-^ ctrl-_ : 27 to 31.
_CONTROL = {f"ctrl-{c}": i for i, c in enumerate("@abcdefghijklmnopqrstuvwxyz[\\]^_")}


def parse_detach_keys(text: str) -> bytes:
    """``"ctrl-p,ctrl-q"`` -> ``b"\\x10\\x11"``; an unknown key is a ValueError in Docker's words."""
    out = bytearray()
    for key in text.split(","):
        if len(key) == 1:
            out.append(ord(key) & 0xFF)
        elif key.lower() in _CONTROL:
            out.append(_CONTROL[key.lower()])
        elif key == "DEL":
            out.append(127)
        else:
            raise ValueError(f"Invalid detach keys ({text}) provided: unknown key '{key}' (use single "
                             "characters, ctrl-<a-z @ [ \\ ] ^ _> or DEL, separated by commas)")
    return bytes(out)


class DetachScanner:
    """Looks for the detach sequence in a stream of input, across reads."""

    def __init__(self, keys: bytes) -> None:
        self.keys = keys
        self.matched = 0  # how many bytes of the sequence the input has matched so far (held back)

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """The bytes to pass on to the program, and whether the sequence is complete (then the bytes
        after it are dropped: the client is leaving)."""
        if not self.keys:
            return data, False
        out = bytearray()
        for byte in data:
            if byte == self.keys[self.matched]:
                self.matched += 1
                if self.matched == len(self.keys):
                    return bytes(out), True
                continue
            out += self.keys[:self.matched]  # a broken match: what was held back goes through after all
            self.matched = 0
            if byte == self.keys[0]:
                self.matched = 1
            else:
                out.append(byte)
        return bytes(out), False
