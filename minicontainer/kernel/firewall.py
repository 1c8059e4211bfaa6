"""The packet filter rules that bridge networking needs, in an nftables table of our own.

Three jobs, all done by netfilter in the kernel (no packet goes through Python):

* **Outbound NAT** (``masquerade``): a container's packets leave the host with the host's address
  as their source, so the answers come back to the host, which un-NATs them to the container.
* **Published ports** (``dnat``): a connection to one of the host's addresses on a published port
  is rewritten, before routing, to the container's address and port.  For ``127.0.0.1`` the kernel
  normally refuses to route a loopback source out of another interface; ``route_localnet=1`` on
  the bridge (set by :mod:`minicontainer.engine.networks`) allows it, and the answer comes back
  because such connections are masqueraded to the bridge's address (Docker's ``userland-proxy:
  false`` mode: no proxy process in the data path at all).
* **Isolation**: forwarding between two of our bridges is dropped (containers on different
  networks cannot reach each other), and an ``--internal`` network's bridge forwards nowhere.

**Why nftables, through Debian's ``nft`` command.**  Docker writes iptables rules into the shared
``filter`` and ``nat`` tables; nftables lets each program own a *table* of its own, hooked into the
same points of the packet's path.  So the whole of our state is ``table ip minicontainer``:
``nft list table ip minicontainer`` shows it, and deleting the table removes every rule we ever
made, without touching anyone else's (a learner's Docker or firewall).  The table is always
written whole, from the engine's records, in one ``nft -f`` transaction (``table; delete table;
table { ... }``): no rule is ever left half-updated, and after a crash the next start simply
writes it again.  pyroute2's nftables module would avoid the subprocess, but it is low level and
undocumented (expressions built by hand); nft's own language is what a learner will meet again.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from minicontainer.kernel.syscalls import KernelError, Syscalls


@dataclass
class Bridge:
    """One network's bridge, as the rules see it."""

    name: str
    subnet: str
    internal: bool = False


@dataclass
class Published:
    """``-p [host_ip:]host_port:container_port/proto``, once the container has an address."""

    proto: str  # tcp or udp
    host_ip: str  # "" for every address of the host
    host_port: int
    container_ip: str
    container_port: int


@dataclass
class Ruleset:
    table: str
    bridges: list[Bridge] = field(default_factory=list)
    published: list[Published] = field(default_factory=list)

    def render(self) -> str:
        """The table, in nft's language: what ``nft list table ip NAME`` will show."""
        t = self.table
        ours = ", ".join(f'"{b.name}"' for b in self.bridges)
        dnat = []
        for p in self.published:
            match = (f"ip daddr {p.host_ip} " if p.host_ip and p.host_ip != "0.0.0.0" else "")
            dnat.append(f"{match}{p.proto} dport {p.host_port} dnat to {p.container_ip}:{p.container_port}")
        post, forward = [], ["ct state established,related accept"]
        for b in self.bridges:
            if b.internal:
                forward += [f'iifname "{b.name}" oifname != "{b.name}" drop',
                            f'oifname "{b.name}" iifname != "{b.name}" drop']
            else:
                post.append(f'ip saddr {b.subnet} oifname != "{b.name}" masquerade')
            # 127.0.0.1:PORT DNAT'ed to a container: give it the bridge's address as source, or the
            # container's answer (to 127.0.0.1) would never leave it.
            post.append(f'ip saddr 127.0.0.0/8 oifname "{b.name}" masquerade')
            # A container that reaches a published port through one of the host's addresses, and is
            # sent back into its own bridge: without this, the server would answer it directly, from
            # an address the client never spoke to.
            post.append(f'ip saddr {b.subnet} oifname "{b.name}" ct status dnat masquerade')
            if len(self.bridges) > 1:
                forward.append(f'iifname "{b.name}" oifname != "{b.name}" oifname {{ {ours} }} drop')
        lines = [
            f"table ip {t}",  # exists now (so that the delete below cannot fail)...
            f"delete table ip {t}",  # ...and is replaced whole, in the same transaction
            f"table ip {t} {{",
            "  chain prerouting {",  # packets arriving: from outside, or from a container
            "    type nat hook prerouting priority dstnat; policy accept;",
            "    fib daddr type local jump published",
            "  }",
            "  chain output {",  # packets the host itself sends: to 127.0.0.1 or its own addresses
            "    type nat hook output priority -100; policy accept;",
            "    fib daddr type local jump published",
            "  }",
            "  chain published {", *(f"    {r}" for r in dnat), "  }",
            "  chain postrouting {",
            "    type nat hook postrouting priority srcnat; policy accept;", *(f"    {r}" for r in post),
            "  }",
            "  chain forward {",
            "    type filter hook forward priority filter; policy accept;", *(f"    {r}" for r in forward),
            "  }",
            "}",
        ]
        return "\n".join(lines) + "\n"


def apply(sys: Syscalls, rules: Ruleset) -> None:
    """Make the kernel's table exactly ``rules`` (or remove it when there is no bridge left)."""
    if not rules.bridges:
        remove(sys, rules.table)
        return
    sys.nft(rules.render(), detail=f"add NAT rules: masquerade {len(rules.bridges)} bridge(s), "
                                   f"{len(rules.published)} published port(s), in table ip {rules.table}")


def remove(sys: Syscalls, table: str) -> None:
    """Delete our table, and with it every rule we made; nothing if there is none."""
    try:
        sys.nft(f"table ip {table}\ndelete table ip {table}\n",
                detail=f"remove table ip {table}: the last network is gone")
    except KernelError as e:
        if e.errno != 2:  # nft missing: then there is no table of ours either
            raise
