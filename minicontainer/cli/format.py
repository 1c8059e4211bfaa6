"""Docker's ways of printing sizes, ages and tables, so that our output reads like ``docker``'s.

``docker images`` prints ``4.26MB`` (decimal units, 3 significant digits) and ``2 weeks ago``
(go-units' HumanDuration); columns are separated by at least three spaces.  The functions here do
the same, so that a learner can put the two outputs side by side.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence

from minicontainer.units import human_duration


def local_error(e: Exception) -> str:
    """An error of this side (a file), worded as Go words it, as docker prints it:
    ``open X: no such file or directory``."""
    if isinstance(e, OSError) and e.filename:
        return f"open {e.filename}: {(e.strerror or str(e)).lower()}"
    return str(e)


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


def formatted(fmt: str, rows: list[dict], titles: dict[str, str]) -> str:
    """``ps --format`` / ``images --format``: each row through the template; ``table ...`` adds a header
    (the fields' column titles) and lines the columns up at tabs, as docker's tabwriter does.  ``\\t``
    typed in the shell is a tab, as docker reads it."""
    fmt = fmt.replace("\\t", "\t")
    if not fmt.startswith("table"):
        return "".join(go_template(fmt, row) + "\n" for row in rows)
    fmt = fmt[len("table"):].strip() or "\t".join("{{." + key + "}}" for key in titles)
    lines = [go_template(fmt, titles)] + [go_template(fmt, row) for row in rows]
    cells = [line.split("\t") for line in lines]
    width = max(len(c) for c in cells)
    cells = [c + [""] * (width - len(c)) for c in cells]
    return table(cells[0], cells[1:])


# --- --format: the part of Go's text/template that inspect formats use ------------------------------


class TemplateError(ValueError):
    """A ``--format`` that asks for what is not there (docker: "map has no entry for key")."""


def go_template(fmt: str, data: dict) -> str:
    """``{{.State.Running}}``, ``{{json .Config}}``, ``{{index .Config.Labels "k"}}``, ``{{len .Mounts}}``,
    ``{{upper .Name}}``, ``{{join .Args "\\n"}}``: each action is a function and its arguments, or one
    value, printed as Go prints it (``true``, ``[sh -c x]``, ``map[a:1]``).  Pipelines, ranges and
    conditionals are not supported: a template that needs them is better written with ``json`` and
    ``jq``; a template we cannot run is an error, never a guess."""
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
            try:
                return json.loads(token)  # Go's escapes (\n, \t, \") are JSON's
            except ValueError:
                raise TemplateError(f"template: bad string {token}") from None
        if token.startswith("`") and token.endswith("`") and len(token) > 1:
            return token[1:-1]  # a raw string
        if token.lstrip("-").isdigit():
            return int(token)
        raise TemplateError(f"template: cannot use {token!r} as an argument (a .Field, a \"string\" or a number)")

    def action(m: re.Match) -> str:
        text = m.group(1)
        text = text.removeprefix("- ")  # {{- ...}} and {{... -}}: trim markers
        text = text.removesuffix(" -")
        if "|" in text or "(" in text:
            raise TemplateError(f"template: {{{{{text.strip()}}}}}: pipelines and parentheses are not supported")
        lexer = shlex.shlex(text.strip(), posix=False)
        lexer.whitespace_split, lexer.quotes = True, '"`'
        words = list(lexer)
        if not words:
            return ""
        name, args = words[0], [argument(w) for w in words[1:]]
        if name.startswith(".") and not args:
            return show(value(name))
        functions = {"json": json_dumps, "upper": lambda x: str(x).upper(), "lower": lambda x: str(x).lower(),
                     "len": lambda x: str(len(x)), "index": lambda x, *keys: show(_index(x, keys)),
                     "join": lambda x, sep: sep.join(map(str, x or [])), "title": lambda x: str(x).title(),
                     "println": lambda *x: " ".join(map(show, x)) + "\n"}
        if name not in functions:
            raise TemplateError(f'template: function "{name}" not defined (supported: {", ".join(functions)})')
        try:
            return functions[name](*args)
        except TypeError as e:  # the wrong number or kind of arguments
            raise TemplateError(f"template: error calling {name}: {e}") from None

    return re.sub(r"\{\{(.*?)\}\}", action, fmt)


def _index(container, keys):
    """``index``: a missing key gives the zero value, an empty string (docker's maps are typed)."""
    for key in keys:
        try:
            container = container[key]
        except (KeyError, IndexError, TypeError):
            return ""
    return container


def json_dumps(value) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)  # as Go's encoding/json


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