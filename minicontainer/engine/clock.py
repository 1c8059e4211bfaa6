"""Time as the Engine API writes it, and as docker says it.

The API's times are RFC 3339 strings with nanoseconds (``2026-11-29T11:02:33.780123456Z``), and
``0001-01-01T00:00:00Z`` (Go's zero time) for "never"; the ``Status`` column of ``ps`` is worded by
the daemon (``Up 3 seconds``, ``Exited (0) 2 minutes ago``), with go-units' HumanDuration.
"""

from __future__ import annotations

import time


def now_rfc3339() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e9):09d}Z"


def parse_time(text: str) -> float:
    """Seconds since the epoch; 0 for Go's zero time or an empty string."""
    import calendar

    if not text or text.startswith("0001"):
        return 0.0
    main, _, frac = text.rstrip("Z").partition(".")
    return calendar.timegm(time.strptime(main, "%Y-%m-%dT%H:%M:%S")) + float(f"0.{frac or 0}")


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
