"""What every benchmark does around its measures: the root check, a daemon's own roots, stopping
what it started, the report.

A benchmark is a report, not a test: run as an ordinary user (or with a tool missing) it says what
it could not measure and exits 0, and a failure half-way is printed, not raised, so that ``make
bench`` goes on to the next one.  Each daemon it starts has data and run roots of its own under the
benchmark's temporary directory, never the machine's.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn


def needs_root(name: str, why: str) -> bool:
    """True (and says so) when this is not root: namespaces, mounts and cgroups need it."""
    if os.geteuid() == 0:
        return False
    print(f"{name}: needs root ({why}); nothing measured")
    return True


def daemon_env(workdir: Path, **extra: str) -> dict[str, str]:
    """This process's environment for the CLI and a daemon of the benchmark's own: its data and run
    roots under ``workdir``, and no ``MINICONTAINER_HOST`` of the caller's (which would send the CLI
    to another daemon)."""
    env = {**os.environ, "MINICONTAINER_ROOT": str(workdir / "data"), "MINICONTAINER_RUN": str(workdir / "run"),
           **extra}
    env.pop("MINICONTAINER_HOST", None)
    return env


def stop_process(process: subprocess.Popen | None, timeout: float = 30) -> None:
    """SIGTERM (a daemon stops its containers first), then SIGKILL if it takes longer than ``timeout``."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def report_left(left: list[str], clean: str) -> None:
    """The last lines of a report: what the clean-up could not remove, or what it did (``clean``)."""
    print("\nWARNING, left behind:\n  " + "\n  ".join(left) if left else f"\nclean-up: {clean}")


def run_as_report(main: Callable[[], int], name: str) -> NoReturn:
    """``main()``'s exit code; a failure is said on one line, and exits 0 too."""
    try:
        sys.exit(main())
    except Exception as e:  # noqa: BLE001 -- a report, not a test: say what went wrong, exit 0
        print(f"{name}: {type(e).__name__}: {e}")
        sys.exit(0)
