"""``minicontainer doctor``: the report on what this host allows, as a checklist or as JSON.

The probing is in :mod:`minicontainer.kernel.features`; this module only lays the results out::

    minicontainer doctor: what this host allows
      ok       root: running as root (euid 0); ...
      limited  cgroups: hybrid (v1 controllers + a cgroup2 at /sys/fs/cgroup/unified, no controllers)
               -> most learners have pure cgroup v2; ...

Exit status: 0 when everything real isolation (as root) needs is there, 1 otherwise.  "limited"
lines never fail the run: they are caveats, minicontainer works anyway.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from minicontainer.kernel.features import Check

TITLE = "minicontainer doctor: what this host allows"
STATUS_WIDTH = 9  # "limited" and two spaces: the details line up in one column
INDENT = "  "


def format_text(checks: list[Check]) -> str:
    """The checklist: one line per check, and under each problem the remedy, after an arrow."""
    lines = [TITLE]
    for check in checks:
        text = f"{check.name}: {check.detail}" if check.detail else check.name
        lines.append(f"{INDENT}{check.status:<{STATUS_WIDTH}}{text}")
        if check.remedy and check.status != "ok":
            lines.append(f"{INDENT}{'':<{STATUS_WIDTH}}-> {check.remedy}")
    lines.append(summary(checks))
    return "\n".join(lines) + "\n"


def failures(checks: list[Check]) -> list[Check]:
    """The checks that stop minicontainer from isolating containers for real."""
    return [c for c in checks if c.required and c.status == "missing"]


def summary(checks: list[Check]) -> str:
    failed = failures(checks)
    limited = sum(1 for c in checks if c.status != "ok") - len(failed)
    if failed:
        names = ", ".join(c.name for c in failed)
        return f"=> not ready: real isolation needs {names} (see the -> lines)"
    tail = f"; {limited} caveat{'s' if limited != 1 else ''} above" if limited else ""
    return f"=> ready: minicontainer can isolate containers here{tail}"


def format_json(checks: list[Check]) -> str:
    """A JSON list of {check, status, detail, remedy, required}: what notebooks read."""
    import json

    return json.dumps([c.to_dict() for c in checks], indent=2) + "\n"


def exit_code(checks: list[Check]) -> int:
    return 1 if failures(checks) else 0


def command(*, as_json: bool = False, out: TextIO | None = None) -> int:
    """Run every check, print the report, return the exit code."""
    from minicontainer.kernel.features import run_checks

    checks = run_checks()
    (out or sys.stdout).write(format_json(checks) if as_json else format_text(checks))
    return exit_code(checks)
