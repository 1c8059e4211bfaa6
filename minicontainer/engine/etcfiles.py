"""The three files of ``/etc`` that say who a container is on the network, written as Docker writes them.

An image's own ``/etc/hosts``, ``/etc/resolv.conf`` and ``/etc/hostname`` know nothing of the
container that will run it: its name, its address, its network's nameserver.  So the daemon writes
one file of each per container, in the container's directory (``HostsPath``, ``ResolvConfPath``,
``HostnamePath`` in ``inspect``), and the container's config bind-mounts them over the image's:

* ``hosts``: localhost, then ``--add-host`` entries, then the container's own address(es) and name;
* ``resolv.conf``: on a user-defined network, the daemon's DNS server (on the network's gateway,
  :mod:`minicontainer.engine.dns`), which answers containers' names and forwards the rest; on the
  default bridge, the host's nameservers (``--dns`` replaces them) without the loopback ones, which
  mean the host itself and would mean the container inside it; with ``--network host``, the host's;
* ``hostname``: the container's hostname.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from minicontainer.engine.service import Container

LOCALHOST = ("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::\tip6-localnet\n"
             "ff00::\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n")
FALLBACK_NAMESERVERS = ["8.8.8.8", "8.8.4.4"]  # Docker's, when the host has none a container can use


def write(container: Container, *, dns_server: str | None, host_gateway: str) -> None:
    """Write the three files for ``container`` and record their paths.  ``dns_server``: the daemon's
    DNS server for it (a user-defined network's gateway), or None; ``host_gateway``: what
    ``--add-host NAME:host-gateway`` means (the default bridge's address, the host seen from inside)."""
    rec, hc = container.record, container.record["HostConfig"]
    hostname = rec["Config"]["Hostname"]
    if hc["NetworkMode"] == "host":
        with open("/etc/hosts") as f:
            hosts = f.read()
    else:
        hosts = LOCALHOST
    for entry in hc.get("ExtraHosts") or []:
        name, _, ip = entry.partition("=") if "=" in entry else entry.partition(":")
        hosts += f"{host_gateway if ip == 'host-gateway' else ip}\t{name}\n"
    if hc["NetworkMode"] != "host":
        for ep in rec["NetworkSettings"]["Networks"].values():
            if ep.get("IPAddress"):
                hosts += f"{ep['IPAddress']}\t{hostname}\n"
    with open(container.path("hosts"), "w") as f:
        f.write(hosts)
    with open(container.path("hostname"), "w") as f:
        f.write(hostname + "\n")
    with open(container.path("resolv.conf"), "w") as f:
        f.write(resolv_conf(hc, dns_server))
    rec["HostsPath"], rec["HostnamePath"] = container.path("hosts"), container.path("hostname")
    rec["ResolvConfPath"] = container.path("resolv.conf")


def resolv_conf(hc: dict, dns_server: str | None) -> str:
    host_servers, host_search, host_options = host_resolv()
    if hc["NetworkMode"] == "host":
        servers = hc["Dns"] or host_servers
    elif dns_server is not None:  # the daemon's DNS server answers; it forwards the rest (to --dns too)
        servers = [dns_server]
    else:
        servers = hc["Dns"] or [s for s in host_servers if not ipaddress.ip_address(s).is_loopback] \
            or FALLBACK_NAMESERVERS
    lines = [f"nameserver {s}" for s in servers]
    search = hc.get("DnsSearch") or host_search
    if search:
        lines.append("search " + " ".join(search))
    options = hc.get("DnsOptions") or host_options
    if dns_server is not None and not any(o.startswith("ndots:") for o in options):
        options = [*options, "ndots:0"]  # as Docker: a container's name has no dots, ask for it as is
    if options:
        lines.append("options " + " ".join(options))
    return "\n".join(lines) + "\n"


def host_resolv(path: str = "/etc/resolv.conf") -> tuple[list[str], list[str], list[str]]:
    """The host's nameservers, search domains and options."""
    servers, search, options = [], [], []
    try:
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 2 and parts[0] == "nameserver":
                    servers.append(parts[1])
                elif parts and parts[0] == "search":
                    search = parts[1:]
                elif parts and parts[0] == "options":
                    options = parts[1:]
    except OSError:
        pass
    return servers, search, options
