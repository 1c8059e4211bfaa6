"""Published ports (``-p HOST:CONTAINER``, ``-P``): the host ports a container's ports are reached by.

Publishing is two things:

* **a reservation**: the daemon binds a socket to each host port (and holds it, without listening)
  while the container runs.  The bind is how a port already taken is found, before the container
  starts ("port is already allocated"), and holding it keeps any host program from taking the port
  meanwhile.  No traffic ever reaches that socket;
* **a DNAT rule** (:mod:`minicontainer.kernel.firewall`): the kernel rewrites each new connection to
  a host address on that port into one to the container's address and port, before routing.  The
  packets never leave the kernel: no proxy process, no copy through Python.

``-p 6379`` leaves the host port to the kernel (bind to port 0); ``-P`` publishes every port the image
EXPOSEs (and ``--expose``) that way.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import socket
from typing import TYPE_CHECKING

from minicontainer.engine.errors import EngineError, InvalidParameter
from minicontainer.kernel import firewall

if TYPE_CHECKING:
    from minicontainer.engine.service import Container

log = logging.getLogger(__name__)


class PortTaken(EngineError):
    """Docker answers 500 when a host port cannot be had."""


def _socket(proto: str) -> socket.socket:
    return socket.socket(socket.AF_INET, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)


class PublishedPorts:
    """The sockets that hold the running containers' host ports."""

    def __init__(self) -> None:
        self.held: dict[str, list[socket.socket]] = {}  # container ID -> its sockets

    def assign(self, container: Container) -> None:
        """Bind every host port the container asks for; record them in its NetworkSettings.Ports."""
        hc = container.record["HostConfig"]
        bindings = {k: [dict(b) for b in v] for k, v in (hc.get("PortBindings") or {}).items()}
        if hc.get("PublishAllPorts"):
            for key in container.record["Config"].get("ExposedPorts") or {}:
                bindings.setdefault(key if "/" in key else key + "/tcp", [{"HostIp": "", "HostPort": ""}])
        socks = self.held[container.id] = []
        ports: dict[str, list[dict] | None] = {}
        for key, blist in bindings.items():
            proto = key.split("/")[1]
            ports[key] = []
            for b in blist:
                host_ip = b.get("HostIp") or "0.0.0.0"
                s = _socket(proto)
                try:
                    s.bind((host_ip, int(b.get("HostPort") or 0)))
                except OSError as e:
                    s.close()
                    why = "port is already allocated" if e.errno == errno.EADDRINUSE else e.strerror
                    raise PortTaken(f"driver failed programming external connectivity on endpoint "
                                    f"{container.name} ({container.id[:12]}): Bind for "
                                    f"{host_ip}:{b.get('HostPort') or 0} failed: {why}") from None
                socks.append(s)
                ports[key].append({"HostIp": host_ip, "HostPort": str(s.getsockname()[1])})
        for key in container.record["Config"].get("ExposedPorts") or {}:
            ports.setdefault(key, None)
        container.record["NetworkSettings"]["Ports"] = ports

    def hold_again(self, container: Container) -> None:
        """After a daemon restart: hold a running container's host ports again."""
        socks = self.held.setdefault(container.id, [])
        for key, blist in (container.record["NetworkSettings"].get("Ports") or {}).items():
            for b in blist or []:
                s = _socket(key.split("/")[1])
                try:
                    s.bind((b["HostIp"], int(b["HostPort"])))
                    socks.append(s)
                except OSError as e:
                    s.close()
                    log.warning("container %s: host port %s is taken now (%s)", container.id[:12], b["HostPort"], e)

    def release(self, container_id: str) -> None:
        for s in self.held.pop(container_id, []):
            s.close()

    def close(self) -> None:
        for cid in list(self.held):
            self.release(cid)


def rules(container: Container) -> list[firewall.Published]:
    """The DNAT rules a container's published ports need (none until it has an address)."""
    ports = container.record["NetworkSettings"].get("Ports") or {}
    nets = container.record["NetworkSettings"]["Networks"]
    endpoint = next((n for n in nets.values() if n.get("IPAddress")), None)
    if endpoint is None:
        return []
    return [firewall.Published(key.split("/")[1], b["HostIp"], int(b["HostPort"]), endpoint["IPAddress"],
                               int(key.split("/")[0]))
            for key, bindings in ports.items() for b in bindings or []]


def summary(container: Container) -> list[dict]:
    """``GET /containers/json``'s Ports: one entry per binding, and the exposed ports unpublished."""
    out: list[dict] = []
    ports = (container.record["NetworkSettings"].get("Ports") or {}) if container.running else {}
    for key, bindings in sorted(ports.items()):
        port, proto = key.split("/")
        if not bindings:
            out.append({"PrivatePort": int(port), "Type": proto})
        for b in bindings or []:
            out.append({"IP": b["HostIp"], "PrivatePort": int(port), "PublicPort": int(b["HostPort"]), "Type": proto})
    return out


def check_bindings(bindings: dict) -> dict:
    """HostConfig.PortBindings, checked: ``{"6379/tcp": [{"HostIp": "", "HostPort": "6379"}]}``."""
    out = {}
    for key, blist in bindings.items():
        port, _, proto = key.partition("/")
        proto = proto or "tcp"
        if proto not in ("tcp", "udp"):
            raise InvalidParameter(f"invalid proto: {proto} (tcp and udp are supported)")
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise InvalidParameter(f"invalid containerPort: {port}")
        checked = []
        for b in blist or [{}]:
            host_ip, host_port = (b or {}).get("HostIp") or "", (b or {}).get("HostPort") or ""
            if host_ip:
                try:
                    if ipaddress.ip_address(host_ip).version != 4:
                        raise ValueError
                except ValueError:
                    raise InvalidParameter(f"invalid IP address: {host_ip} (an IPv4 address is needed)") from None
            if host_port and "-" in host_port:
                raise InvalidParameter(f"port ranges are not supported: {host_port}")
            if host_port and (not host_port.isdigit() or not 0 < int(host_port) < 65536):
                raise InvalidParameter(f"invalid hostPort: {host_port}")
            checked.append({"HostIp": host_ip, "HostPort": host_port})
        out[f"{int(port)}/{proto}"] = checked
    return out
