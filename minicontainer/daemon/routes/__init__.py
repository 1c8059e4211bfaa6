"""The Engine API's routes for the newer concepts, one module (and one class of route methods) each.

Each module here defines one class whose name ends in ``Routes`` (``ExecRoutes`` in ``exec.py``,
``NetworksRoutes`` in ``networks.py``...), its handlers declared with
:func:`minicontainer.daemon.routing.route`.  :class:`minicontainer.daemon.api.DockerAPI` inherits all
of them: adding a concept's routes is adding a module, nothing else to edit.
"""

from __future__ import annotations

import importlib
import pkgutil


def route_classes() -> tuple[type, ...]:
    """Every ``*Routes`` class of this package's modules, in module-name order (their routes are
    registered as their modules are imported, before DockerAPI's own)."""
    found: list[type] = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        found += [obj for name, obj in vars(module).items()
                  if name.endswith("Routes") and isinstance(obj, type) and obj.__module__ == module.__name__]
    return tuple(found)
