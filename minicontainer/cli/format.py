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


# --- --format: the part of Go's text/template that inspect formats use ------------------------------


class TemplateError(ValueError):
    """A ``--format`` that asks for what is not there (docker: "map has no entry for key")."""


def go_template(fmt: str, data: dict) -> str:
    """``{{.State.Running}}``, ``{{json .Config}}``, ``{{index .Config.Labels "k"}}``, ``{{len .Mounts}}``,
    ``{{upper .Name}}``, ``{{join .Args ","}}``: each action is a function and its arguments, or one
    value, printed as Go prints it (``true``, ``[sh -c x]``, ``map[a:1]``).  Ranges and conditionals
    are not supported: a template that needs them is better written with ``json`` and ``jq``."""
    import re
    import shlex

    def value(path: str):
        v = data
        for part in path.strip(".").split(".") if path.strip(".") else []:
            if not isinstance(v, dict) or part not in v:
                raise TemplateError(f'template: executing "{fmt}" at <{path}>: map has no entry for key "{part}"')
            v = v[part]
        return v

    def argument(token: str):
        if token.startswith("."):
            return value(token)
        if token.startswith('"'):
            return token[1:-1]
        return int(token) if token.lstrip("-").isdigit() else token

    def action(m: re.Match) -> str:
        words = shlex.split(m.group(1).strip(), posix=False)
        if not words:
            return ""
        name, args = words[0], [argument(w) for w in words[1:]]
        if name.startswith(".") and not args:
            return show(value(name))
        functions = {"json": lambda x: json_dumps(x), "upper": lambda x: str(x).upper(),
                     "lower": lambda x: str(x).lower(), "len": lambda x: str(len(x or [])),
                     "index": lambda x, *keys: show(_index(x, keys)), "join": lambda x, sep: sep.join(map(str, x or [])),
                     "title": lambda x: str(x).title(), "println": lambda *x: " ".join(map(show, x)) + "\n"}
        if name not in functions:
            raise TemplateError(f'template: function "{name}" not defined (supported: {", ".join(functions)})')
        return functions[name](*args)

    return re.sub(r"\{\{(.*?)\}\}", action, fmt)


def _index(container, keys):
    for key in keys:
        try:
            container = container[key]
        except (KeyError, IndexError, TypeError):
            return None
    return container


def json_dumps(value) -> str:
    import json

    return json.dumps(value, separators=(",", ":"))  # as Go's encoding/json: no spaces


def show(value) -> str:
    """A value as Go's fmt prints it inside a template."""
    if value is None:
        return "<no value>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + " ".join(show(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{show(v)}" for k, v in sorted(value.items())) + "]"
    return str(value)