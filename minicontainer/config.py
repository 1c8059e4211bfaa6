"""Where minicontainer keeps things, and the settings an administrator may change.

The same split as Docker's:

* the **data root** (``/var/lib/minicontainer``, like ``/var/lib/docker``): images, layers,
  containers; ``MINICONTAINER_ROOT`` or ``data-root`` in the daemon settings moves it (tests use a
  temporary directory);
* the **daemon settings** (``/etc/minicontainer/daemon.json``, like ``/etc/docker/daemon.json``), e.g.
  for a classroom behind a pull-through cache::

      {"registry-mirrors": ["http://10.0.0.5:5000"], "insecure-registries": ["10.0.0.5:5000"]}

* the **client settings** (``~/.minicontainer/config.json``, like ``~/.docker/config.json``): the
  credentials ``minicontainer login`` stores, in Docker's own format.
"""

from __future__ import annotations

import json
import os

DEFAULT_DATA_ROOT = "/var/lib/minicontainer"
DEFAULT_DAEMON_CONFIG = "/etc/minicontainer/daemon.json"


def daemon_settings() -> dict:
    path = os.environ.get("MINICONTAINER_DAEMON_CONFIG", DEFAULT_DAEMON_CONFIG)
    try:
        with open(path, encoding="utf-8") as f:
            settings = json.load(f)
    except FileNotFoundError:
        return {}
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON: {e}") from None
    if not isinstance(settings, dict):
        raise TypeError(f"{path} must hold a JSON object, not {type(settings).__name__}")
    return settings


def data_root() -> str:
    return os.environ.get("MINICONTAINER_ROOT") or daemon_settings().get("data-root") or DEFAULT_DATA_ROOT


def run_root() -> str:
    """Runtime state that must not survive a reboot (like /run/docker): MINICONTAINER_RUN moves it."""
    return os.environ.get("MINICONTAINER_RUN") or "/run/minicontainer"


def socket_path() -> str:
    """Where the daemon listens and clients connect: ``$MINICONTAINER_HOST`` (``unix:///path``), else
    ``minicontainer.sock`` in the run root (``/run/minicontainer``, like ``/run/docker.sock``)."""
    host = os.environ.get("MINICONTAINER_HOST", "")
    if host.startswith("unix://"):
        return host[len("unix://"):]
    return os.path.join(run_root(), "minicontainer.sock")


def client_config_dir() -> str:
    """Where ``login`` stores credentials: $MINICONTAINER_CONFIG, else ~/.minicontainer."""
    return os.environ.get("MINICONTAINER_CONFIG") or os.path.join(os.path.expanduser("~"), ".minicontainer")
