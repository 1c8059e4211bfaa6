"""The first cell of every notebook: is everything a notebook needs here, and if not, what to do.

A notebook that fails in its tenth cell because the daemon was never started teaches nothing.  So
each notebook starts with ``client = course.check_environment()``, which looks at, in order:

1. **the daemon**: does ``minicontainerd`` answer on its socket, and may this user talk to it (the
   socket belongs to the group ``minicontainer``, as Docker's belongs to ``docker``)?
2. **the host**: the kernel, its namespaces and its cgroup version, the same checks
   ``minicontainer doctor`` makes (the daemon, running as root, is what uses them);
3. **the images** the notebook uses: already in the daemon's local store, or pullable?  With no
   registry reachable at all, ``minicontainer starter`` builds them from this host's own files.

It shows one table, a line per finding with the remedy next to each problem, and raises
:class:`NotReady` (stopping the notebook there) only for what no later cell could work without.
"""

from __future__ import annotations

import grp
import os
from typing import NamedTuple

from minicontainer.client import Client
from minicontainer.client.api import APIError
from minicontainer.config import socket_path

OK, LIMITED, MISSING = "ok", "limited", "missing"
STARTER_IMAGES = ("busybox", "hello-world", "redis")  # what `minicontainer starter` can build offline
NO_REGISTRY: set[str] = set()  # images no registry answered for: the store's copy (or a starter's) is used


class Finding(NamedTuple):
    name: str
    status: str  # OK, LIMITED or MISSING
    detail: str
    remedy: str = ""


class NotReady(RuntimeError):
    """Something every later cell needs is missing; the message says what to do."""


def check_environment(images: tuple[str, ...] = ("busybox",), *, show: bool = True) -> Client:
    """Check what the notebook needs, show the findings, and return a connected client.

    ``images`` are the images the notebook uses, by the names a learner types (``busybox``).
    """
    findings, client = _daemon_findings()
    findings += _host_findings()
    if client is not None:
        findings += [_image_finding(client, name) for name in images]
    if show:
        _show(findings)
    fatal = [f for f in findings if f.status == MISSING]
    if fatal:
        raise NotReady("; ".join(f"{f.name}: {f.remedy}" for f in fatal))
    return client


def _daemon_findings() -> tuple[list[Finding], Client | None]:
    path = socket_path()
    try:
        client = Client(path)
        version = client.version()
    except APIError as e:
        remedy = e.message
        if "permission denied" not in remedy:
            remedy = "start the daemon as root (sudo .venv/bin/minicontainerd), then run this cell again"
        return [Finding("daemon", MISSING, f"no answer on unix://{path}", remedy)], None
    me = _user_and_groups()
    detail = f"minicontainerd {version.get('Version')} (Engine API {version.get('ApiVersion')}) on unix://{path}"
    return [Finding("daemon", OK, detail), Finding("user", OK, me)], client


def _user_and_groups() -> str:
    import pwd

    uid = os.geteuid()
    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:
        user = str(uid)
    groups = []
    for gid in os.getgroups():
        try:
            groups.append(grp.getgrgid(gid).gr_name)
        except KeyError:
            groups.append(str(gid))
    role = "root" if uid == 0 else "an ordinary user: the daemon does the root part"
    return f"{user} (uid {uid}, groups {', '.join(groups) or 'none'}), {role}"


def _host_findings() -> list[Finding]:
    from minicontainer.kernel import features

    checks = [features.check_kernel(), features.check_namespaces()]
    checks.append(features.check_cgroups(os.geteuid())[0])  # the mode; its controllers are the daemon's
    return [Finding(c.name, c.status, c.detail, c.remedy) for c in checks]


def _image_finding(client: Client, name: str) -> Finding:
    try:
        local = client.images.get(name).short_id
    except APIError as e:
        if e.status != 404:
            raise
        local = None
    try:
        found = client.api.json("GET", f"/distribution/{name}/json")
    except APIError as e:
        remedy = "check the network, or the daemon's registry-mirrors (/etc/minicontainer/daemon.json)"
        starter = name.split(":")[0]
        if local is None and starter not in STARTER_IMAGES:
            return Finding(f"image {name}", MISSING, f"not in the store, and no registry has it: {e.message}", remedy)
        # No registry at all (a laptop on a train): the copy in the store, or the starter image built from
        # this host's own files, lets every later cell run.  Only the pull differs: the notebook says so.
        NO_REGISTRY.add(name)
        if local is not None:
            return Finding(f"image {name}", LIMITED, f"in the local store ({local}), but no registry answered "
                                                     f"({e.message}): the notebook uses that copy", remedy)
        client.api.json("POST", f"/minicontainer/starter/{starter}")
        return Finding(f"image {name}", LIMITED, f"no registry answered ({e.message}): built it from this host's "
                                                 f"files instead (minicontainer starter {starter})", remedy)
    where = f"in the local store ({local})" if local else "not in the store yet"
    return Finding(f"image {name}", OK, f"{where}; the registry has it ({found['Descriptor']['digest'][:19]})")


def pull(client: Client, name: str):
    """Pull ``name`` with a progress bar per layer; for an image no registry answered for in the first
    cell, say so and show the store's copy instead."""
    if name in NO_REGISTRY:
        print(f"No registry could be reached: {name} is the copy in the store, not pulled.")
        return client.images.get(name)
    return client.images.pull(name, progress=True)


def _show(findings: list[Finding]) -> None:
    try:
        from IPython import get_ipython
        from IPython.display import HTML, display
    except ImportError:
        get_ipython = None  # plain Python: print the table as text
    if get_ipython is None or get_ipython() is None:
        for f in findings:
            print(f"{f.status:<9}{f.name}: {f.detail}" + (f"\n{'':<9}-> {f.remedy}" if f.remedy and f.status != OK else ""))
        return
    import html

    colours = {OK: "#1a7f37", LIMITED: "#9a6700", MISSING: "#cf222e"}
    rows = "".join(
        f"<tr><td style='color:{colours[f.status]};font-weight:bold'>{f.status}</td>"
        f"<th style='text-align:left'>{html.escape(f.name)}</th><td style='text-align:left'>{html.escape(f.detail)}"
        + (f"<br>&rarr; <code>{html.escape(f.remedy)}</code>" if f.remedy and f.status != OK else "")
        + "</td></tr>" for f in findings)
    display(HTML(f"<table class='minicontainer-environment'><caption>Your environment</caption>{rows}</table>"))
