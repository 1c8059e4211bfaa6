"""``network create|ls|inspect|rm|prune|connect|disconnect``, ``port``, and ``run``'s network flags
(``--network``, ``-p``, ``-P``, ``--network-alias``, ``--ip``, ``--add-host``, ``--dns``...).

Like every other command, these are requests to the daemon (the ``/networks`` routes of the Engine
API); the flags become the fields docker's CLI sends in ``POST /containers/create``.
"""

from __future__ import annotations

import argparse
import sys

from minicontainer.cli.format import table


def daemon_client():
    from minicontainer.cli.containers import client

    return client()


# --- run's flags -------------------------------------------------------------------------------------


def add_run_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--network", "--net", default="", help="bridge (default), none, host, container:NAME or a network")
    p.add_argument("--network-alias", "--net-alias", action="append", default=[], dest="network_alias",
                   help="another name other containers on the network resolve to this one")
    p.add_argument("--ip", default="", help="this IPv4 address on a user-defined network")
    p.add_argument("-p", "--publish", action="append", default=[],
                   help="[IP:][HOST_PORT:]CONTAINER_PORT[/tcp|udp]: publish a port on the host")
    p.add_argument("-P", "--publish-all", action="store_true", help="publish every port the image EXPOSEs")
    p.add_argument("--expose", action="append", default=[], help="expose a port (for -P) without publishing it")
    p.add_argument("--add-host", action="append", default=[], help="HOST:IP, added to /etc/hosts")
    p.add_argument("--dns", action="append", default=[], help="a nameserver for the container")
    p.add_argument("--dns-option", action="append", default=[])
    p.add_argument("--dns-search", action="append", default=[])
    p.add_argument("--domainname", default="")


def parse_publish(spec: str) -> tuple[str, dict]:
    """``127.0.0.1:8080:80/tcp`` -> ("80/tcp", {"HostIp": "127.0.0.1", "HostPort": "8080"}), docker's
    forms: ``CONTAINER``, ``HOST:CONTAINER``, ``IP:HOST:CONTAINER``, ``IP::CONTAINER``."""
    rest, _, proto = spec.partition("/")
    parts = rest.rsplit(":", 2)
    container_port = parts[-1]
    host_port = parts[-2] if len(parts) > 1 else ""
    host_ip = parts[-3] if len(parts) > 2 else ""
    if not container_port.isdigit() or (host_port and not host_port.isdigit()):
        raise ValueError(f"invalid publish spec {spec!r}: ports are numbers (ranges are not supported)")
    return f"{container_port}/{proto or 'tcp'}", {"HostIp": host_ip, "HostPort": host_port}


def network_body(args: argparse.Namespace, body: dict) -> None:
    """Put ``run``'s network flags into a ContainerCreate body, as docker's CLI does."""
    host = body["HostConfig"]
    bindings: dict[str, list[dict]] = {}
    for spec in args.publish:
        try:
            key, binding = parse_publish(spec)
        except ValueError as e:
            raise SystemExit(_usage(str(e))) from None
        bindings.setdefault(key, []).append(binding)
    exposed = {(p if "/" in p else p + "/tcp"): {} for p in args.expose}
    exposed.update({k: {} for k in bindings})
    if exposed:
        body["ExposedPorts"] = exposed
    host.update({"NetworkMode": args.network or "default", "PortBindings": bindings,
                 "PublishAllPorts": args.publish_all, "ExtraHosts": args.add_host or None, "Dns": args.dns,
                 "DnsOptions": args.dns_option, "DnsSearch": args.dns_search})
    if args.domainname:
        body["Domainname"] = args.domainname
    if args.network_alias or args.ip:
        endpoint: dict = {"Aliases": args.network_alias or None}
        if args.ip:
            endpoint["IPAMConfig"] = {"IPv4Address": args.ip}
        body["NetworkingConfig"] = {"EndpointsConfig": {args.network or "bridge": endpoint}}


def _usage(message: str) -> int:
    print(f"{message}\nSee 'minicontainer run --help'.", file=sys.stderr)
    return 125


def ports_text(summary: dict) -> str:
    """``ps``'s PORTS column: ``0.0.0.0:6379->6379/tcp, 80/tcp``, as docker writes it."""
    parts = []
    for p in summary.get("Ports") or []:
        if p.get("PublicPort"):
            parts.append(f"{p.get('IP') or '0.0.0.0'}:{p['PublicPort']}->{p['PrivatePort']}/{p['Type']}")
        else:
            parts.append(f"{p['PrivatePort']}/{p['Type']}")
    return ", ".join(parts)


# --- network ... -------------------------------------------------------------------------------------


def cmd_create(args: argparse.Namespace) -> int:
    ipam: dict = {"Driver": "default", "Config": []}
    if args.subnet or args.gateway:
        ipam["Config"].append({k: v for k, v in (("Subnet", args.subnet), ("Gateway", args.gateway)) if v})
    options = dict(o.split("=", 1) if "=" in o else (o, "") for o in args.opt)
    labels = dict(lab.split("=", 1) if "=" in lab else (lab, "") for lab in args.label)
    body = {"Name": args.name, "Driver": args.driver, "Internal": args.internal, "Attachable": args.attachable,
            "IPAM": ipam, "Options": options, "Labels": labels}
    print(daemon_client().json("POST", "/networks/create", None, body)["Id"])
    return 0


def cmd_ls(args: argparse.Namespace) -> int:
    from minicontainer.client.api import filters_json

    nets = daemon_client().json("GET", "/networks", {"filters": filters_json(args.filter)})
    if args.quiet:
        for n in nets:
            print(n["Id"] if args.no_trunc else n["Id"][:12])
        return 0
    rows = [[n["Id"] if args.no_trunc else n["Id"][:12], n["Name"], n["Driver"], n["Scope"]] for n in nets]
    if args.format:
        from minicontainer.cli.format import formatted

        data = [{"ID": r[0], "Name": r[1], "Driver": r[2], "Scope": r[3]} for r in rows]
        sys.stdout.write(formatted(args.format, data, {"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER",
                                                       "Scope": "SCOPE"}))
        return 0
    sys.stdout.write(table(["NETWORK ID", "NAME", "DRIVER", "SCOPE"], rows))
    return 0


def per_object(names: list[str], action) -> tuple[list, int]:
    """``action(api, name)`` for each object named (networks, volumes); a failure is reported in
    docker's words and the others go on; the exit code is 1 if any failed."""
    from minicontainer.client.api import APIError

    api, done, code = daemon_client(), [], 0
    for name in names:
        try:
            done.append(action(api, name))
        except APIError as e:
            print(f"Error response from daemon: {e.message}", file=sys.stderr)
            code = 1
    return done, code


def cmd_inspect(args: argparse.Namespace) -> int:
    from minicontainer.cli.images import print_inspected

    found, code = per_object(args.networks, lambda api, name: api.json("GET", f"/networks/{name}"))
    print_inspected(found, args.format)
    return code


def cmd_rm(args: argparse.Namespace) -> int:
    def remove(api, name: str) -> None:
        api.request("DELETE", f"/networks/{name}").read()
        print(name)
    return per_object(args.networks, remove)[1]


def cmd_prune(args: argparse.Namespace) -> int:
    from minicontainer.client.api import filters_json

    if not args.force:
        sys.stdout.write("WARNING! This will remove all custom networks not used by at least one container.\n"
                         "Are you sure you want to continue? [y/N] ")
        sys.stdout.flush()
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            return 0
    result = daemon_client().json("POST", "/networks/prune", {"filters": filters_json(args.filter)})
    if result.get("NetworksDeleted"):
        print("Deleted Networks:")
        for name in result["NetworksDeleted"]:
            print(name)
    return 0


def cmd_connect(args: argparse.Namespace) -> int:
    endpoint: dict = {}
    if args.alias:
        endpoint["Aliases"] = args.alias
    if args.ip:
        endpoint["IPAMConfig"] = {"IPv4Address": args.ip}
    daemon_client().request("POST", f"/networks/{args.network}/connect", None,
                            {"Container": args.container, "EndpointConfig": endpoint or None}).read()
    return 0


def cmd_disconnect(args: argparse.Namespace) -> int:
    daemon_client().request("POST", f"/networks/{args.network}/disconnect", None,
                            {"Container": args.container, "Force": args.force}).read()
    return 0


def cmd_port(args: argparse.Namespace) -> int:
    """``port CONTAINER [PORT[/PROTO]]``: where its published ports are on the host (from inspect)."""
    record = daemon_client().json("GET", f"/containers/{args.container}/json")
    ports = record["NetworkSettings"].get("Ports") or {}
    if args.port:
        key = args.port if "/" in args.port else args.port + "/tcp"
        bindings = ports.get(key)
        if not bindings:
            print(f"Error: No public port '{key}' published for {args.container}", file=sys.stderr)
            return 1
        for b in bindings:
            print(f"{b['HostIp']}:{b['HostPort']}")
        return 0
    for key, bindings in sorted(ports.items(), key=lambda kv: int(kv[0].split("/")[0])):
        for b in bindings or []:
            print(f"{key} -> {b['HostIp']}:{b['HostPort']}")
    return 0


def add_commands(commands: argparse._SubParsersAction) -> None:
    network = commands.add_parser("network", help="manage networks (create, ls, inspect, rm, prune, connect, "
                                                  "disconnect)")
    sub = network.add_subparsers(dest="network_command", metavar="COMMAND", required=True)
    p = sub.add_parser("create", help="create a bridge network")
    p.add_argument("name")
    p.add_argument("-d", "--driver", default="bridge")
    p.add_argument("--subnet", default="")
    p.add_argument("--gateway", default="")
    p.add_argument("--internal", action="store_true", help="no way out: no NAT, no forwarding")
    p.add_argument("--attachable", action="store_true")
    p.add_argument("--label", action="append", default=[])
    p.add_argument("-o", "--opt", action="append", default=[])
    p.set_defaults(handler=cmd_create)
    for name in ("ls", "list"):
        p = sub.add_parser(name, help="list networks")
        p.add_argument("-q", "--quiet", action="store_true")
        p.add_argument("--no-trunc", action="store_true")
        p.add_argument("-f", "--filter", action="append", default=[], help="name=, id=, label=, driver=, type=")
        p.add_argument("--format")
        p.set_defaults(handler=cmd_ls)
    p = sub.add_parser("inspect")
    p.add_argument("networks", nargs="+")
    p.add_argument("-f", "--format")
    p.set_defaults(handler=cmd_inspect)
    for name in ("rm", "remove"):
        p = sub.add_parser(name, help="remove networks")
        p.add_argument("networks", nargs="+")
        p.set_defaults(handler=cmd_rm)
    p = sub.add_parser("prune", help="remove the networks no container uses")
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("--filter", action="append", default=[], help="label=KEY[=VALUE]")
    p.set_defaults(handler=cmd_prune)
    p = sub.add_parser("connect", help="connect a container to a network")
    p.add_argument("--alias", action="append", default=[])
    p.add_argument("--ip", default="")
    p.add_argument("network")
    p.add_argument("container")
    p.set_defaults(handler=cmd_connect)
    p = sub.add_parser("disconnect", help="disconnect a container from a network")
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("network")
    p.add_argument("container")
    p.set_defaults(handler=cmd_disconnect)

    p = commands.add_parser("port", help="list a container's published ports")
    p.add_argument("container")
    p.add_argument("port", nargs="?")
    p.set_defaults(handler=cmd_port)
