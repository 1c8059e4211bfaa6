"""The daemon's DNS server: containers on a user-defined network find each other by name.

``redis-cli -h cache`` in one container must reach the container named ``cache``.  Docker answers
such names with an "embedded DNS server" at 127.0.0.11 inside every container (a listener of the
daemon's, reached through NAT rules in each container's namespace).  We take podman's simpler road
(aardvark-dns): one listener per user-defined network, on the network's gateway address (the
bridge's own address, port 53, in the host's namespace), which the containers' ``resolv.conf``
names as their nameserver.  Nothing is needed inside the containers, and one socket serves all of a
network's containers.

A question about a name on the network (a container's name, its ``--network-alias`` es, its short
ID, its hostname) is answered from the engine's records; any other name is forwarded to the host's
own resolvers (or the container's ``--dns``), from the host's namespace, so a host resolver on
127.0.0.53 works too.  On an ``--internal`` network nothing is forwarded: no way out, not even by DNS.
The default ``bridge`` network has no such server (as Docker's): its containers use the host's
resolvers directly.  UDP only (what resolvers use for questions this short).

Messages are parsed and built with dnspython: the wire format is not the lesson here.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset

if TYPE_CHECKING:
    from minicontainer.engine.networks import Networks

log = logging.getLogger(__name__)
TTL = 600  # Docker's embedded server answers with 600 seconds too
FORWARD_TIMEOUT = 3.0


class _Listener(asyncio.DatagramProtocol):
    def __init__(self, resolver: Resolver, network_id: str) -> None:
        self.resolver = resolver
        self.network_id = network_id
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport) -> None:  # type: ignore[override]
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:  # type: ignore[override]
        asyncio.ensure_future(self.resolver.answer(self, data, addr))


class _Once(asyncio.DatagramProtocol):
    """The upstream server's one answer to a forwarded question."""

    def __init__(self, answered: asyncio.Future) -> None:
        self.answered = answered

    def datagram_received(self, data: bytes, addr) -> None:  # type: ignore[override]
        if not self.answered.done():
            self.answered.set_result(data)


class Resolver:
    """One UDP listener per user-defined network, on its gateway's port 53."""

    def __init__(self, networks: Networks) -> None:
        self.networks = networks
        self.listeners: dict[str, _Listener] = {}

    def listen(self, record: dict) -> None:
        if record["Name"] == "bridge" or record["Driver"] != "bridge" or record["Id"] in self.listeners:
            return
        loop = asyncio.get_running_loop()
        listener = _Listener(self, record["Id"])
        gateway = record["IPAM"]["Config"][0]["Gateway"]
        # create_datagram_endpoint is a coroutine, but binding a UDP socket does not block: done now.
        import socket

        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.bind((gateway, 53))
        except OSError as e:
            sock.close()
            log.warning("network %s: no DNS server on %s:53 (%s): its containers cannot resolve each "
                        "other's names", record["Name"], gateway, e)
            return
        sock.setblocking(False)
        self.listeners[record["Id"]] = listener
        loop.create_task(loop.create_datagram_endpoint(lambda: listener, sock=sock))

    def stop(self, record: dict) -> None:
        listener = self.listeners.pop(record["Id"], None)
        if listener is not None and listener.transport is not None:
            listener.transport.close()

    def close(self) -> None:
        for listener in self.listeners.values():
            if listener.transport is not None:
                listener.transport.close()
        self.listeners.clear()

    async def answer(self, listener: _Listener, data: bytes, addr: tuple[str, int]) -> None:
        try:
            query = dns.message.from_wire(data)
        except Exception:  # noqa: BLE001 - not DNS: nothing to answer
            return
        net = self.networks.records.get(listener.network_id)
        if net is None or not query.question or listener.transport is None:
            return
        question = query.question[0]
        name = question.name.to_text()
        addresses = self.networks.lookup(net, name)
        reply = dns.message.make_response(query)
        reply.flags |= dns.flags.RA
        if addresses:
            if question.rdtype == dns.rdatatype.A:
                reply.answer.append(dns.rrset.from_text_list(question.name, TTL, "IN", "A", addresses))
            listener.transport.sendto(reply.to_wire(), addr)
            return
        if net["Internal"]:
            reply.set_rcode(dns.rcode.NXDOMAIN)
            listener.transport.sendto(reply.to_wire(), addr)
            return
        forwarded = await self._forward(data, self.networks.upstream(net, addr[0]))
        if forwarded is None:
            reply.set_rcode(dns.rcode.SERVFAIL)
            forwarded = reply.to_wire()
        listener.transport.sendto(forwarded, addr)

    @staticmethod
    async def _forward(data: bytes, servers: list[str]) -> bytes | None:
        loop = asyncio.get_running_loop()
        for server in servers:
            answered: asyncio.Future = loop.create_future()

            try:
                transport, _ = await loop.create_datagram_endpoint(lambda future=answered: _Once(future),
                                                                   remote_addr=(server, 53))
            except OSError:
                continue
            try:
                transport.sendto(data)
                return await asyncio.wait_for(answered, FORWARD_TIMEOUT)
            except (TimeoutError, OSError):
                continue
            finally:
                transport.close()
        return None
