"""Calls go one way, top to bottom: every import of the package is checked against its layers.

The layers, bottom first (a module may import from its own layer and from those below it)::

    shared   the package's __init__ (its version), units.py, config.py, observe/events.py, explain.py
             and stats.py: formats and the trace
    kernel   the one thin layer over Linux: it knows no container
    runtime  the OCI runtime
    image    images and how they travel
    engine   what the daemon serves
    daemon   the Engine API on the unix socket

Beside them, the *client side* (cli, client, course, demo, and the observe modules that sample and draw through the client): they reach the engine only through the
daemon's socket, so they import no kernel, runtime, engine or daemon module (the CLI may start the
daemon as a program, never import it).  They may use the shared layer and ``image``'s parsing of
what users type (references, the credentials file).  Within the client side, the client is what
the CLI and the course are built on: it imports neither.

Every import counts: at the top of a module, inside a function (imported lazily for start-up
time), and under ``TYPE_CHECKING``.  The few arrows that must stay are in ALLOWED, with the reason.
"""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "minicontainer"

# Modules of the shared bottom layer (everything else is placed by its package).
SHARED = ("__init__", "units", "config", "observe.events", "observe.explain", "observe.stats")
ORDER = ("shared", "kernel", "runtime", "image", "engine", "daemon")
CLIENT_SIDE = ("cli", "client", "course", "demo", "observe")
NOT_FOR_CLIENT_SIDE = ("kernel", "runtime", "engine", "daemon")
BELOW_CLI = ("client", "observe")  # what the CLI and the course are built on: they import neither

# (importing module, imported module): why this arrow stays.
ALLOWED = {
    ("__init__", "client"): "minicontainer.from_env(), docker.from_env()'s twin: the package's front door to "
                            "the client, imported only when it is called",
    ("cli.doctor", "kernel.features"): "`doctor` examines this host itself: it must answer when the "
                                       "daemon is missing or cannot start, which is one of its findings",
    ("course.environment", "kernel.features"): "the course's first cell reports the host (kernel, "
                                               "namespaces, cgroups) as `doctor` does, without the daemon",
}


def layer(module: str) -> str:
    """``engine.service`` -> ``engine``; ``observe.events`` -> ``shared``; ``observe.plots`` -> ``observe``."""
    if module in SHARED:
        return "shared"
    return module.split(".")[0]


def imports(path: Path, root: Path) -> list[tuple[str, int]]:
    """The package's modules a file imports (``minicontainer.`` left off; the package's own
    ``__init__`` as ``__init__``), with the line of each."""
    package = ".".join(path.relative_to(root.parent).with_suffix("").parts[:-1])

    def is_module(name: str) -> bool:
        where = root.parent.joinpath(*name.split("."))
        return where.with_suffix(".py").is_file() or where.is_dir()

    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # from . import x: relative to this file's package
                parent = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            # `from minicontainer.kernel import features` imports the module kernel.features;
            # `from minicontainer.engine.clock import now_rfc3339`, a name of engine.clock
            names = [f"{base}.{alias.name}" if is_module(f"{base}.{alias.name}") else base for alias in node.names]
        else:
            continue
        found += [(name.removeprefix(root.name + ".") if name != root.name else "__init__", node.lineno)
                  for name in names if name == root.name or name.startswith(root.name + ".")]
    return found


def upward_imports(root: Path = PACKAGE) -> list[str]:
    """Every import that goes against the layers, as ``FILE:LINE: A imports B (why not)``."""
    problems = []
    for path in sorted(root.rglob("*.py")):
        module = ".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
        module = module or "__init__"
        own = layer(module)
        if own not in ORDER and own not in CLIENT_SIDE:
            problems.append(f"{path}: {module} belongs to no layer: add its package to test_layering.py")
            continue
        for target, line in imports(path, root):
            theirs = layer(target)
            if (module, target) in ALLOWED or theirs == own:
                continue
            if own in ORDER:
                why = (None if theirs in ORDER and ORDER.index(theirs) < ORDER.index(own)
                       else f"{own} is below {theirs}")
            elif theirs in NOT_FOR_CLIENT_SIDE:
                why = f"the client side reaches the {theirs} layer only through the daemon's socket"
            elif own in BELOW_CLI and theirs in CLIENT_SIDE and theirs not in BELOW_CLI:
                why = f"{own} is what {theirs} is built on"
            else:
                why = None
            if why:
                problems.append(f"{path.relative_to(root.parent)}:{line}: {module} imports {target} ({why})")
    return problems


def test_no_import_goes_upward() -> None:
    assert upward_imports() == []


def test_every_allowed_arrow_is_still_there() -> None:
    """An allow-list entry whose import is gone must go too, or it would excuse the next one."""
    present = {(".".join(p.relative_to(PACKAGE).with_suffix("").parts), target)
               for p in PACKAGE.rglob("*.py") for target, _line in imports(p, PACKAGE)}
    assert set(ALLOWED) <= present


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    """A package of empty layers, and ``files`` in it."""
    root = tmp_path / "minicontainer"
    empty = {f"{part}/__init__.py": "" for part in (*ORDER[1:], *CLIENT_SIDE)}
    for name, text in {"__init__.py": "", **empty, **files}.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


@pytest.mark.parametrize(("name", "text", "expected"), [
    ("kernel/x.py", "from minicontainer.engine import service\n", "kernel is below engine"),
    ("kernel/x.py", "def f():\n    import minicontainer.runtime.busybox\n", "kernel is below runtime"),
    ("runtime/x.py", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from minicontainer.image import store\n",
     "runtime is below image"),
    ("engine/x.py", "from minicontainer import daemon\n", "engine is below daemon"),
    ("image/x.py", "from minicontainer.cli.format import table\n", "image is below cli"),
    ("units.py", "from minicontainer.engine.clock import now_rfc3339\n", "shared is below engine"),
    ("cli/x.py", "from minicontainer.engine.clock import parse_time\n", "only through the daemon's socket"),
    ("client/x.py", "from ..kernel import syscalls\n", "only through the daemon's socket"),
    ("client/x.py", "from minicontainer.cli.run import parse_bytes\n", "client is what cli is built on"),
    ("observe/sampler.py", "from minicontainer.cli.format import table\n", "observe is what cli is built on"),
    ("newpart/x.py", "", "belongs to no layer"),
])
def test_a_planted_upward_import_is_found(tmp_path: Path, name: str, text: str, expected: str) -> None:
    root = _tree(tmp_path, {name: text})
    [problem] = upward_imports(root)
    assert expected in problem


def test_downward_imports_pass(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "engine/x.py": "from minicontainer.kernel import syscalls\nfrom minicontainer.units import human_size\n",
        "cli/x.py": "from minicontainer.client.api import APIClient\nfrom minicontainer.image.reference import parse\n",
        "daemon/x.py": "from . import y\nfrom minicontainer.engine import service\n",
        "observe/sampler.py": "from minicontainer.client.http import ProtocolError\n",
    })
    assert upward_imports(root) == []
