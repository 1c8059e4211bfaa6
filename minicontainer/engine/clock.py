"""Time as the Engine API writes it.

The API's times are RFC 3339 strings with nanoseconds (``2026-11-29T11:02:33.780123456Z``), and
``0001-01-01T00:00:00Z`` (Go's zero time) for "never".  Reading them (``parse_time``) and wording
durations (``Up 3 seconds``: go-units' HumanDuration) are in :mod:`minicontainer.units`, below
both the engine and the CLI, which needs them too.
"""

from __future__ import annotations

import time

from minicontainer.units import point_in_time_ns


def now_rfc3339() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e9):09d}Z"


def until_timestamp(text: str, now: float | None = None) -> float:
    """A prune's ``until=``, as dockerd reads it (see :func:`minicontainer.units.point_in_time_ns`),
    in seconds."""
    try:
        return point_in_time_ns(text, None if now is None else int(now * 1e9)) / 1e9
    except ValueError:
        raise ValueError(f"invalid until value {text!r}: give a duration (24h), a Unix time or an RFC 3339 time") \
            from None
