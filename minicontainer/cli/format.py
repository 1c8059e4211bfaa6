"""Docker's ways of printing sizes, ages and tables, so that our output reads like ``docker``'s.

``docker images`` prints ``4.26MB`` (decimal units, 3 significant digits) and ``2 weeks ago``
(go-units' HumanDuration); columns are separated by at least three spaces.  The functions here do
the same, so that a learner can put the two outputs side by side.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from minicontainer.engine.clock import human_duration


def human_size(size: float) -> str:
    """``4.26MB``: decimal (1000-based) units with 3 significant digits, as docker prints sizes."""
    units = ["B", "kB", "MB", "GB", "TB", "PB"]
    i = 0
    while size >= 1000 and i < len(units) - 1:
        size /= 1000
        i += 1
    return f"{size:.3g}{units[i]}"


def ago(timestamp: str) -> str:
    """An RFC 3339 time (``2026-11-29T08:00:00Z``) as docker's CREATED column shows it."""
    if not timestamp:
        return "N/A"
    import calendar

    text = timestamp.split(".")[0].rstrip("Z")
    try:
        then = calendar.timegm(time.strptime(text[:19], "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return "N/A"
    return human_duration(time.time() - then) + " ago"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to the widest cell, three spaces apart (docker's tabwriter settings)."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    lines = []
    for row in [headers, *rows]:
        cells = [cell.ljust(widths[i]) if i < len(row) - 1 else cell for i, cell in enumerate(row)]
        lines.append("   ".join(cells).rstrip())
    return "\n".join(lines) + "\n"
