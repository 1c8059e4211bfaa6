"""docker's ``--filter``: what ``ps``, ``images`` and the prunes are given, checked before it is used.

A filter arrives as ``{"label": ["a=1"], "until": ["24h"]}`` (the query's ``filters`` parameter,
JSON).  Every key must be one the request knows: docker refuses the others with a 400 rather than
ignore them and list (or remove!) everything.  Values are checked too, even when nothing is there to
compare them with: ``until=yesterday`` is an error on an empty engine as on a full one.
"""

from __future__ import annotations

import re

from minicontainer.engine.clock import until_timestamp
from minicontainer.engine.errors import InvalidParameter

# A container's State.Status: what `ps --filter status=` may ask for.
STATUSES = ("created", "restarting", "running", "removing", "paused", "exited", "dead")


def checked_filters(filters: dict | None, allowed: tuple[str, ...]) -> dict[str, list[str]]:
    """Docker refuses a filter it does not know (rather than ignore it and list everything)."""
    checked: dict[str, list[str]] = {}
    for key, values in (filters or {}).items():
        values = [str(v) for v in values] if isinstance(values, (list, dict)) else [str(values)]
        if key not in allowed:
            raise InvalidParameter(f"invalid filter '{key}'")
        for v in values:
            if key == "status" and v not in STATUSES or key == "exited" and not v.lstrip("-").isdigit():
                raise InvalidParameter(f"invalid filter '{key}={v}'")
            if key == "until":
                until(v)  # refused now, even if nothing is there to compare it with
            if key == "name":
                try:
                    re.compile(v)
                except re.error as e:
                    raise InvalidParameter(f"invalid filter 'name={v}': {e}") from None
        checked[key] = values
    return checked


def until(text: str) -> float:
    """``until=``'s time, in seconds since the epoch (a 400 if docker would not read it)."""
    try:
        return until_timestamp(text)
    except ValueError as e:
        raise InvalidParameter(str(e)) from None


def has_label(labels: dict, wanted: str) -> bool:
    """``label=KEY`` (present) or ``label=KEY=VALUE`` (with that value), as docker's filters read it."""
    key, eq, value = wanted.partition("=")
    return key in labels and (not eq or labels[key] == value)


def has_labels(labels: dict, wanted: list[str]) -> bool:
    """Every ``label=`` filter given: docker ANDs them."""
    return all(has_label(labels, w) for w in wanted)
