"""Docker's units: sizes, durations and times, as the Engine API writes them and as docker prints them.

Both ends of the API need these, so they live below both: the engine words ``ps``'s ``Up 3
seconds`` and reads ``until=`` times; the CLI prints ``4.26MB`` and ``2 weeks ago``, reads ``-m 64m``
and the API's RFC 3339 times; the client takes docker-py's ``mem_limit="64m"``.  Docker has them
from the Go package ``github.com/docker/go-units`` (HumanSize, BytesSize, HumanDuration,
RAMInBytes); here they are one small module with no imports of the project's, so that any layer
may use it without reaching into another (standard library only: the CLI's start-up is timed).
"""

from __future__ import annotations

import time

BYTE_SUFFIXES = {"b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def human_size(size: float, *, binary: bool = False) -> str:
    """``4.26MB``: decimal (1000-based) units with 3 significant digits, as docker prints sizes; with
    ``binary``, ``64MiB``: 1024-based with 4 digits, as docker prints memory (units.BytesSize)."""
    base, digits = (1024, 4) if binary else (1000, 3)
    units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"] if binary else ["B", "kB", "MB", "GB", "TB", "PB"]
    i = 0
    while size >= base and i < len(units) - 1:
        size /= base
        i += 1
    return f"{size:.{digits}g}{units[i]}"


def parse_bytes(text: str) -> int:
    """``-m 64m`` as docker reads it (units.RAMInBytes): b, k, m, g suffixes, 1024-based.
    ValueError ``invalid size: '64x'`` otherwise."""
    t = text.strip().lower().rstrip("b") or "0"
    unit = BYTE_SUFFIXES.get(t[-1], 1)
    number = t[:-1] if t[-1] in BYTE_SUFFIXES else t
    try:
        return int(float(number) * unit)
    except ValueError:
        raise ValueError(f"invalid size: '{text}'") from None


def human_duration(seconds: float) -> str:
    """go-units' HumanDuration: "Less than a second", "About a minute", "3 hours", "2 weeks"..."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = s // 60
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = round(s / 3600)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{hours // 24 // 365} years"


def parse_time(text: str) -> float:
    """An API time (RFC 3339 with nanoseconds, ``2026-11-29T11:02:33.780123456Z``) in seconds since
    the epoch; 0 for Go's zero time (``0001-01-01T00:00:00Z``: "never") or an empty string."""
    import calendar

    if not text or text.startswith("0001"):
        return 0.0
    main, _, frac = text.rstrip("Z").partition(".")
    return calendar.timegm(time.strptime(main, "%Y-%m-%dT%H:%M:%S")) + float(f"0.{frac or 0}")
