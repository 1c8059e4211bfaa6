"""minicontainer: containers, built in readable Python, to learn how they really work.

``import minicontainer; client = minicontainer.from_env()`` gives the notebook client (docker-py's
shape); the command lines are ``minicontainer``, ``minicontainerd`` and ``minicontainer-runtime``.
"""

from __future__ import annotations

__version__ = "0.1.0"  # pyproject.toml reads it from here


def from_env():
    """A client for minicontainerd, shaped like ``docker.from_env()`` (imported on first use: the
    runtime, which imports this package too, must not pay for the client)."""
    from minicontainer.client import from_env as _from_env

    return _from_env()
