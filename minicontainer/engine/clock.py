"""Time as the Engine API writes it.

The API's times are RFC 3339 strings with nanoseconds (``2026-11-29T11:02:33.780123456Z``), and
``0001-01-01T00:00:00Z`` (Go's zero time) for "never".  Reading them (``parse_time``) and wording
durations (``Up 3 seconds``: go-units' HumanDuration) are in :mod:`minicontainer.units`, below
both the engine and the CLI, which needs them too.
"""

from __future__ import annotations

import time

from minicontainer.units import parse_time


def now_rfc3339() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e9):09d}Z"


def until_timestamp(text: str, now: float | None = None) -> float:
    """A prune's ``until=``, as dockerd reads it: a Go duration back from now (``24h``, ``1h30m``,
    ``90s``), a Unix time (``1700000000``), or an RFC 3339 time.  ValueError otherwise."""
    import re

    now = time.time() if now is None else now
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", text)
    if parts and "".join(n + u for n, u in parts) == text:
        units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
        return now - sum(float(n) * units[u] for n, u in parts)
    try:
        return parse_time(text)
    except ValueError:
        raise ValueError(f"invalid until value {text!r}: give a duration (24h), a Unix time or an RFC 3339 time") \
            from None
