"""The parts of networking that need no kernel: the firewall table's text, -p's forms, the port
bindings' checks, and the narration of netlink requests (recorded by the fake kernel)."""

from __future__ import annotations

import pytest

from minicontainer.cli.network import parse_publish, ports_text
from minicontainer.engine.errors import InvalidParameter
from minicontainer.engine.networks import _mac
from minicontainer.engine.ports import check_bindings
from minicontainer.kernel import firewall
from minicontainer.kernel.fake import FakeSyscalls


def test_the_table_masquerades_publishes_and_isolates():
    rules = firewall.Ruleset("minicontainer_t", [firewall.Bridge("mc0", "172.17.0.0/16"),
                                                 firewall.Bridge("mcbr-1", "172.18.0.0/16", internal=True)],
                             [firewall.Published("tcp", "", 8080, "172.17.0.2", 80),
                              firewall.Published("udp", "127.0.0.1", 5353, "172.17.0.2", 53)])
    text = rules.render()
    # replaced whole, in one transaction: create (so that delete cannot fail), delete, write
    assert text.startswith("table ip minicontainer_t\ndelete table ip minicontainer_t\ntable ip minicontainer_t {")
    assert 'ip saddr 172.17.0.0/16 oifname != "mc0" masquerade' in text
    assert 'ip saddr 172.18.0.0/16 oifname != "mcbr-1"' not in text  # internal: no way out, no NAT out
    assert "\n    tcp dport 8080 dnat to 172.17.0.2:80" in text  # any of the host's addresses
    assert text.count("jump published") == 2  # from outside or a container (prerouting), from the host (output)
    assert 'ip saddr 172.17.0.0/16 oifname "mc0" ct status dnat masquerade' in text  # back into its own bridge
    assert "ip daddr 127.0.0.1 udp dport 5353 dnat to 172.17.0.2:53" in text
    assert 'iifname "mcbr-1" oifname != "mcbr-1" drop' in text and 'oifname "mcbr-1" iifname != "mcbr-1" drop' in text
    assert 'iifname "mc0" oifname != "mc0" oifname { "mc0", "mcbr-1" } drop' in text  # no way between networks


def test_no_bridge_left_means_no_table():
    sys = FakeSyscalls()
    firewall.apply(sys, firewall.Ruleset("minicontainer_t"))
    assert sys.calls == [("nft", ("table ip minicontainer_t\ndelete table ip minicontainer_t\n",))]
    assert "remove table ip minicontainer_t" in sys.trace.events[0].detail


@pytest.mark.parametrize(("spec", "key", "binding"), [
    ("80", "80/tcp", {"HostIp": "", "HostPort": ""}),
    ("8080:80", "80/tcp", {"HostIp": "", "HostPort": "8080"}),
    ("127.0.0.1:8080:80/udp", "80/udp", {"HostIp": "127.0.0.1", "HostPort": "8080"}),
    ("127.0.0.1::80", "80/tcp", {"HostIp": "127.0.0.1", "HostPort": ""}),
])
def test_publish_forms(spec, key, binding):
    assert parse_publish(spec) == (key, binding)


def test_publish_refuses_ranges():
    with pytest.raises(ValueError, match="ranges are not supported"):
        parse_publish("8000-8010:80")


@pytest.mark.parametrize(("bindings", "message"), [
    ({"80/sctp": [{}]}, "invalid proto: sctp"),
    ({"99999/tcp": [{}]}, "invalid containerPort"),
    ({"80/tcp": [{"HostIp": "::1", "HostPort": "80"}]}, "an IPv4 address is needed"),
    ({"80/tcp": [{"HostIp": "", "HostPort": "70000"}]}, "invalid hostPort"),
])
def test_port_bindings_are_checked(bindings, message):
    with pytest.raises(InvalidParameter, match=message):
        check_bindings(bindings)


def test_ports_column_and_mac():
    summary = {"Ports": [{"IP": "0.0.0.0", "PrivatePort": 6379, "PublicPort": 6379, "Type": "tcp"},
                         {"PrivatePort": 80, "Type": "tcp"}]}
    assert ports_text(summary) == "0.0.0.0:6379->6379/tcp, 80/tcp"
    assert _mac("172.17.0.2") == "02:42:ac:11:00:02"


def test_a_netlink_request_is_an_event_and_a_refusal_a_kernel_error():
    from pyroute2.netlink.exceptions import NetlinkError

    from minicontainer.kernel.syscalls import KernelError, Syscalls

    sys = Syscalls()
    sys.netlink("RTM_NEWLINK", "host: br0 up", lambda: None, path="br0", detail="bring br0 up")
    assert (sys.trace.events[0].op, sys.trace.events[0].result) == ("RTM_NEWLINK", "ok")

    def refused():
        raise NetlinkError(17, "File exists")
    with pytest.raises(KernelError) as e:
        sys.netlink("RTM_NEWLINK", "host: br0 type bridge", refused, path="br0")
    assert str(e.value).startswith("RTM_NEWLINK 'br0': File exists") and sys.trace.events[1].result == "EEXIST"


def test_a_default_bridge_name_per_data_root(tmp_path):
    from minicontainer.engine.networks import default_bridge_name

    assert default_bridge_name("/var/lib/minicontainer") == "mc0" == default_bridge_name("/var/lib/minicontainer/")
    other = default_bridge_name(str(tmp_path / "root"))
    assert other == default_bridge_name(str(tmp_path / "root")) != default_bridge_name(str(tmp_path / "other"))
    assert len(other) <= 15 and other.startswith("mc")  # IFNAMSIZ
