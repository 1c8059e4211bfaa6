"""OCI hooks: programs the runtime runs at fixed points of a container's life.

A hook is how a tool around the runtime joins in without changing it: a network plugin configures
the container's interfaces once its network namespace exists, a GPU tool bind-mounts drivers in,
a log shipper is told when the container stops.  Each hook gets the container's **state** (the JSON
of ``minicontainer-runtime state``: id, status, pid, bundle, annotations) on its stdin.

The six points, in order (runtime-spec ``config.md``), and who runs them here:

==================  =====================================  ==========================================
point               when                                   run by, and in which namespaces
==================  =====================================  ==========================================
prestart            (deprecated) = createRuntime           the ``create`` process, on the host
createRuntime       namespaces made, before pivot_root     the ``create`` process, on the host
createContainer     likewise, after createRuntime          init: the container's mount namespace, but
                                                           before pivot_root (host paths still work)
startContainer      ``start`` done, just before execve     init, inside the container (its paths)
poststart           after ``start``                        the ``start`` process, on the host
poststop            after ``delete``                       the ``delete`` process, on the host
==================  =====================================  ==========================================

A hook that fails (exit code not 0, or still running after its ``timeout`` seconds: then it is
killed) fails ``create`` or ``start`` for the first four points; for poststart and poststop the
spec says to warn and carry on, since the container has already started or is already gone.
"""

from __future__ import annotations

import json
import subprocess
import sys as _sys

from minicontainer.runtime.bundle import Hook
from minicontainer.runtime.errors import RuntimeFailure


def run(point: str, hooks: list[Hook], state: dict) -> None:
    """Run each hook of ``point`` in order with ``state`` on its stdin; RuntimeFailure on the first failure."""
    payload = json.dumps(state).encode()
    for i, hook in enumerate(hooks):
        where = f"hooks.{point}[{i}] ({hook.path})"
        try:
            done = subprocess.run(hook.args, executable=hook.path, input=payload, env=_env(hook),
                                  capture_output=True, timeout=hook.timeout, check=False)
        except subprocess.TimeoutExpired:
            raise RuntimeFailure(f"{where}: still running after its timeout of {hook.timeout} s: killed") from None
        except OSError as e:
            raise RuntimeFailure(f"{where}: cannot run it: {e.strerror}") from None
        if done.returncode != 0:
            output = (done.stderr or done.stdout).decode(errors="replace").strip()
            raise RuntimeFailure(f"{where}: exited with {done.returncode}" + (f": {output}" if output else ""))


def run_and_warn(point: str, hooks: list[Hook], state: dict) -> None:
    """poststart and poststop: a failure is a warning, and the remaining hooks still run."""
    for i, hook in enumerate(hooks):
        try:
            run(point, [hook], state)
        except RuntimeFailure as e:
            print(f"minicontainer-runtime: warning: {str(e).replace(f'{point}[0]', f'{point}[{i}]')}",
                  file=_sys.stderr)


def _env(hook: Hook) -> dict[str, str]:
    return dict(item.partition("=")[::2] for item in hook.env)


def to_state(hooks: dict[str, list[Hook]]) -> dict:
    """For state.json: the hooks that run after ``create`` (the bundle may change after it)."""
    return {point: [h._asdict() for h in hooks.get(point, [])] for point in ("poststart", "poststop")
            if hooks.get(point)}


def from_state(saved: dict, point: str) -> list[Hook]:
    return [Hook(**h) for h in saved.get(point, [])]
