"""Network interfaces, addresses and routes: the kernel's rtnetlink interface, through pyroute2.

``ip link add``, ``ip addr add`` and ``ip route add`` are not system calls of their own: each is a
message (``RTM_NEWLINK``, ``RTM_NEWADDR``, ``RTM_NEWROUTE``) sent on a *netlink socket*, a socket
whose other end is the kernel.  pyroute2 builds and parses those messages; every one we send goes
through :meth:`Syscalls.netlink <minicontainer.kernel.syscalls.Syscalls.netlink>`, so it is
recorded (``run --explain`` narrates "create veth pair", "add address"...) and a refusal is a
:class:`~minicontainer.kernel.syscalls.KernelError` with its errno.

**Which namespace a request acts in.**  A netlink socket talks to the network namespace it was
*created* in, whatever namespace its user is in later.  So to configure a container's interfaces
from the daemon, :func:`session` starts a short-lived thread, moves that one thread into the
container's namespace with ``setns(/proc/PID/ns/net, CLONE_NEWNET)`` (a namespace is a property of
each thread, not of the whole process), opens the socket there and does the work; the rest of the
daemon never leaves the host's namespace.  (pyroute2's own ``IPRoute(netns=...)`` forks a helper
process to do the same; a thread costs a tenth of it.)

A thread is needed anyway: pyroute2's ``IPRoute`` runs an event loop of its own, which may not run
inside the thread of the daemon's loop.

The deprecated IPDB is not used: plain requests are what the lesson is about.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from minicontainer.kernel.syscalls import CLONE_NEWNET, Syscalls

T = TypeVar("T")


def session(sys: Syscalls, work: Callable[[Netlink], T], netns: str | None = None) -> T:
    """Run ``work(Netlink)`` in a thread of its own, in the network namespace ``netns`` (a
    ``/proc/PID/ns/net`` path; None: the host's); return what it returns, raise what it raises."""
    outcome: list = []

    def run() -> None:
        try:
            if netns is not None:
                sys.setns(netns, CLONE_NEWNET, detail="this thread only: its netlink socket will "
                                                      "talk to the container's network namespace")
            from pyroute2 import IPRoute

            with IPRoute() as ipr:
                outcome.append((True, work(Netlink(sys, ipr, "container" if netns else "host"))))
        except BaseException as e:  # noqa: BLE001 - handed to the calling thread
            outcome.append((False, e))

    thread = threading.Thread(target=run, name="netlink")
    thread.start()
    thread.join()
    ok, value = outcome[0]
    if not ok:
        raise value
    return value


class Netlink:
    """rtnetlink requests in one network namespace, each one recorded.  Interfaces are named, as
    ``ip`` names them; the kernel's requests want indexes, which :meth:`index` looks up."""

    def __init__(self, sys: Syscalls, ipr, where: str) -> None:
        self.sys = sys
        self.ipr = ipr
        self.where = where  # "host" or "container", for the narration
        self.indexes: dict[str, int] = {}  # looked up once per session: each lookup is a dump of all links

    # -- looking (reads are not recorded: only what changes the system is part of the story) --------
    def index(self, name: str) -> int | None:
        if name not in self.indexes:
            found = self.ipr.link_lookup(ifname=name)
            if not found:
                return None
            self.indexes[name] = found[0]
        return self.indexes[name]

    def links(self) -> dict[str, str]:
        """Every interface here: name -> kind ("bridge", "veth", "" for a physical one)."""
        result = {}
        for link in self.ipr.get_links():
            info = link.get(("IFLA_LINKINFO", "IFLA_INFO_KIND"))
            result[link.get("IFLA_IFNAME")] = info or ""
        return result

    def alias(self, name: str) -> str | None:
        """The interface's alias (``ip link show`` prints it after ``alias``), "" if it has none,
        None if there is no such interface: a label any program may set, which says who made it."""
        index = self.index(name)
        if index is None:
            return None
        return self.ipr.get_links(index)[0].get("IFLA_IFALIAS") or ""

    def uplink_mtu(self) -> int:
        """The MTU of the interface the default route leaves by (1500 when there is none): a
        container's packets go out that way, so a larger MTU would only get them fragmented."""
        for route in self.ipr.get_default_routes(family=2):
            oif = route.get("RTA_OIF")
            if oif:
                link = self.ipr.get_links(oif)[0]
                return int(link.get("IFLA_MTU") or 1500)
        return 1500

    def onlink_networks(self) -> list[str]:
        """The host's IPv4 networks reached directly (scope link routes, e.g. 192.168.1.0/24 on
        wlan0): a bridge's subnet must not overlap one of them, or that network becomes unreachable."""
        nets = []
        for route in self.ipr.get_routes(family=2, table=254):
            dst = route.get("RTA_DST")
            if dst and route["scope"] == 253:  # RT_SCOPE_LINK
                nets.append(f"{dst}/{route['dst_len']}")
        return nets

    # -- changing -------------------------------------------------------------------------------------
    def _request(self, op: str, args: str, detail: str, fn: Callable[[], object]) -> None:
        self.sys.netlink(op, f"{self.where}: {args}", fn, path=args.split()[0] if args else "", detail=detail)

    def _need(self, name: str) -> int:
        index = self.index(name)
        if index is None:
            import errno

            from minicontainer.kernel.syscalls import KernelError

            raise KernelError("RTM_GETLINK", name, errno.ENODEV, "no such network interface")
        return index

    def add_bridge(self, name: str, mtu: int, alias: str) -> None:
        """A bridge labelled ``alias`` (the kernel takes an alias only on an existing link: two requests)."""
        self._request("RTM_NEWLINK", f"{name} type bridge mtu {mtu}",
                      "create a bridge: a virtual switch that the containers' veths plug into",
                      lambda: self.ipr.link("add", ifname=name, kind="bridge", mtu=mtu))
        index = self._need(name)
        self._request("RTM_NEWLINK", f"{name} alias {alias}",
                      "label it: only a bridge that carries this label is ever changed or deleted again",
                      lambda: self.ipr.link("set", index=index, ifalias=alias))

    def add_veth(self, name: str, peer: str, mtu: int, peer_mac: str, peer_netns: str) -> None:
        """A veth pair: ``name`` here, ``peer`` created straight inside the network namespace
        ``peer_netns`` (a /proc/PID/ns/net path).  Creating it there is one cheap request; creating
        it here and then moving it (``ip link set PEER netns ...``) makes the kernel wait for an RCU
        grace period, ~15 ms, on every container start."""
        self._request("RTM_NEWLINK", f"{name} type veth peer {peer} netns {peer_netns} address {peer_mac} mtu {mtu}",
                      "create veth pair: two interfaces joined by a cable; one end here, the other "
                      "created right in the container's netns, where only the container sees it",
                      lambda: self.ipr.link("add", ifname=name, kind="veth", mtu=mtu,
                                            peer={"ifname": peer, "mtu": mtu, "address": peer_mac,
                                                  "net_ns_fd": peer_netns}))

    def rename(self, name: str, new: str) -> None:
        index = self._need(name)
        self._request("RTM_NEWLINK", f"{name} name {new}", "the container's end takes the usual name",
                      lambda: self.ipr.link("set", index=index, ifname=new))
        self.indexes[new] = self.indexes.pop(name)

    def set_master(self, name: str, bridge: str) -> None:
        index, master = self._need(name), self._need(bridge)
        self._request("RTM_NEWLINK", f"{name} master {bridge}", "plug the host's end into the bridge",
                      lambda: self.ipr.link("set", index=index, master=master))

    def up(self, name: str, detail: str = "") -> None:
        index = self._need(name)
        self._request("RTM_NEWLINK", f"{name} up", detail or f"bring {name} up",
                      lambda: self.ipr.link("set", index=index, state="up"))

    def delete(self, name: str, detail: str = "") -> None:
        index = self._need(name)
        self._request("RTM_DELLINK", name, detail or f"delete {name}",
                      lambda: self.ipr.link("del", index=index))
        self.indexes.pop(name, None)

    def add_address(self, name: str, address: str, prefixlen: int, detail: str = "") -> None:
        index = self._need(name)
        self._request("RTM_NEWADDR", f"{name} {address}/{prefixlen}", detail or "add address",
                      lambda: self.ipr.addr("add", index=index, address=address, prefixlen=prefixlen))

    def add_default_route(self, gateway: str) -> None:
        self._request("RTM_NEWROUTE", f"default via {gateway}",
                      "add default route: everything not on the bridge's subnet goes to the bridge's address",
                      lambda: self.ipr.route("add", dst="default", gateway=gateway))
