"""Networks: what puts a container on a network, as Docker's bridge driver does.

Every container gets a network namespace of its own from the runtime: an empty one, with only a
loopback interface, down.  Before the container's program starts (its init is waiting on
``exec.fifo``), the daemon fills that namespace through ``/proc/PID/ns/net``:

1. ``lo`` up, always (also with ``--network none``): 127.0.0.1 must answer inside every container;
2. for each network the container is on: a **veth pair** (two interfaces joined like a cable), one
   end plugged into the network's **bridge** (a virtual switch on the host), the other created in
   the container's namespace and renamed ``eth0`` (``eth1``...), given the address that **IPAM**
   chose from the network's subnet, and a **default route** via the bridge's own address;
3. the **firewall** (:mod:`minicontainer.kernel.firewall`) masquerades what leaves the bridge for
   the outside world, and DNATs the published ports (``-p``) to the container.

Network modes (``--network``): ``bridge`` (the default network, bridge ``mc0``: not ``docker0``,
which a real Docker may own on the same machine; a daemon with another data root gets a name of its
own, see :func:`default_bridge_name`), the name or ID of a user-defined network,
``none`` (only ``lo``), ``host`` (no namespace of its own: the host's interfaces), and
``container:NAME`` (join that container's namespace).

Every bridge the daemon makes carries an alias naming its data root (``ip -d link show mc0``:
``alias minicontainer /var/lib/minicontainer``): an interface without it is not ours, and is never
used, changed or deleted.

Records: one JSON file per network in ``<data root>/networks``, including which address each
container holds (so a restarted daemon gives none of them out twice).  Bridges exist while the
daemon runs; a restarted daemon makes them again and rewrites the rules from those records, so
that what a killed daemon left behind never gets in the way.

Names on user-defined networks are answered by the daemon's DNS server (:mod:`minicontainer.engine.dns`),
which listens on each such network's gateway address; each container's /etc/hosts, resolv.conf and
hostname are written by :mod:`minicontainer.engine.etcfiles`.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import logging
import os
import re
import secrets
import socket
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from minicontainer import config as settings
from minicontainer.engine import etcfiles
from minicontainer.engine import ports as publishing
from minicontainer.engine.clock import now_rfc3339
from minicontainer.engine.errors import Conflict, EngineError, InvalidParameter, NotFound
from minicontainer.kernel import firewall, netlink
from minicontainer.kernel.syscalls import KernelError, Syscalls

if TYPE_CHECKING:
    from minicontainer.engine.service import Container, Engine

log = logging.getLogger(__name__)

DEFAULT_BRIDGE = "mc0"
# Docker's default local pools (libnetwork/ipamutils): base and the size of each network cut from it.
DEFAULT_POOLS = [("172.17.0.0/16", 16), ("172.18.0.0/16", 16), ("172.19.0.0/16", 16), ("172.20.0.0/14", 16),
                 ("172.24.0.0/14", 16), ("172.28.0.0/14", 16), ("192.168.0.0/16", 20)]
PREDEFINED = ("bridge", "host", "none")
BRIDGE_NAME_OPTION = "com.docker.network.bridge.name"
# What `network create` may ask for; anything else is refused rather than ignored.
CREATE_FIELDS = {"Name", "CheckDuplicate", "Driver", "Internal", "Attachable", "Labels", "IPAM", "Options",
                 "EnableIPv4", "EnableIPv6", "Scope", "Ingress", "ConfigOnly", "ConfigFrom"}
ENDPOINT_FIELDS = {"Aliases", "IPAMConfig", "NetworkID", "EndpointID", "Gateway", "IPAddress", "IPPrefixLen",
                   "IPv6Gateway", "GlobalIPv6Address", "GlobalIPv6PrefixLen", "MacAddress", "DriverOpts",
                   "Links", "DNSNames", "GwPriority"}


class NetworkError(EngineError):
    """Docker answers a failure to wire a container's network with a 500."""


def _pools(config: dict) -> list[tuple[str, int]]:
    pools = config.get("default-address-pools")
    if not pools:
        return DEFAULT_POOLS
    try:
        return [(str(ipaddress.ip_network(p["base"])), int(p["size"])) for p in pools]
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"daemon.json: default-address-pools: each entry needs a base network and a "
                         f"size ({e})") from None


def default_bridge_name(data_root: str) -> str:
    """``mc0`` for the daemon of the default data root; for any other (a course's second daemon, the
    tests'), ``mc`` and 8 hex digits of the root's path: two daemons never share a bridge, nor the
    nftables table named after it, so one's clean-up cannot break the other's networks; and the same
    root gets the same name after a restart.  (``bridge`` in daemon.json names it instead.)"""
    import hashlib

    root = os.path.realpath(data_root)
    if root == os.path.realpath(settings.DEFAULT_DATA_ROOT):
        return DEFAULT_BRIDGE
    return "mc" + hashlib.sha256(root.encode()).hexdigest()[:8]


def _mac(ip: str) -> str:
    """Docker's old rule, still handy for reading: 02:42 then the four bytes of the address."""
    return "02:42:" + ":".join(f"{b:02x}" for b in ipaddress.ip_address(ip).packed)


class Networks:
    """The daemon's networks and the containers' endpoints on them."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dir = os.path.join(engine.data_root, "networks")
        self.records: dict[str, dict] = {}
        conf = settings.daemon_settings()
        self.default_bridge = conf.get("bridge") or default_bridge_name(engine.data_root)
        self.owner = f"minicontainer {os.path.realpath(engine.data_root)}"  # the alias of our bridges
        self.bip = conf.get("bip") or ""
        self.pools = _pools(conf)
        self.mtu = int(conf.get("mtu") or 0)  # 0: the host's uplink's
        self.uplink_mtu = 0
        # One nftables table per daemon: each daemon has its own default bridge, so its own table.
        self.table = "minicontainer" if self.default_bridge == DEFAULT_BRIDGE else \
            "minicontainer_" + self.default_bridge.replace("-", "_")
        self.ports = publishing.PublishedPorts()  # the running containers' host ports, held
        self.dns = None

    # --- records ---------------------------------------------------------------------------------------
    def _save(self, record: dict) -> None:
        tmp = os.path.join(self.dir, f".{record['Id']}.tmp")
        with open(tmp, "w") as f:
            json.dump(record, f, indent=1)
        os.rename(tmp, os.path.join(self.dir, record["Id"] + ".json"))

    def get(self, ref: str) -> dict:
        """By full ID, name, then unique ID prefix (docker's order)."""
        if ref in self.records:
            return self.records[ref]
        for r in self.records.values():
            if r["Name"] == ref:
                return r
        found = [r for r in self.records.values() if ref and r["Id"].startswith(ref)]
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise InvalidParameter(f"network {ref} is ambiguous ({len(found)} matches found on ID prefix)")
        raise NotFound(f"network {ref} not found")

    def _event(self, action: str, net: dict, container_id: str = "") -> None:
        """``docker events``: network create/destroy, and connect/disconnect of each endpoint."""
        attrs = {"name": net["Name"], "type": net["Driver"], "container": container_id or None}
        self.engine.event_log.emit("network", action, net["Id"], attrs)

    @staticmethod
    def bridge_of(record: dict) -> str:
        return record["Options"].get(BRIDGE_NAME_OPTION, "")

    def _bridges(self) -> list[dict]:
        return [r for r in self.records.values() if r["Driver"] == "bridge"]

    # --- start-up and shutdown ---------------------------------------------------------------------------
    def open(self, running: list[Container]) -> None:
        """Load the records, make the predefined networks, then the bridges, rules and DNS listeners
        the networks need (again, after a restart), and let go of addresses no running container holds."""
        os.makedirs(self.dir, exist_ok=True)
        for entry in os.listdir(self.dir):
            if entry.endswith(".json"):
                with open(os.path.join(self.dir, entry)) as f:
                    record = json.load(f)
                self.records[record["Id"]] = record
        alive = {c.id for c in running}
        for record in self.records.values():
            stale = [cid for cid in record["_endpoints"] if cid not in alive]
            for cid in stale:
                del record["_endpoints"][cid]
            if stale:
                self._save(record)
        names = {r["Name"] for r in self.records.values()}
        if "none" not in names:
            self._add("none", "null", {})
        if "host" not in names:
            self._add("host", "host", {})
        sys = Syscalls()
        if "bridge" not in names:
            subnet, gateway = self._default_subnet(sys)
            self._add("bridge", "bridge", {BRIDGE_NAME_OPTION: self.default_bridge,
                                           "com.docker.network.bridge.default_bridge": "true",
                                           "com.docker.network.bridge.enable_icc": "true",
                                           "com.docker.network.bridge.enable_ip_masquerade": "true",
                                           "com.docker.network.bridge.host_binding_ipv4": "0.0.0.0",
                                           "com.docker.network.driver.mtu": str(self.mtu or 1500)},
                      subnet=subnet, gateway=gateway)
        netlink.session(sys, lambda nl: [self._make_bridge(nl, r) for r in self._bridges()])
        for container in running:
            self.ports.hold_again(container)
        self.refresh(sys)
        from minicontainer.engine.dns import Resolver

        self.dns = Resolver(self)
        for record in self._bridges():
            self.dns.listen(record)

    def close(self) -> None:
        """The daemon stops (its containers have stopped): bridges, rules and listeners go."""
        sys = Syscalls()
        if self.dns is not None:
            self.dns.close()
        self.ports.close()
        firewall.remove(sys, self.table)

        def delete(nl: netlink.Netlink) -> None:
            for record in self._bridges():
                if nl.alias(self.bridge_of(record)) == self.owner:
                    nl.delete(self.bridge_of(record), "the daemon stops: its bridges go")
        netlink.session(sys, delete)

    def _default_subnet(self, sys: Syscalls) -> tuple[str, str]:
        if self.bip:  # "172.30.0.1/16": the bridge's own address, and so the subnet
            try:
                iface = ipaddress.ip_interface(self.bip)
            except ValueError:
                raise ValueError(f"daemon.json: bip: {self.bip!r} is not an address with a prefix length, "
                                 "e.g. 172.30.0.1/16") from None
            return str(iface.network), str(iface.ip)
        subnet = self._free_subnet(sys)
        return subnet, str(next(ipaddress.ip_network(subnet).hosts()))

    def _reserved_networks(self, sys: Syscalls) -> list[ipaddress.IPv4Network]:
        """What a new subnet must not overlap: the host's on-link networks, its nameservers, ours."""
        taken = [ipaddress.ip_network(n, strict=False) for n in netlink.session(sys, lambda nl: nl.onlink_networks())]
        for server in _host_nameservers():
            taken.append(ipaddress.ip_network(server))
        for r in self.records.values():
            for c in r["IPAM"]["Config"]:
                taken.append(ipaddress.ip_network(c["Subnet"]))
        return [n for n in taken if n.version == 4]

    def _free_subnet(self, sys: Syscalls) -> str:
        taken = self._reserved_networks(sys)
        for base, size in self.pools:
            for candidate in ipaddress.ip_network(base).subnets(new_prefix=size):
                if not any(candidate.overlaps(t) for t in taken):
                    return str(candidate)
        raise NetworkError("could not find an available, non-overlapping IPv4 address pool among the defaults "
                           "to assign to the network")

    def _add(self, name: str, driver: str, options: dict, *, subnet: str = "", gateway: str = "",
             internal: bool = False, labels: dict | None = None, attachable: bool = False) -> dict:
        nid = secrets.token_hex(32)
        record = {
            "Name": name, "Id": nid, "Created": now_rfc3339(), "Scope": "local", "Driver": driver,
            "EnableIPv4": True, "EnableIPv6": False,
            "IPAM": {"Driver": "default", "Options": None,
                     "Config": [{"Subnet": subnet, "Gateway": gateway}] if subnet else []},
            "Internal": internal, "Attachable": attachable, "Ingress": False, "ConfigFrom": {"Network": ""},
            "ConfigOnly": False, "Options": options, "Labels": labels or {},
            "_endpoints": {},  # container ID -> {IPv4Address, EndpointID, MacAddress, veth, ifname}
        }
        self.records[nid] = record
        self._save(record)
        return record

    # --- bridges and rules ------------------------------------------------------------------------------
    def _make_bridge(self, nl: netlink.Netlink, record: dict) -> None:
        name = self.bridge_of(record)
        alias = nl.alias(name)
        if alias is not None and alias != self.owner:
            raise NetworkError(f"bridge {name}: an interface of that name exists and this daemon did not make it "
                               f"(its alias is {alias!r}, ours say {self.owner!r}): give the network another "
                               "bridge name (\"bridge\" in daemon.json, or -o com.docker.network.bridge.name), or "
                               f"if it is an old leftover of ours, delete it (ip link delete {name})")
        if alias is None:
            mtu = record.get("_mtu") or self.mtu or self._uplink_mtu(nl)
            nl.add_bridge(name, mtu, self.owner)
            cfg = record["IPAM"]["Config"][0]
            nl.add_address(name, cfg["Gateway"], ipaddress.ip_network(cfg["Subnet"]).prefixlen,
                           "the bridge's own address: the containers' gateway")
            nl.up(name)
        # 127.0.0.1:PORT may be DNAT'ed out of this bridge (see kernel/firewall.py)
        nl.sys.write_file(f"/proc/sys/net/ipv4/conf/{name}/route_localnet", "1",
                          detail="let DNAT'ed connections from 127.0.0.1 leave by this bridge")

    def _uplink_mtu(self, nl: netlink.Netlink) -> int:
        """The host's uplink MTU, looked up once per daemon (a lookup dumps every route and link)."""
        if not self.uplink_mtu:
            self.uplink_mtu = nl.uplink_mtu()
        return self.uplink_mtu

    def refresh(self, sys: Syscalls, starting: Container | None = None) -> None:
        """Write the firewall table again from the records: the bridges, and the published ports of the
        running containers (and of the one ``starting``, not marked running yet)."""
        rules = firewall.Ruleset(self.table)
        for r in self._bridges():
            rules.bridges.append(firewall.Bridge(self.bridge_of(r), r["IPAM"]["Config"][0]["Subnet"], r["Internal"]))
        for c in self.engine.containers.values():
            if c.running or c is starting:
                rules.published.extend(publishing.rules(c))
        if rules.bridges and sys.read_file("/proc/sys/net/ipv4/ip_forward").strip() != "1":
            sys.write_file("/proc/sys/net/ipv4/ip_forward", "1",
                           detail="the host forwards packets between its interfaces (bridge <-> uplink)")
        firewall.apply(sys, rules)

    # --- networks: create, remove, look ---------------------------------------------------------------
    def create(self, body: dict) -> dict:
        unknown = set(body) - CREATE_FIELDS
        if unknown:
            raise InvalidParameter(f"network create: {', '.join(sorted(unknown))} is not supported")
        name = body.get("Name") or ""
        if not name:
            raise InvalidParameter("network name is required")
        driver = body.get("Driver") or "bridge"
        if driver != "bridge":
            raise InvalidParameter(f"network create: driver {driver!r} is not supported (only bridge)")
        if name in PREDEFINED or any(r["Name"] == name for r in self.records.values()):
            raise Conflict(f"network with name {name} already exists")
        if body.get("EnableIPv6"):
            raise InvalidParameter("network create: IPv6 is not supported")
        for flagged in ("Ingress", "ConfigOnly"):
            if body.get(flagged):
                raise InvalidParameter(f"network create: {flagged} is not supported")
        if (body.get("ConfigFrom") or {}).get("Network"):
            raise InvalidParameter("network create: ConfigFrom is not supported")
        if body.get("Scope") not in (None, "", "local"):
            raise InvalidParameter(f"network create: scope {body['Scope']!r} is not supported (only local)")
        options = dict(body.get("Options") or {})
        known_options = {BRIDGE_NAME_OPTION, "com.docker.network.driver.mtu"}
        if set(options) - known_options:
            raise InvalidParameter(f"network create: option {min(set(options) - known_options)} is not supported")
        ipam = body.get("IPAM") or {}
        if (ipam.get("Driver") or "default") != "default":
            raise InvalidParameter(f"network create: IPAM driver {ipam['Driver']!r} is not supported")
        if ipam.get("Options"):
            raise InvalidParameter("network create: IPAM options are not supported")
        configs = ipam.get("Config") or []
        if len(configs) > 1:
            raise InvalidParameter("network create: one IPv4 subnet per network is supported")
        sys = Syscalls()
        subnet, gateway = self._subnet_for(sys, configs[0] if configs else {})
        nid_bridge = options.get(BRIDGE_NAME_OPTION)
        record = self._add(name, "bridge", {}, subnet=subnet, gateway=gateway, internal=bool(body.get("Internal")),
                           labels=body.get("Labels") or {}, attachable=bool(body.get("Attachable")))
        for key in ("IPRange", "AuxiliaryAddresses"):  # the range addresses are given from; ones never given
            if configs and configs[0].get(key):
                record["IPAM"]["Config"][0][key] = configs[0][key]
        record["Options"] = {**options, BRIDGE_NAME_OPTION: nid_bridge or f"mcbr-{record['Id'][:10]}"}
        if "com.docker.network.driver.mtu" in options:
            record["_mtu"] = int(options["com.docker.network.driver.mtu"])
        self._save(record)
        try:
            netlink.session(sys, lambda nl: self._make_bridge(nl, record))
            self.refresh(sys)
            if self.dns is not None:
                self.dns.listen(record)
        except Exception:
            self._drop(sys, record)
            raise
        self._event("create", record)
        return {"Id": record["Id"], "Warning": ""}

    def _subnet_for(self, sys: Syscalls, cfg: dict) -> tuple[str, str]:
        unknown = set(cfg) - {"Subnet", "Gateway", "IPRange", "AuxiliaryAddresses"}
        if unknown:
            raise InvalidParameter(f"network create: IPAM config {', '.join(sorted(unknown))} is not supported")
        if not cfg.get("Subnet"):
            if cfg.get("Gateway") or cfg.get("IPRange") or cfg.get("AuxiliaryAddresses"):
                raise InvalidParameter("network create: a gateway, an IP range or auxiliary addresses need a "
                                       "subnet (--subnet)")
            subnet = self._free_subnet(sys)
            return subnet, str(next(ipaddress.ip_network(subnet).hosts()))
        try:
            net = ipaddress.ip_network(cfg["Subnet"], strict=False)
        except ValueError:
            raise InvalidParameter(f"invalid subnet {cfg['Subnet']}: it must be an IPv4 network like 172.30.0.0/16") from None
        if net.version != 4 or net.prefixlen > 30:
            raise InvalidParameter(f"invalid subnet {cfg['Subnet']}: an IPv4 network of /30 or larger is needed")
        if str(net) != cfg["Subnet"].strip():
            raise InvalidParameter(f"invalid subnet {cfg['Subnet']}: did you mean {net}?")
        for other in self._reserved_networks(sys):
            if net.overlaps(other):
                raise Conflict(f"invalid pool request: Pool overlaps with other one on this address space "
                               f"({cfg['Subnet']} overlaps {other})")
        gateway = cfg.get("Gateway") or str(next(net.hosts()))
        try:
            if ipaddress.ip_address(gateway) not in net:
                raise ValueError
        except ValueError:
            raise InvalidParameter(f"invalid gateway {gateway}: it must be an address in {net}") from None
        if cfg.get("IPRange"):
            try:
                if not ipaddress.ip_network(cfg["IPRange"]).subnet_of(net):
                    raise ValueError
            except (ValueError, TypeError):
                raise InvalidParameter(f"invalid ip range {cfg['IPRange']}: it must be a network inside {net}") from None
        for name, address in (cfg.get("AuxiliaryAddresses") or {}).items():
            try:
                if ipaddress.ip_address(address) not in net:
                    raise ValueError
            except ValueError:
                raise InvalidParameter(f"invalid auxiliary address {name}={address}: not in {net}") from None
        return str(net), gateway

    def remove(self, ref: str) -> None:
        record = self.get(ref)
        if record["Name"] in PREDEFINED:
            raise InvalidParameter(f"{record['Name']} is a pre-defined network and cannot be removed")
        users = [c for c in self.engine.containers.values() if c.running and record["Id"] in self._network_ids(c)]
        if users:
            raise Conflict(f"error while removing network: network {record['Name']} has active endpoints "
                           f"(name:{users[0].name!r} id:{users[0].id[:12]!r})")
        self._drop(Syscalls(), record)
        self._event("destroy", record)

    def _drop(self, sys: Syscalls, record: dict) -> None:
        if self.dns is not None:
            self.dns.stop(record)
        self.records.pop(record["Id"], None)
        try:
            os.unlink(os.path.join(self.dir, record["Id"] + ".json"))
        except FileNotFoundError:
            pass
        bridge = self.bridge_of(record)

        def delete(nl: netlink.Netlink) -> None:
            if nl.alias(bridge) == self.owner:
                nl.delete(bridge, "its network is removed")
        netlink.session(sys, delete)
        self.refresh(sys)

    def prune(self, filters: dict[str, list[str]]) -> dict:
        deleted = []
        for record in list(self.records.values()):
            if record["Name"] in PREDEFINED or not _labels_match(record["Labels"], filters.get("label", [])):
                continue
            if any(record["Id"] in self._network_ids(c) for c in self.engine.containers.values()):
                continue
            self._drop(Syscalls(), record)
            self._event("destroy", record)
            deleted.append(record["Name"])
        return {"NetworksDeleted": deleted or None}

    def inspect(self, ref: str) -> dict:
        record = self.get(ref)
        out = {k: v for k, v in record.items() if not k.startswith("_")}
        out["Containers"] = {}
        for cid, ep in record["_endpoints"].items():
            c = self.engine.containers.get(cid)
            if c is not None:
                out["Containers"][cid] = {"Name": c.name, "EndpointID": ep["EndpointID"], "MacAddress": ep["MacAddress"],
                                          "IPv4Address": f"{ep['IPv4Address']}/{_prefix(record)}", "IPv6Address": ""}
        return out

    def list(self, filters: dict[str, list[str]]) -> list[dict]:
        unknown = set(filters) - {"name", "id", "label", "driver", "type", "dangling", "scope"}
        if unknown:
            raise InvalidParameter(f"invalid filter '{min(unknown)}'")
        out = []
        for r in sorted(self.records.values(), key=lambda r: r["Created"]):
            if filters.get("name") and not any(n in r["Name"] for n in filters["name"]):
                continue
            if filters.get("id") and not any(r["Id"].startswith(i) for i in filters["id"]):
                continue
            if filters.get("driver") and r["Driver"] not in filters["driver"]:
                continue
            if not _labels_match(r["Labels"], filters.get("label", [])):
                continue
            kind = "builtin" if r["Name"] in PREDEFINED else "custom"
            if filters.get("type") and kind not in filters["type"]:
                continue
            if filters.get("scope") and "local" not in filters["scope"]:
                continue
            out.append(self.inspect(r["Id"]))
        return out

    # --- a container's networks -----------------------------------------------------------------------
    @staticmethod
    def _network_ids(container: Container) -> set[str]:
        return {n.get("NetworkID") for n in container.record["NetworkSettings"]["Networks"].values()}

    def on_create(self, body: dict, host: dict, record: dict, find_container: Callable[[str], Container]) -> list[str]:
        """``create``: check the network options and keep them in the record (HostConfig, Config,
        NetworkSettings).  Returns docker's warnings."""
        mode = host.get("NetworkMode") or "default"
        if mode == "default":
            mode = "none" if body.get("NetworkDisabled") else "bridge"
        hc, cfg = record["HostConfig"], record["Config"]
        warnings: list[str] = []
        endpoints = dict((body.get("NetworkingConfig") or {}).get("EndpointsConfig") or {})
        if mode.startswith("container:"):
            other = find_container(mode.split(":", 1)[1])
            mode = f"container:{other.id}"
            if host.get("PortBindings") or host.get("PublishAllPorts"):
                raise InvalidParameter("conflicting options: port publishing and the container type network mode")
            if body.get("Hostname"):
                raise InvalidParameter("conflicting options: hostname and the network mode")
            if host.get("Dns") or host.get("ExtraHosts"):
                raise InvalidParameter("conflicting options: dns and the network mode")
        elif mode not in ("none", "host"):
            net = self.get(mode)  # 404 "network X not found"
            if net["Driver"] != "bridge":
                raise InvalidParameter(f"network {mode}: driver {net['Driver']} cannot be joined this way")
            mode = net["Name"]
        elif mode == "host" and (host.get("PortBindings") or host.get("PublishAllPorts")):
            warnings.append("Published ports are discarded when using host network mode")
        joins = mode not in ("none", "host") and not mode.startswith("container:")
        target = self.get(mode) if joins else None
        chosen: dict = {}
        for name, ep in endpoints.items():
            name = "bridge" if name == "default" else name
            same = (target is not None and name not in ("none", "host") and self.get(name)["Id"] == target["Id"]) \
                or name == mode
            if not same:  # docker's CLI sends the mode's own network; a second one is `network connect`'s job
                raise InvalidParameter(f"NetworkingConfig: only the network of NetworkMode ({mode}) may be "
                                       f"configured at create, not {name!r}: use network connect")
            self._check_endpoint(ep or {}, target)
            chosen = ep or {}
        hc["NetworkMode"] = mode
        if mode == "host" and not body.get("Hostname"):
            cfg["Hostname"] = socket.gethostname()  # Docker's rule: on the host's network, the host's name
        ports, exposed = publishing.check_bindings(host.get("PortBindings") or {}), dict(body.get("ExposedPorts") or {})
        if mode in ("none", "host") or mode.startswith("container:"):
            ports = {}
        hc["PortBindings"] = ports or {}
        hc["PublishAllPorts"] = bool(host.get("PublishAllPorts"))
        for key in ports:
            exposed.setdefault(key, {})
        cfg["ExposedPorts"] = exposed or None
        hc["Dns"], hc["DnsOptions"], hc["DnsSearch"] = (list(host.get(k) or []) for k in ("Dns", "DnsOptions", "DnsSearch"))
        for server in hc["Dns"]:
            try:
                ipaddress.ip_address(server)
            except ValueError:
                raise InvalidParameter(f"{server} is not an ip address") from None
        hc["ExtraHosts"] = list(host.get("ExtraHosts") or [])
        for entry in hc["ExtraHosts"]:
            name, _, ip = entry.partition(":") if "=" not in entry else entry.partition("=")
            try:
                if ip != "host-gateway":
                    ipaddress.ip_address(ip)
            except ValueError:
                raise InvalidParameter(f"invalid IP address in add-host: {ip!r}") from None
        if target is not None:
            record["NetworkSettings"]["Networks"][target["Name"]] = self._endpoint_settings(target, chosen)
        elif mode in ("none", "host"):
            net = self.get(mode)
            record["NetworkSettings"]["Networks"][mode] = self._endpoint_settings(net, {})
        return warnings

    @staticmethod
    def _check_endpoint(ep: dict, net: dict | None) -> None:
        unknown = set(ep) - ENDPOINT_FIELDS
        if unknown:
            raise InvalidParameter(f"endpoint settings: {', '.join(sorted(unknown))} is not supported")
        for field in ("Links", "DriverOpts", "GlobalIPv6Address"):
            if ep.get(field):
                raise InvalidParameter(f"endpoint settings: {field} is not supported")
        mac = ep.get("MacAddress") or ""
        if mac and not re.fullmatch(r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}", mac):
            raise InvalidParameter(f"invalid MAC address {mac}")
        ipv4 = (ep.get("IPAMConfig") or {}).get("IPv4Address")
        if (ep.get("IPAMConfig") or {}).get("IPv6Address") or (ep.get("IPAMConfig") or {}).get("LinkLocalIPs"):
            raise InvalidParameter("endpoint settings: only an IPv4 address may be asked for")
        if ipv4:
            if net is None or net["Name"] == "bridge":
                raise InvalidParameter("user specified IP address is supported on user defined networks only")
            try:
                if ipaddress.ip_address(ipv4) not in ipaddress.ip_network(net["IPAM"]["Config"][0]["Subnet"]):
                    raise ValueError
            except ValueError:
                raise InvalidParameter(f"invalid IPv4 address {ipv4}: not in the network's subnet "
                                       f"{net['IPAM']['Config'][0]['Subnet']}") from None
        if ep.get("Aliases") and net is not None and net["Name"] == "bridge":
            raise InvalidParameter("network-scoped alias is supported only for containers in user defined networks")

    @staticmethod
    def _endpoint_settings(net: dict, ep: dict) -> dict:
        return {"IPAMConfig": ep.get("IPAMConfig") or None, "Links": None, "Aliases": ep.get("Aliases") or None,
                "MacAddress": ep.get("MacAddress") or "", "DriverOpts": None, "GwPriority": 0, "NetworkID": net["Id"], "EndpointID": "",
                "Gateway": "", "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "", "GlobalIPv6Address": "",
                "GlobalIPv6PrefixLen": 0, "DNSNames": None}

    # --- start: addresses, files, ports; then the namespace --------------------------------------------
    def prepare(self, container: Container) -> Callable[[dict], None]:
        """Before the runtime creates the container: take its addresses and host ports (a port already
        taken fails here, before anything starts), write its /etc/hosts, resolv.conf and hostname.
        Returns what to change in its config.json (namespace, bind mounts)."""
        mode = container.record["HostConfig"]["NetworkMode"]
        try:
            if mode.startswith("container:"):
                other = self.engine.get(mode.split(":", 1)[1])
                if not other.running:
                    raise Conflict(f"cannot join network namespace of a non running container: container "
                                   f"{other.id} is not running")
                ns_path, files = f"/proc/{other.state['Pid']}/ns/net", other
                self._copy_settings(container, other)
            else:
                ns_path, files = None, container
                if mode not in ("none", "host"):
                    for name in list(container.record["NetworkSettings"]["Networks"]):
                        self._allocate(container, name)
                    self.ports.assign(container)
                self._write_files(container)
        except BaseException:
            self.release(container)
            raise

        def adjust(config: dict) -> None:
            namespaces = config["linux"]["namespaces"]
            if mode == "host":
                namespaces[:] = [n for n in namespaces if n["type"] != "network"]
            elif ns_path:
                for n in namespaces:
                    if n["type"] == "network":
                        n["path"] = ns_path
            for name in ("hosts", "resolv.conf", "hostname"):
                config["mounts"].append({"destination": f"/etc/{name}", "type": "bind",
                                         "source": files.path(name), "options": ["rbind", "rprivate"]})
        return adjust

    def _allocate(self, container: Container, name: str) -> None:
        net = self.get(name)
        settings_ = container.record["NetworkSettings"]["Networks"][name]
        endpoints = net["_endpoints"]
        ipam = net["IPAM"]["Config"][0]
        subnet, gateway = ipaddress.ip_network(ipam["Subnet"]), ipam["Gateway"]
        taken = {ep["IPv4Address"] for cid, ep in endpoints.items() if cid != container.id} | {gateway} | \
            set((ipam.get("AuxiliaryAddresses") or {}).values())
        wanted = (settings_.get("IPAMConfig") or {}).get("IPv4Address")
        if wanted:
            if wanted in taken:
                raise NetworkError(f"Address already in use: {wanted} is taken on network {name}")
            ip = wanted
        else:
            pool = ipaddress.ip_network(ipam["IPRange"]) if ipam.get("IPRange") else subnet
            ip = next((str(a) for a in pool if a in subnet and a not in (subnet.network_address,
                                                                          subnet.broadcast_address)
                       and str(a) not in taken), None)
            if ip is None:
                raise NetworkError(f"no available IPv4 addresses on this network's address pools: {name} ({subnet})")
        eid = secrets.token_hex(32)
        # eth0 for the first network, then the lowest number free (a disconnect frees one)
        used = {r["_endpoints"][container.id]["ifname"] for r in self.records.values() if container.id in r["_endpoints"]}
        index = next(n for n in range(len(used) + 1) if f"eth{n}" not in used)
        mac = settings_.get("MacAddress") or _mac(ip)  # asked for (network connect --mac-address), or derived
        endpoints[container.id] = {"IPv4Address": ip, "EndpointID": eid, "MacAddress": mac,
                                   "veth": "veth" + eid[:7], "ifname": f"eth{index}"}
        self._save(net)
        self._event("connect", net, container.id)
        settings_.update({"NetworkID": net["Id"], "EndpointID": eid, "Gateway": "" if net["Internal"] else gateway,
                          "IPAddress": ip, "IPPrefixLen": subnet.prefixlen, "MacAddress": mac,
                          "DNSNames": self._dns_names(container, net, settings_) or None})
        if name == "bridge":  # the old top-level fields describe the default bridge only
            container.record["NetworkSettings"].update({
                "IPAddress": ip, "IPPrefixLen": subnet.prefixlen, "Gateway": gateway, "MacAddress": mac,
                "EndpointID": eid, "Bridge": ""})

    @staticmethod
    def _dns_names(container: Container, net: dict, settings_: dict) -> list[str]:
        if net["Name"] == "bridge":
            return []
        names = [container.name, *(settings_.get("Aliases") or []), container.id[:12]]
        hostname = container.record["Config"].get("Hostname")
        if hostname and hostname not in names:
            names.append(hostname)
        return names

    def _copy_settings(self, container: Container, other: Container) -> None:
        for key in ("ResolvConfPath", "HostnamePath", "HostsPath"):
            container.record[key] = other.record[key]

    def _write_files(self, container: Container) -> None:
        """Its /etc/hosts, resolv.conf and hostname (:mod:`minicontainer.engine.etcfiles`)."""
        user_net = next((self.records[ep["NetworkID"]] for ep in container.record["NetworkSettings"]["Networks"].values()
                         if ep.get("NetworkID") in self.records and self.records[ep["NetworkID"]]["Name"]
                         not in PREDEFINED), None)
        etcfiles.write(container, dns_server=user_net["IPAM"]["Config"][0]["Gateway"] if user_net else None,
                       host_gateway=self.get("bridge")["IPAM"]["Config"][0]["Gateway"])

    def plug(self, sys: Syscalls, container: Container, pid: int) -> None:
        """After the runtime's create, before start: wire the container's namespace."""
        mode = container.record["HostConfig"]["NetworkMode"]
        if mode == "host" or mode.startswith("container:"):
            return
        netns = f"/proc/{pid}/ns/net"
        wiring = []
        for name in container.record["NetworkSettings"]["Networks"]:
            net = self.records.get(container.record["NetworkSettings"]["Networks"][name]["NetworkID"])
            if net is not None and container.id in net["_endpoints"]:
                wiring.append((net, net["_endpoints"][container.id]))
        for net, ep in wiring:
            self._plug_host_side(sys, net, ep, netns)

        def inside(nl: netlink.Netlink) -> None:
            nl.up("lo", "bring lo up: 127.0.0.1 answers inside the container")
            for net, ep in wiring:
                self._plug_container_side(nl, net, ep)
        netlink.session(sys, inside, netns)
        if publishing.rules(container):  # the other rules are the networks', written when they were made
            self.refresh(sys, starting=container)

    def _plug_host_side(self, sys: Syscalls, net: dict, ep: dict, netns: str) -> None:
        def host(nl: netlink.Netlink) -> None:
            mtu = net.get("_mtu") or self.mtu or self._uplink_mtu(nl)
            temporary = "mc" + ep["EndpointID"][:9]
            nl.add_veth(ep["veth"], temporary, mtu, ep["MacAddress"], netns)
            try:
                nl.set_master(ep["veth"], self.bridge_of(net))
                nl.up(ep["veth"], "the host's end up")
            except BaseException:
                if nl.index(ep["veth"]) is not None:
                    nl.delete(ep["veth"], "undo: the veth pair goes")
                raise
        netlink.session(sys, host)

    @staticmethod
    def _plug_container_side(nl: netlink.Netlink, net: dict, ep: dict) -> None:
        temporary = "mc" + ep["EndpointID"][:9]
        nl.rename(temporary, ep["ifname"])
        prefix = _prefix(net)
        nl.add_address(ep["ifname"], ep["IPv4Address"], prefix, f"add address: {net['Name']}'s IPAM chose it")
        nl.up(ep["ifname"])
        if not net["Internal"] and ep["ifname"] == "eth0":
            nl.add_default_route(net["IPAM"]["Config"][0]["Gateway"])

    def release(self, container: Container, sys: Syscalls | None = None) -> None:
        """The container stopped (or its start failed): addresses, ports, veths and rules go."""
        sys = sys or Syscalls()
        had_ports = bool(publishing.rules(container))
        self.ports.release(container.id)
        veths = []
        for net in self.records.values():
            ep = net["_endpoints"].pop(container.id, None)
            if ep is not None:
                veths.append(ep["veth"])
                self._save(net)
                self._event("disconnect", net, container.id)
        for ep in container.record["NetworkSettings"]["Networks"].values():
            if ep.get("IPAddress") and ep.get("MacAddress") == _mac(ep["IPAddress"]):
                ep["MacAddress"] = ""  # derived from the address: goes with it (one asked for stays)
            ep.update({"EndpointID": "", "Gateway": "", "IPAddress": "", "IPPrefixLen": 0, "DNSNames": None})
        for key in ("IPAddress", "Gateway", "MacAddress", "EndpointID"):
            if key in container.record["NetworkSettings"]:
                container.record["NetworkSettings"][key] = ""
        if container.record["NetworkSettings"].get("Ports"):
            container.record["NetworkSettings"]["Ports"] = {}
        if veths:
            # The container's namespace is dying, and the kernel deletes the pair with it; whatever
            # is left is deleted in the background: a deletion waits ~15 ms for an RCU grace period,
            # which a `run --rm` need not wait for.
            def delete(nl: netlink.Netlink) -> None:
                for veth in veths:
                    if nl.index(veth) is not None:
                        nl.delete(veth, "delete the veth pair (both ends go together)")

            def in_background() -> None:
                try:
                    netlink.session(sys, delete)
                except KernelError as e:
                    if e.errno != errno.ENODEV:  # ENODEV: the kernel got there first
                        log.warning("container %s: %s", container.id[:12], e)
            threading.Thread(target=in_background, name="veth-cleanup", daemon=True).start()
        if had_ports:
            self.refresh(sys)

    # --- connect and disconnect ------------------------------------------------------------------------
    def _endpoint_request(self, verb: str, ref: str, body: dict, fields: set[str]) -> tuple[dict, Container]:
        """The network and the container that a connect or disconnect names."""
        unknown = set(body) - fields
        if unknown:
            raise InvalidParameter(f"network {verb}: {', '.join(sorted(unknown))} is not supported")
        return self.get(ref), self.engine.get(body.get("Container") or "")

    def connect(self, ref: str, body: dict) -> None:
        net, container = self._endpoint_request("connect", ref, body, {"Container", "EndpointConfig"})
        mode = container.record["HostConfig"]["NetworkMode"]
        if net["Driver"] != "bridge" or mode in ("none", "host") or mode.startswith("container:"):
            raise InvalidParameter("container cannot be disconnected from host network or connected to host "
                                   "network" if "host" in (mode, net["Name"]) else
                                   f"container sharing network namespace with another container or a network "
                                   f"of type {net['Name']} cannot be connected to another network")
        nets = container.record["NetworkSettings"]["Networks"]
        if net["Name"] in nets:
            raise Conflict(f"endpoint with name {container.name} already exists in network {net['Name']}")
        ep = body.get("EndpointConfig") or {}
        self._check_endpoint(ep, net)
        nets[net["Name"]] = self._endpoint_settings(net, ep)
        if container.running:
            sys = Syscalls()
            try:
                self._allocate(container, net["Name"])
                endpoint = net["_endpoints"][container.id]
                netns = f"/proc/{container.state['Pid']}/ns/net"
                self._plug_host_side(sys, net, endpoint, netns)
                netlink.session(sys, lambda nl: self._plug_container_side(nl, net, endpoint), netns)
                self._write_files(container)
            except BaseException:
                net["_endpoints"].pop(container.id, None)
                self._save(net)
                del nets[net["Name"]]
                raise
        container.save()

    def disconnect(self, ref: str, body: dict) -> None:
        net, container = self._endpoint_request("disconnect", ref, body, {"Container", "Force"})
        nets = container.record["NetworkSettings"]["Networks"]
        if net["Name"] not in nets:
            raise NotFound(f"container {container.id} is not connected to network {net['Name']}")
        if net["Name"] in ("host", "none"):
            raise InvalidParameter("container cannot be disconnected from host network or connected to host network")
        ep = net["_endpoints"].pop(container.id, None)
        del nets[net["Name"]]
        if ep is not None:
            self._save(net)
            self._event("disconnect", net, container.id)
            sys = Syscalls()

            def delete(nl: netlink.Netlink) -> None:
                if nl.index(ep["veth"]) is not None:
                    nl.delete(ep["veth"], "disconnect: the veth pair goes")
            netlink.session(sys, delete)
            self.refresh(sys)
        container.save()

    summary_ports = staticmethod(publishing.summary)  # `ps`'s Ports

    # --- names, for the DNS server -----------------------------------------------------------------------
    def lookup(self, net: dict, name: str) -> list[str]:
        """The addresses ``name`` has on network ``net``: container names, aliases, short IDs."""
        name = name.rstrip(".").lower()
        found = []
        for cid, ep in net["_endpoints"].items():
            c = self.engine.containers.get(cid)
            if c is None:
                continue
            settings_ = c.record["NetworkSettings"]["Networks"].get(net["Name"]) or {}
            if name in {n.lower() for n in settings_.get("DNSNames") or []}:
                found.append(ep["IPv4Address"])
        return found

    def upstream(self, net: dict, client_ip: str) -> list[str]:
        """Where names that are not containers' go: the asking container's --dns, else the host's."""
        for cid, ep in net["_endpoints"].items():
            if ep["IPv4Address"] == client_ip and cid in self.engine.containers:
                dns = self.engine.containers[cid].record["HostConfig"].get("Dns")
                if dns:
                    return dns
        return etcfiles.host_resolv()[0]


def _prefix(net: dict) -> int:
    return ipaddress.ip_network(net["IPAM"]["Config"][0]["Subnet"]).prefixlen


def _labels_match(labels: dict, wanted: list[str]) -> bool:
    for w in wanted:
        key, eq, value = w.partition("=")
        if key not in labels or (eq and labels[key] != value):
            return False
    return True


def _host_nameservers() -> list[str]:
    return [s for s in etcfiles.host_resolv()[0] if ":" not in s]
