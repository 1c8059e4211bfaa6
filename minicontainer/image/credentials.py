"""Where registry passwords live: Docker's own credentials file, in Docker's format.

``~/.docker/config.json`` (or ``$DOCKER_CONFIG/config.json``; ``$MINICONTAINER_CONFIG/config.json``
wins if set)::

    {"auths": {"registry.example.com": {"auth": "<base64 of user:password>"}}}

so a ``docker login`` is seen by minicontainer and the other way round.  (Docker's credential
helpers, ``credsStore``, are not supported: a teaching engine keeps the mechanism visible.)

The file belongs to the *user*: ``login`` writes it, and each ``pull`` or ``push`` sends the daemon
the one entry it needs (``X-Registry-Auth``).  This module imports nothing heavy: the CLI reads
the file on every pull.
"""

from __future__ import annotations

import base64
import json
import os
import re
import tempfile

# Docker writes Docker Hub's credentials under its old v1 index URL; we read all spellings.
DOCKER_HUB_CONFIG_KEY = "https://index.docker.io/v1/"
_DOCKER_HUB_ALIASES = ("docker.io", "index.docker.io", "registry-1.docker.io")


class CredentialsFileError(ValueError):
    """The credentials file exists but cannot be read as JSON."""


# --- reading and writing it --------------------------------------------------------------------------


def normalize_registry_host(host: str) -> str:
    """The key credentials are stored and looked up under: ``https://index.docker.io/v1/`` and
    ``registry-1.docker.io`` are ``docker.io``; a scheme and a path are dropped."""
    host = re.sub(r"^[a-z]+://", "", host.strip()).split("/", 1)[0].lower()
    return "docker.io" if host in _DOCKER_HUB_ALIASES else host


def default_config_path() -> str:
    """``$MINICONTAINER_CONFIG/config.json``, else ``$DOCKER_CONFIG/config.json``, else
    ``~/.docker/config.json`` (shared with Docker on purpose)."""
    for var in ("MINICONTAINER_CONFIG", "DOCKER_CONFIG"):
        if os.environ.get(var):
            return os.path.join(os.environ[var], "config.json")
    return os.path.join(os.path.expanduser("~"), ".docker", "config.json")


def _read_config(path: str) -> dict:
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise CredentialsFileError(f"cannot read the credentials file {path}: {e}") from e
    return data if isinstance(data, dict) else {}


def load_docker_credentials(path: str | None = None) -> dict[str, tuple[str, str]]:
    """Read ``auths`` from a Docker-style config file: ``{host: (user, password)}``, hosts normalised.

    Use it as the client's lookup: ``RegistryClient(credentials=load_docker_credentials().get)``.
    A missing file is no credentials; entries without an ``auth`` field are skipped.
    """
    found: dict[str, tuple[str, str]] = {}
    for key, entry in (_read_config(path or default_config_path()).get("auths") or {}).items():
        if not isinstance(entry, dict):
            continue
        try:
            user, _, password = base64.b64decode(entry.get("auth") or "").decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            continue
        if user:
            found[normalize_registry_host(key)] = (user, password)
    return found


def _write_config(path: str, data: dict) -> None:
    """Write atomically, readable by the owner only: the file holds passwords."""
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, mode=0o700, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".config.json.")  # mkstemp: mode 0600 from the start
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent="\t")
            f.write("\n")
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _config_key(host: str) -> str:
    host = normalize_registry_host(host)
    return DOCKER_HUB_CONFIG_KEY if host == "docker.io" else host


def save_login(host: str, user: str, password: str, path: str | None = None) -> str:
    """Store credentials for ``host`` (as ``docker login`` does; other entries are kept).  Returns the path."""
    path = path or default_config_path()
    data = _read_config(path)
    auths = data.setdefault("auths", {})
    for key in [k for k in auths if normalize_registry_host(k) == normalize_registry_host(host)]:
        del auths[key]
    auths[_config_key(host)] = {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}
    _write_config(path, data)
    return path


def remove_login(host: str, path: str | None = None) -> bool:
    """Forget the credentials for ``host`` (``logout``); False if there were none."""
    path = path or default_config_path()
    data = _read_config(path)
    auths = data.get("auths") or {}
    keys = [k for k in auths if normalize_registry_host(k) == normalize_registry_host(host)]
    for key in keys:
        del auths[key]
    if keys:
        _write_config(path, data)
    return bool(keys)
