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
resolvers directly.  UDP, and TCP for the answers too long for a datagram (a resolver that gets a
truncated answer asks again by TCP; so do we, upstream).

Messages are parsed and built with dnspython: the wire format is not the lesson here.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import TYPE_CHECKING

import dns.asyncquery
import dns.exception
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
    """A network's UDP socket (and its TCP server, for answers too long for a datagram)."""

    def __init__(self, resolver: Resolver, network_id: str) -> None:
        self.resolver = resolver
        self.network_id = network_id
        self.transport: asyncio.DatagramTransport | None = None
        self.tcp: asyncio.Server | None = None

    def connection_made(self, transport) -> None:  # type: ignore[override]
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:  # type: ignore[override]
        asyncio.ensure_future(self._answer(data, addr))

    async def _answer(self, data: bytes, addr: tuple[str, int]) -> None:
        reply = await self.resolver.reply(self.network_id, data, addr[0], tcp=False)
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply, addr)

    async def serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """DNS over TCP: each message preceded by its length in two bytes (RFC 1035, 4.2.2)."""
        client = writer.get_extra_info("peername")[0]
        try:
            while True:
                size = int.from_bytes(await reader.readexactly(2), "big")
                reply = await self.resolver.reply(self.network_id, await reader.readexactly(size), client, tcp=True)
                if reply is None:
                    break
                writer.write(len(reply).to_bytes(2, "big") + reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
        if self.tcp is not None:
            self.tcp.close()


class Resolver:
    """One listener per user-defined network, on its gateway's port 53 (UDP and TCP)."""

    def __init__(self, networks: Networks) -> None:
        self.networks = networks
        self.listeners: dict[str, _Listener] = {}

    def listen(self, record: dict) -> None:
        if record["Name"] == "bridge" or record["Driver"] != "bridge" or record["Id"] in self.listeners:
            return
        loop = asyncio.get_running_loop()
        listener = _Listener(self, record["Id"])
        gateway = record["IPAM"]["Config"][0]["Gateway"]
        # Bound here and now (binding does not block), so that a port taken is known at once.
        udp, tcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM), socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            udp.bind((gateway, 53))
            tcp.bind((gateway, 53))
            tcp.listen(64)
        except OSError as e:
            udp.close()
            tcp.close()
            log.warning("network %s: no DNS server on %s:53 (%s): its containers cannot resolve each "
                        "other's names", record["Name"], gateway, e)
            return
        udp.setblocking(False)
        tcp.setblocking(False)
        self.listeners[record["Id"]] = listener
        loop.create_task(loop.create_datagram_endpoint(lambda: listener, sock=udp))

        async def serve() -> None:
            listener.tcp = await asyncio.start_server(listener.serve_tcp, sock=tcp)
        loop.create_task(serve())

    def stop(self, record: dict) -> None:
        listener = self.listeners.pop(record["Id"], None)
        if listener is not None:
            listener.close()

    def close(self) -> None:
        for listener in self.listeners.values():
            listener.close()
        self.listeners.clear()

    async def reply(self, network_id: str, data: bytes, client_ip: str, *, tcp: bool) -> bytes | None:
        """The answer to one question from a container on the network; None: not DNS, no answer."""
        try:
            query = dns.message.from_wire(data)
        except Exception:  # noqa: BLE001 - not DNS: nothing to answer
            return None
        net = self.networks.records.get(network_id)
        if net is None or not query.question:
            return None
        question = query.question[0]
        addresses = self.networks.lookup(net, question.name.to_text())
        reply = dns.message.make_response(query)
        reply.flags |= dns.flags.RA
        if addresses:  # a container of this network: its address (an AAAA question: no address, no error)
            if question.rdtype == dns.rdatatype.A:
                reply.answer.append(dns.rrset.from_text_list(question.name, TTL, "IN", "A", addresses))
            return reply.to_wire()
        if net["Internal"]:
            reply.set_rcode(dns.rcode.NXDOMAIN)
            return reply.to_wire()
        for server in self.networks.upstream(net, client_ip):
            try:  # the same way the container asked: a truncated UDP answer makes it ask again by TCP
                ask = dns.asyncquery.tcp if tcp else dns.asyncquery.udp
                return (await ask(query, server, timeout=FORWARD_TIMEOUT)).to_wire()
            except (dns.exception.DNSException, OSError):
                continue
        reply.set_rcode(dns.rcode.SERVFAIL)
        return reply.to_wire()
