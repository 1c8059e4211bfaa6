"""Docker's units: sizes, durations and times, as the Engine API writes them and as docker prints them.

Both ends of the API need these, so they live below both: the engine words ``ps``'s ``Up 3
seconds`` and reads ``until=`` times; the CLI prints ``4.26MB`` and ``2 weeks ago``, reads ``-m 64m``
and the API's RFC 3339 times; the client takes docker-py's ``mem_limit="64m"``.  Docker has them
from the Go package ``github.com/docker/go-units`` (HumanSize, BytesSize, HumanDuration,
RAMInBytes); here they are one small module with no imports of the project's, so that any layer
may use it without reaching into another (standard library only: the CLI's start-up is timed).
"""

from __future__ import annotations

import re
import time

BYTE_SUFFIXES = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4, "p": 1024**5}
# RAMInBytes' syntax: a number, an optional space, a unit, then an optional "i" and "b": 64m, 64MB,
# 64 MiB, 1.5g, 1024 (bytes).
SIZE = re.compile(r"^(\d+(?:\.\d+)?) ?([kmgtp]?)i?b?$", re.IGNORECASE)


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
    """``-m 64m``, ``--shm-size 128MiB`` as docker reads them (units.RAMInBytes): k, m, g, t, p,
    1024-based.  ValueError ``invalid size: '64x'`` otherwise."""
    m = SIZE.match(text.strip())
    if not m:
        raise ValueError(f"invalid size: '{text}'")
    return int(float(m.group(1)) * BYTE_SUFFIXES[m.group(2).lower()])


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


# Go's time.ParseDuration units, in nanoseconds; a duration is one or more number+unit ("1h30m").
_GO_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
             "m": 60_000_000_000, "h": 3_600_000_000_000}
_GO_DURATION = re.compile(r"([-+]?)((?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+)")
_GO_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_UNIX = re.compile(r"(-?\d+)(?:\.(\d{1,9}))?")


def point_in_time_ns(text: str, now_ns: int | None = None) -> int:
    """A ``since``/``until`` in any of the forms docker takes, as nanoseconds since the epoch.

    * Unix seconds, with a fraction if you like: ``1700000000``, ``1700000000.5`` (``0`` is 1970);
    * a Go duration back from now: ``10m``, ``1h30m``, ``0s`` (that is: now), ``-5m`` (ahead);
    * an RFC 3339 time or a date: ``2026-12-05T10:00:00Z``, ``...+01:00``, ``2026-12-05`` (without
      a zone: this machine's local time, as the docker CLI reads it).

    The docker CLI converts durations and dates to Unix seconds before it sends them; our API takes
    every form, so a hand-written ``curl`` works too.  ValueError with docker's message otherwise.
    """
    from datetime import datetime

    now_ns = time.time_ns() if now_ns is None else now_ns
    if match := _UNIX.fullmatch(text):
        seconds, fraction = match.groups()
        sign = -1 if seconds.startswith("-") else 1
        return int(seconds) * 1_000_000_000 + sign * int((fraction or "").ljust(9, "0"))
    if match := _GO_DURATION.fullmatch(text):
        sign, parts = match.groups()
        # Decimal arithmetic in strings, not floats: 1.1s is exactly 1_100_000_000 ns.
        ago = sum(_nanos(number, _GO_UNITS[unit]) for number, unit in _GO_PART.findall(parts))
        return now_ns + ago if sign == "-" else now_ns - ago
    main, dot, rest = text.partition(".")
    fraction = re.match(r"\d*", rest).group() if dot else ""
    zone = rest[len(fraction):] if dot else ""
    try:
        # fromisoformat takes at most microseconds: the nanoseconds are added apart.
        stamp = datetime.fromisoformat(main + zone.replace("z", "Z"))
    except ValueError:
        raise ValueError(f'failed to parse value as time or duration: "{text}"') from None
    return int(stamp.timestamp()) * 1_000_000_000 + int(fraction[:9].ljust(9, "0"))


def _nanos(number: str, unit: int) -> int:
    whole, _, fraction = number.partition(".")
    return int(whole or 0) * unit + int(fraction.ljust(9, "0")[:9] or 0) * unit // 1_000_000_000
