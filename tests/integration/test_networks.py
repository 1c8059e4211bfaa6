"""Networks for real: bridges, veths, NAT, published ports, DNS, isolation, recovery.

Each test's daemon has a bridge and a pool of subnets of its own (daemon_support); traffic goes only
to 127.0.0.1, to the test daemons' own bridges and containers, and to an "outside" host that a test
makes in a network namespace of its own.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time

import dns.message
import dns.query
import dns.rrset
import pytest
import test_engine
from daemon_support import daemon_bridge_name

pytestmark = pytest.mark.root
engine = test_engine.engine  # the fixture: a daemon of the test's own, with the starter busybox


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _links() -> set[str]:
    return set(os.listdir("/sys/class/net"))


def _veths_on(bridge: str) -> list[str]:
    path = f"/sys/class/net/{bridge}/brif"
    return os.listdir(path) if os.path.isdir(path) else []


def _read_from(host: str, port: int | str) -> str:
    """What a TCP server on the host's side says first (retried while the container starts)."""
    got = ""
    for _ in range(30):
        got = subprocess.run(["busybox", "nc", "-w", "1", host, str(port)], capture_output=True, text=True,
                             stdin=subprocess.DEVNULL, check=False).stdout.strip()
        if got:
            break
        time.sleep(0.1)
    return got


def _ok(r: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert r.returncode == 0, (r.stdout, r.stderr)
    return r


def test_lo_is_up_and_none_has_only_lo(engine):
    r = _ok(engine.mc("run", "--rm", "--network", "none", "busybox", "sh", "-c",
                      "ls /sys/class/net; ping -c1 -W1 127.0.0.1 >/dev/null && echo lo-answers"))
    assert r.stdout.split() == ["lo", "lo-answers"]
    r = _ok(engine.mc("run", "--rm", "busybox", "sh", "-c", "ls /sys/class/net; ping -c1 -W1 127.0.0.1 >/dev/null "
                                                           "&& echo lo-answers"))
    assert r.stdout.split() == ["eth0", "lo", "lo-answers"]


def test_default_bridge_address_route_files_and_cleanup(engine):
    bridge = daemon_bridge_name(engine.root / "run")
    gateway = json.loads(_ok(engine.mc("network", "inspect", "bridge")).stdout)[0]["IPAM"]["Config"][0]["Gateway"]
    r = _ok(engine.mc("run", "--rm", "--hostname", "box", "--add-host", "db.example:10.9.9.9", "--dns", "10.1.1.1",
                      "busybox", "sh", "-c", "ip -o -4 addr show eth0; ip route; cat /etc/hosts /etc/resolv.conf "
                      "/etc/hostname; ping -c1 -W1 " + gateway + " >/dev/null && echo gateway-answers"))
    assert f"default via {gateway} dev eth0" in r.stdout
    assert "10.9.9.9\tdb.example" in r.stdout and "\tbox\n" in r.stdout and "nameserver 10.1.1.1" in r.stdout
    assert r.stdout.rstrip().endswith("box\ngateway-answers")
    for _ in range(40):  # --rm: its veth goes with its namespace (the kernel frees it a moment later)
        if not _veths_on(bridge):
            break
        time.sleep(0.05)
    assert _veths_on(bridge) == []


def test_containers_reach_each_other_by_name_on_a_user_network(engine):
    """The course's redis example: a server in one container, reached by name from another."""
    _ok(engine.mc("starter", "redis"))
    _ok(engine.mc("network", "create", "app"))
    _ok(engine.mc("run", "-d", "--network", "app", "--name", "cache", "--network-alias", "kv", "redis"))
    for name in ("cache", "kv"):  # redis speaks inline commands too: what redis-cli ping sends, by hand
        r = _ok(engine.mc("run", "--rm", "--network", "app", "busybox", "sh", "-c",
                          f"for i in $(seq 50); do printf 'PING\\r\\nQUIT\\r\\n' | nc {name} 6379 && break; "
                          "sleep 0.1; done"))
        assert r.stdout.split() == ["+PONG", "+OK"]
    unknown = engine.mc("run", "--rm", "--network", "app", "busybox", "nslookup", "nosuchcontainer")
    assert unknown.returncode != 0
    app = json.loads(engine.mc("network", "inspect", "app").stdout)[0]
    gateway = app["IPAM"]["Config"][0]["Gateway"]
    over_tcp = dns.query.tcp(dns.message.make_query("kv", "A"), gateway, timeout=5)  # the daemon's server, by TCP
    address = [c["IPv4Address"].split("/")[0] for c in app["Containers"].values()]
    assert [r.address for r in over_tcp.answer[0]] == address
    inspected = json.loads(_ok(engine.mc("network", "inspect", "app")).stdout)[0]
    assert [c["Name"] for c in inspected["Containers"].values()] == ["cache"]
    conflict = engine.mc("network", "rm", "app")
    assert conflict.returncode == 1 and "has active endpoints" in conflict.stderr
    _ok(engine.mc("rm", "-f", "cache"))
    _ok(engine.mc("network", "rm", "app"))
    assert "app" not in engine.mc("network", "ls").stdout


def test_published_port_from_the_host_and_conflicts(engine):
    _ok(engine.mc("starter", "redis"))
    port = _free_port()
    _ok(engine.mc("run", "-d", "--name", "red", "-p", f"{port}:6379", "redis"))
    assert _ok(engine.mc("port", "red")).stdout.strip() == f"6379/tcp -> 0.0.0.0:{port}"
    gateway = json.loads(engine.mc("network", "inspect", "bridge").stdout)[0]["IPAM"]["Config"][0]["Gateway"]
    for address in ("127.0.0.1", gateway):  # loopback (route_localnet) and another of the host's addresses
        pong = ""
        for _ in range(50):  # redis-server needs a moment before it listens
            pong = subprocess.run(["redis-cli", "-h", address, "-p", str(port), "ping"], capture_output=True,
                                  text=True, check=False).stdout.strip()
            if pong == "PONG":
                break
            time.sleep(0.1)
        assert pong == "PONG", address
    assert f"0.0.0.0:{port}->6379/tcp" in engine.mc("ps").stdout
    # from another container, through the host's address (the gateway): DNAT'ed back into the bridge
    r = _ok(engine.mc("run", "--rm", "busybox", "sh", "-c", f"printf 'PING\\r\\nQUIT\\r\\n' | nc {gateway} {port}"))
    assert r.stdout.split() == ["+PONG", "+OK"]
    before = _links()
    taken = engine.mc("run", "-d", "--name", "second", "-p", f"{port}:6379", "redis")
    assert taken.returncode == 125 and "port is already allocated" in taken.stderr
    assert _links() == before  # nothing half made
    assert json.loads(engine.mc("inspect", "second").stdout)[0]["State"]["Running"] is False
    # -p CONTAINER: a free port of the host's choosing
    _ok(engine.mc("run", "-d", "--name", "any", "-p", "6379", "redis"))
    chosen = _ok(engine.mc("port", "any", "6379")).stdout.strip()
    assert chosen.startswith("0.0.0.0:") and int(chosen.split(":")[1]) > 0


def test_networks_are_isolated_and_internal_has_no_way_out(engine):
    _ok(engine.mc("network", "create", "one"))
    _ok(engine.mc("network", "create", "two"))
    _ok(engine.mc("network", "create", "--internal", "closed"))
    _ok(engine.mc("run", "-d", "--network", "one", "--name", "server", "busybox", "sh", "-c",
                  "while true; do echo hello | nc -l -p 7000; done"))
    ip = json.loads(engine.mc("inspect", "server").stdout)[0]["NetworkSettings"]["Networks"]["one"]["IPAddress"]
    same = engine.mc("run", "--rm", "--network", "one", "busybox", "sh", "-c", f"nc -w 2 {ip} 7000 </dev/null")
    assert same.stdout.strip() == "hello"
    other = engine.mc("run", "--rm", "--network", "two", "busybox", "sh", "-c", f"nc -w 2 {ip} 7000 </dev/null")
    assert other.stdout.strip() == ""
    closed = engine.mc("run", "--rm", "--network", "closed", "busybox", "sh", "-c", "ip route; ping -c1 -W1 " + ip)
    assert "default" not in closed.stdout and closed.returncode != 0


@pytest.fixture
def outside(tmp_path):
    """An "outside" host: a network namespace of the test's own, reached from the host by a veth pair
    (198.18.0.0/30: the benchmarking range, never routed on the internet), running a TCP server
    that writes down the source address of every connection."""
    tag = secrets.token_hex(3)
    ns, host_end = f"mcout{tag}", f"mcoh{tag}"
    seen = tmp_path / "seen"
    server = None
    try:
        subprocess.run(["ip", "netns", "add", ns], check=True)
        subprocess.run(["ip", "link", "add", host_end, "type", "veth", "peer", "name", "eth0", "netns", ns], check=True)
        subprocess.run(["ip", "addr", "add", "198.18.0.1/30", "dev", host_end], check=True)
        subprocess.run(["ip", "link", "set", host_end, "up"], check=True)
        for cmd in (["ip", "addr", "add", "198.18.0.2/30", "dev", "eth0"], ["ip", "link", "set", "eth0", "up"],
                    ["ip", "link", "set", "lo", "up"]):
            subprocess.run(["ip", "netns", "exec", ns, *cmd], check=True)
        code = ("import socket,sys\ns=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
                "s.bind(('198.18.0.2',8000));s.listen()\nprint('ready',flush=True)\n"
                "while True:\n c,a=s.accept();open(sys.argv[1],'a').write(a[0]+'\\n');c.sendall(b'outside\\n');c.close()\n")
        server = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", code, str(seen)],
                                  stdout=subprocess.PIPE, text=True)
        assert server.stdout.readline().strip() == "ready"
        yield seen
    finally:
        if server is not None:
            server.kill()
            server.wait()
        subprocess.run(["ip", "link", "del", host_end], check=False, capture_output=True)
        subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)


def test_outbound_nat_shows_the_hosts_address(engine, outside):
    r = _ok(engine.mc("run", "--rm", "busybox", "sh", "-c", "ip -o -4 addr show eth0; nc -w 3 198.18.0.2 8000"))
    container_ip = r.stdout.split()[3].split("/")[0]
    assert r.stdout.strip().endswith("outside")
    assert outside.read_text().split() == ["198.18.0.1"]  # the host's uplink to it, not the container's
    assert container_ip != "198.18.0.1"
    _ok(engine.mc("network", "create", "--internal", "closed"))
    closed = engine.mc("run", "--rm", "--network", "closed", "busybox", "nc", "-w", "2", "198.18.0.2", "8000")
    assert closed.returncode != 0 and outside.read_text().split() == ["198.18.0.1"]


def test_clear_errors_and_nothing_half_made(engine):
    before = _links()
    r = engine.mc("run", "--rm", "--network", "nope", "busybox", "true")
    assert r.returncode == 125 and "network nope not found" in r.stderr
    _ok(engine.mc("network", "create", "--subnet", "10.250.7.0/24", "first"))
    r = engine.mc("network", "create", "--subnet", "10.250.7.128/25", "second")
    assert r.returncode == 1 and "overlaps" in r.stderr
    r = engine.mc("network", "create", "first")
    assert r.returncode == 1 and "already exists" in r.stderr
    r = engine.mc("network", "create", "--subnet", "10.250.8.0/24", "--gateway", "10.250.9.1", "third")
    assert r.returncode == 1 and "invalid gateway" in r.stderr
    assert engine.mc("network", "ls", "--format", "{{.Name}}").stdout.split() == ["none", "host", "bridge", "first"]
    assert len(_links() - before) == 1  # first's bridge, and nothing else
    r = engine.mc("run", "--rm", "-p", "80-90:80", "busybox", "true")
    assert r.returncode == 125
    _ok(engine.mc("network", "rm", "first"))
    assert _links() == before


def test_connect_disconnect_and_docker_cli(engine):
    d = engine.docker
    _ok(d("network", "create", "--subnet", "10.250.20.0/24", "--label", "course=net", "front"))
    assert "front" in _ok(d("network", "ls")).stdout
    _ok(d("run", "-d", "--name", "web", "busybox", "sleep", "60"))
    _ok(d("network", "connect", "--alias", "www", "front", "web"))
    r = _ok(engine.mc("run", "--rm", "--network", "front", "busybox", "sh", "-c", "ping -c1 -W1 www >/dev/null && echo ok"))
    assert r.stdout.strip() == "ok"
    nets = json.loads(_ok(d("inspect", "web")).stdout)[0]["NetworkSettings"]["Networks"]
    assert set(nets) == {"bridge", "front"} and nets["front"]["IPAddress"].startswith("10.250.20.")
    _ok(d("network", "disconnect", "front", "web"))
    _ok(d("network", "create", "back"))  # eth1 is free again: the next network takes it
    _ok(d("network", "connect", "back", "web"))
    links = _ok(engine.mc("run", "--rm", "--network", "container:web", "busybox", "ls", "/sys/class/net")).stdout
    assert links.split() == ["eth0", "eth1", "lo"]
    _ok(d("network", "disconnect", "back", "web"))
    _ok(d("network", "rm", "back"))
    r = engine.mc("run", "--rm", "--network", "front", "busybox", "ping", "-c1", "-W1", "www")
    assert r.returncode != 0
    pruned = _ok(d("network", "prune", "-f", "--filter", "label=course=net"))
    assert "front" in pruned.stdout
    _ok(d("rm", "-f", "web"))
    _ok(d("run", "-d", "--name", "pub", "-p", "127.0.0.1::7000", "busybox", "sh", "-c",
          "while true; do echo published | nc -l -p 7000; done"))
    where = _ok(d("port", "pub", "7000")).stdout.strip()
    assert where.startswith("127.0.0.1:")
    assert _read_from(*where.split(":")) == "published"
    _ok(d("rm", "-f", "pub"))


def test_daemon_killed_then_restarted_rebuilds_and_cleans(engine):
    bridge = daemon_bridge_name(engine.root / "run")
    _ok(engine.mc("network", "create", "app"))
    app_bridge = json.loads(engine.mc("network", "inspect", "app").stdout)[0]["Options"]["com.docker.network.bridge.name"]
    port = _free_port()
    _ok(engine.mc("run", "-d", "--network", "app", "--name", "srv", "-p", f"127.0.0.1:{port}:7000", "busybox", "sh",
                  "-c", "while true; do echo hi | nc -l -p 7000; done"))
    engine.crash()  # kill -9: bridges, rules and the container stay; the DNS listener dies
    engine.restart()
    assert _read_from("127.0.0.1", port) == "hi"
    r = _ok(engine.mc("run", "--rm", "--network", "app", "busybox", "sh", "-c", "echo | nc -w 2 srv 7000"))
    assert r.stdout.strip() == "hi"
    _ok(engine.mc("rm", "-f", "srv"))
    engine.restart()  # a clean stop: bridges and rules go
    engine.daemon.terminate()
    engine.daemon.wait()
    assert not {app_bridge, bridge} & _links()
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, check=False).stdout
    assert f"minicontainer_{bridge}" not in tables
    engine.restart()


def test_host_and_container_network_modes(engine):
    _ok(engine.mc("run", "-d", "--name", "base", "busybox", "sh", "-c", "while true; do echo hi | nc -l -p 7000; done"))
    shared = _ok(engine.mc("run", "--rm", "--network", "container:base", "busybox", "sh", "-c",
                           "echo | nc -w 2 127.0.0.1 7000"))  # base's own loopback: one namespace for both
    assert shared.stdout.strip() == "hi"
    r = engine.mc("run", "--rm", "--network", "container:base", "-p", "80:80", "busybox", "true")
    assert r.returncode == 125 and "conflicting options" in r.stderr
    host = _ok(engine.mc("run", "--rm", "--network", "host", "busybox", "sh", "-c", "ls /sys/class/net; hostname"))
    names = host.stdout.split()
    assert daemon_bridge_name(engine.root / "run") in names and names[-1] == socket.gethostname()


@pytest.fixture
def upstream_dns():
    """A nameserver on the host's loopback (127.77.0.1:53, a loopback address nothing else uses), that
    answers every A question with 10.9.8.7: the "host's resolver" that other names are forwarded to."""
    import threading

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.77.0.1", 53))
    sock.settimeout(0.2)
    asked: list[str] = []
    done = threading.Event()

    def serve() -> None:
        while not done.is_set():
            try:
                data, addr = sock.recvfrom(4096)
            except TimeoutError:
                continue
            query = dns.message.from_wire(data)
            asked.append(query.question[0].name.to_text())
            reply = dns.message.make_response(query)
            if query.question[0].rdtype == 1:
                reply.answer.append(dns.rrset.from_text_list(query.question[0].name, 60, "IN", "A", ["10.9.8.7"]))
            sock.sendto(reply.to_wire(), addr)

    thread = threading.Thread(target=serve)
    thread.start()
    yield asked
    done.set()
    thread.join()
    sock.close()


def test_other_names_are_forwarded_to_the_upstream_resolver(engine, upstream_dns):
    _ok(engine.mc("network", "create", "app"))
    r = _ok(engine.mc("run", "--rm", "--network", "app", "--dns", "127.77.0.1", "busybox", "sh", "-c",
                      "cat /etc/resolv.conf; nslookup -type=a outside.example"))
    assert "nameserver 127.77.0.1" not in r.stdout  # the container asks the daemon's server, which forwards
    assert "10.9.8.7" in r.stdout and "outside.example." in upstream_dns


def test_daemons_of_other_data_roots_have_bridges_and_tables_of_their_own(tmp_path):
    """Two daemons whose settings name no bridge: each data root gets its own (mc + 8 hex digits, the
    same after a restart) and its own nftables table, so stopping one leaves the other's whole; and
    an interface the project did not make is never used nor deleted."""
    from daemon_support import TEST_POOLS, start_daemon, stop_daemon

    from minicontainer.engine.networks import default_bridge_name

    def nft_tables() -> str:
        return subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, check=True).stdout

    daemons, envs, foreign = {}, {}, f"mcx{secrets.token_hex(3)}"
    try:
        for name in ("a", "b"):
            settings = tmp_path / f"{name}.json"
            settings.write_text(json.dumps({"default-address-pools": TEST_POOLS}))  # no "bridge"
            envs[name] = dict(os.environ, MINICONTAINER_ROOT=str(tmp_path / name / "data"),
                              MINICONTAINER_RUN=str(tmp_path / name / "run"), MINICONTAINER_DAEMON_CONFIG=str(settings),
                              DOCKER_HOST=f"unix://{tmp_path / name / 'run'}/minicontainer.sock")
            daemons[name] = start_daemon(envs[name], tmp_path / name / "run")
        bridges = {name: default_bridge_name(str(tmp_path / name / "data")) for name in daemons}
        assert bridges["a"] != bridges["b"] and all(len(b) == 10 and b.startswith("mc") for b in bridges.values())
        for name, bridge in bridges.items():
            shown = _ok(subprocess.run(["ip", "-d", "link", "show", bridge], capture_output=True, text=True, check=False))
            assert f"alias minicontainer {tmp_path / name / 'data'}" in shown.stdout
            assert f"table ip minicontainer_{bridge}\n" in nft_tables()
        stop_daemon(daemons.pop("a"))  # a's clean-up: b's bridge and table stay
        assert bridges["a"] not in _links() and bridges["b"] in _links()
        assert f"minicontainer_{bridges['a']}\n" not in nft_tables() and f"minicontainer_{bridges['b']}\n" in nft_tables()
        daemons["a"] = start_daemon(envs["a"], tmp_path / "a" / "run")  # the same name again
        assert bridges["a"] in _links()
        # An interface of the project's prefix that it did not make: refused, and left alone.
        _ok(subprocess.run(["ip", "link", "add", foreign, "type", "bridge"], capture_output=True, text=True, check=False))
        mc, env_b = [sys.executable, "-m", "minicontainer.cli.main"], dict(envs["b"], MINICONTAINER_HOST=envs["b"]["DOCKER_HOST"])
        r = subprocess.run([*mc, "network", "create", "-o", f"com.docker.network.bridge.name={foreign}", "mine"],
                           env=env_b, capture_output=True, text=True, check=False)
        assert r.returncode == 1 and "this daemon did not make it" in r.stderr, r.stderr
        assert foreign in _links() and "mine" not in subprocess.run(
            [*mc, "network", "ls"], env=env_b, capture_output=True, text=True, check=False).stdout
    finally:
        subprocess.run(["ip", "link", "delete", foreign], capture_output=True, check=False)
        for proc in daemons.values():
            stop_daemon(proc)
