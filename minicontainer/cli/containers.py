"""The container commands, through ``minicontainerd``: ``run``, ``create``, ``start``, ``ps``, ``logs``,
``stop``, ``kill``, ``restart``, ``wait``, ``rm``, ``container prune``, ``inspect``, ``top``, ``diff``,
``version``, ``info``.

Each one is the same sequence of Engine API requests the docker CLI sends (see
``shared/docs/engine-api-facts.md``), so a learner can watch them in the daemon's log and compare.
"""

from __future__ import annotations

import argparse
import sys
import threading

from minicontainer.cli import mounts, network, security
from minicontainer.cli.format import ago, local_error, table
from minicontainer.cli.session import Terminal, copy_output, pump_stdin, terminal_size
from minicontainer.units import human_size


def explain(api, cid: str, since_ns: int, title: str) -> None:
    """--explain: narrate the kernel steps the daemon recorded for this container since ``since_ns``."""
    from minicontainer.client.api import APIClient
    from minicontainer.observe.events import Event
    from minicontainer.observe.explain import narrate

    noted, APIClient.record = APIClient.record, None  # the narration's own request is not the command's
    try:
        events = [Event.from_dict(e) for e in api.json("GET", f"/containers/{cid}/events", {"since_ns": since_ns})]
    finally:
        APIClient.record = noted
    narrate(events, sys.stderr, title=title)


def client():
    from minicontainer.client.api import APIClient

    return APIClient()


def _exit_code_of_start_error(message: str) -> int:
    """docker's rule: a program that cannot be found is 127, one that cannot be run 126, else 125."""
    if "not found" in message or "no such file" in message.lower():
        return 127
    if "permission denied" in message.lower():
        return 126
    return 125


def resolve_env(items: list[str], environ: dict[str, str] | None = None) -> list[str]:
    """``-e KEY`` -> ``KEY=<its value in this shell>`` (left out if unset), as the docker CLI does
    before it sends the request: the daemon must never fill it in from its own environment."""
    import os

    environ = os.environ if environ is None else environ
    return [item if "=" in item else f"{item}={environ[item]}" for item in items if "=" in item or item in environ]


def read_env_file(path: str) -> list[str]:
    """``--env-file``, read as docker reads it: leading blanks ignored, ``#`` lines skipped, the rest
    of a line kept as it is (quotes and trailing spaces included); a name with blanks is an error."""
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n").lstrip()
            if not line or line.startswith("#"):
                continue
            name = line.split("=", 1)[0]
            if any(ch.isspace() for ch in name):
                raise ValueError(f"invalid env file ({path}): variable '{name}' contains whitespaces")
            out.append(line)
    return out


def create_body(args: argparse.Namespace) -> dict:
    """docker's flags -> the Engine API's ContainerCreate body (Config fields and a HostConfig)."""
    env = []
    for path in args.env_file:
        env += read_env_file(path)
    env = resolve_env(env + list(args.env))  # `-e KEY`: this shell's value, filled in here
    labels = dict(label.split("=", 1) if "=" in label else (label, "") for label in args.label)
    if args.rm and args.restart and args.restart["Name"] != "no":
        raise ValueError("conflicting options: cannot specify both --restart and --rm")  # docker 28's words
    log_options = dict(o.split("=", 1) if "=" in o else (o, "") for o in args.log_opt)
    host = {"AutoRemove": args.rm, "Init": args.init, "RestartPolicy": args.restart or {"Name": "no"},
            "LogConfig": {"Type": args.log_driver or "", "Config": log_options}, "ConsoleSize": terminal_size() if args.tty else [0, 0],
            **resource_fields(args), "PidMode": args.pid or "", "UTSMode": args.uts or "", "IpcMode": args.ipc or "",
            "CgroupnsMode": args.cgroupns or "", **security.security_fields(args)}
    body = {"Image": args.image, "Cmd": args.command or None, "Env": env, "Labels": labels,
            "WorkingDir": args.workdir or "", "User": args.user or "", "Hostname": args.hostname or "",
            "AttachStdin": args.interactive, "OpenStdin": args.interactive, "StdinOnce": args.interactive,
            "AttachStdout": True, "AttachStderr": True, "Tty": args.tty, "HostConfig": host}
    if args.entrypoint is not None:
        body["Entrypoint"] = [args.entrypoint] if args.entrypoint else []
    if args.stop_signal:
        body["StopSignal"] = args.stop_signal
    if args.stop_timeout is not None:
        body["StopTimeout"] = args.stop_timeout
    network.network_body(args, body)
    mounts.mounts_body(args, body)
    return body


def restart_policy(text: str) -> dict:
    """``--restart no|always|unless-stopped|on-failure[:N]`` -> HostConfig.RestartPolicy (the daemon
    checks the rest, as dockerd does), for argparse's ``type=``."""
    name, colon, count = text.partition(":")
    try:
        retries = int(count) if colon else 0
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid restart policy format: maximum retry count must be an integer: "
                                         f"{count!r}") from None
    return {"Name": name, "MaximumRetryCount": retries}


def resource_fields(args: argparse.Namespace) -> dict:
    """The limits flags (``run``, ``create``, ``update``) -> HostConfig's fields, 0 where not given."""
    return {"Memory": args.memory or 0, "MemorySwap": args.memory_swap or 0,
            "MemoryReservation": args.memory_reservation or 0, "NanoCpus": round((args.cpus or 0) * 1e9),
            "CpuShares": args.cpu_shares or 0, "CpuQuota": args.cpu_quota or 0, "CpuPeriod": args.cpu_period or 0,
            "CpusetCpus": args.cpuset_cpus or "", "CpusetMems": args.cpuset_mems or "",
            "BlkioWeight": args.blkio_weight or 0, "PidsLimit": args.pids_limit}


def add_resource_flags(p: argparse.ArgumentParser) -> None:
    """docker's limits flags, shared by ``run``, ``create`` and ``update``."""
    from minicontainer.cli.run import parse_bytes

    p.add_argument("-m", "--memory", type=parse_bytes, help="memory limit (6m at least): 64m, 1g")
    p.add_argument("--memory-swap", type=lambda t: -1 if t.strip() == "-1" else parse_bytes(t),
                   help="memory plus swap (-1: unlimited swap); by default twice --memory")
    p.add_argument("--memory-reservation", type=parse_bytes, help="soft limit, reclaimed down to under pressure")
    p.add_argument("--cpus", type=float, help="CPUs the container may use (0.5: half of one)")
    p.add_argument("-c", "--cpu-shares", type=int, help="relative CPU weight (1024 by default)")
    p.add_argument("--cpu-period", type=int, help="CFS period in microseconds")
    p.add_argument("--cpu-quota", type=int, help="CFS quota in microseconds per period")
    p.add_argument("--cpuset-cpus", help="CPUs to run on: 0-1, 0,2")
    p.add_argument("--cpuset-mems", help="memory nodes to allocate from (NUMA)")
    p.add_argument("--pids-limit", type=int, help="most processes at once (-1: unlimited)")
    p.add_argument("--blkio-weight", type=int, help="relative block I/O weight, 10 to 1000")


def _create(api, args: argparse.Namespace) -> str:
    from minicontainer.client.api import APIError

    body = create_body(args)
    try:
        return api.json("POST", "/containers/create", {"name": args.name}, body)["Id"]
    except APIError as e:
        if e.status != 404 or "image" not in e.message.lower():
            raise
    print(f"Unable to find image '{_familiar(args.image)}' locally", file=sys.stderr)
    _pull(api, args.image, sys.stderr, explain=getattr(args, "explain", False))
    return api.json("POST", "/containers/create", {"name": args.name}, body)["Id"]


def _familiar(name: str) -> str:
    from minicontainer.image.reference import parse

    try:
        return parse(name).familiar()
    except ValueError:
        return name


def _pull(api, image: str, out, explain: bool = False) -> None:
    from minicontainer.cli.images import PullPrinter, pull_through_daemon

    pull_through_daemon(api, image, PullPrinter(out), explain=explain)


def cmd_run(args: argparse.Namespace) -> int:
    from minicontainer.client.api import APIError

    if args.tty and args.interactive and not sys.stdin.isatty() and not args.detach:
        print("the input device is not a TTY", file=sys.stderr)  # docker's words: -it needs a terminal to read
        return 1
    api = client()
    try:
        cid = _create(api, args)
    except APIError as e:
        print(f"minicontainer: Error response from daemon: {e.message}", file=sys.stderr)
        return 125
    except (OSError, ValueError) as e:  # an --env-file missing or malformed: a usage error, as docker's
        print(local_error(e), file=sys.stderr)
        return 125
    if args.detach:
        try:
            api.request("POST", f"/containers/{cid}/start").read()
        except APIError as e:
            print(f"minicontainer: Error response from daemon: {e.message}", file=sys.stderr)
            return _exit_code_of_start_error(e.message)
        print(cid)
        return 0
    from minicontainer.cli.session import proxy_signals

    stream = api.attach(cid, stdin=args.interactive, detach_keys=args.detach_keys)
    # The wait is registered before the start, as the docker CLI does: the daemon answers its headers
    # at once and the body (the exit code) when the container is gone, so no exit can be missed.
    waiting = api.request("POST", f"/containers/{cid}/wait", {"condition": "removed" if args.rm else "next-exit"})
    terminal = Terminal(api, f"/containers/{cid}/resize") if args.tty else None
    if args.interactive:
        threading.Thread(target=pump_stdin, args=(stream, bool(terminal)), daemon=True).start()
    with proxy_signals(api, cid, args.sig_proxy and not args.tty):
        return _start_and_follow(api, args, cid, stream, waiting, terminal)


def _start_and_follow(api, args: argparse.Namespace, cid: str, stream, waiting, terminal) -> int:
    from minicontainer.cli.session import exit_status
    from minicontainer.client.api import APIError

    try:
        api.request("POST", f"/containers/{cid}/start").read()
    except APIError as e:
        print(f"minicontainer: Error response from daemon: {e.message}", file=sys.stderr)
        stream.close()
        if args.rm:
            try:
                api.request("DELETE", f"/containers/{cid}", {"force": 1}).read()
            except APIError:
                pass
        return _exit_code_of_start_error(e.message)
    if terminal is None:
        copy_output(api, stream)
    else:
        with terminal.raw(args.interactive):
            copy_output(api, stream)  # one stream, as it comes: the daemon sends it unframed
    code = exit_status(api, cid, waiting, detached_code=0, keys_possible=args.tty and args.interactive)
    if getattr(args, "explain", False):  # after the exit: its clean-up is part of the story
        explain(api, cid, 0, f"{'run --rm' if args.rm else 'run'} {cid[:12]}: the image, the start, the exit")
    return code


def cmd_create(args: argparse.Namespace) -> int:
    try:
        print(_create(client(), args))
    except (OSError, ValueError) as e:
        print(local_error(e), file=sys.stderr)
        return 125
    return 0


def _each(args: argparse.Namespace, action) -> int:
    """Do ``action`` to each container named, print its name (as docker does), narrate with --explain."""
    import time

    from minicontainer.client.api import APIError

    api = client()
    code = 0
    for ref in args.containers:
        try:
            since = time.monotonic_ns()
            action(api, ref)
            if getattr(args, "explain", False):
                time.sleep(0.05)  # the exit that a signal causes arrives a moment later
                explain(api, ref, since, f"{args.command} {ref}")
            print(ref)
        except APIError as e:
            print(f"Error response from daemon: {e.message}", file=sys.stderr)
            code = 1
    return code


def cmd_start(args: argparse.Namespace) -> int:
    if args.attach or args.interactive:
        from minicontainer.cli.session import exit_status, proxy_signals, session
        from minicontainer.client.api import APIError

        api = client()
        ref = args.containers[0]
        import time

        since = time.monotonic_ns()
        try:
            config = api.json("GET", f"/containers/{ref}/json")
            cid, tty = config["Id"], bool(config["Config"].get("Tty"))
            stdin = args.interactive and bool(config["Config"].get("OpenStdin"))
            stream = api.attach(cid, stdin=stdin, detach_keys=args.detach_keys)
            waiting = api.request("POST", f"/containers/{cid}/wait", {"condition": "next-exit"})
            api.request("POST", f"/containers/{cid}/start").read()
        except APIError as e:
            print(f"Error response from daemon: {e.message}", file=sys.stderr)
            return 1
        with proxy_signals(api, cid, args.sig_proxy and not tty):
            session(api, stream, interactive=stdin, terminal=Terminal(api, f"/containers/{cid}/resize") if tty else None)
        code = exit_status(api, cid, waiting, detached_code=1, keys_possible=tty and stdin)
        if getattr(args, "explain", False):
            explain(api, cid, since, f"start -a {ref}: the start, the exit")
        return code
    return _each(args, lambda api, ref: api.request("POST", f"/containers/{ref}/start").read())


def cmd_stop(args: argparse.Namespace) -> int:
    return _each(args, lambda api, ref: api.request("POST", f"/containers/{ref}/stop", {"t": args.time}).read())


def cmd_restart(args: argparse.Namespace) -> int:
    return _each(args, lambda api, ref: api.request("POST", f"/containers/{ref}/restart", {"t": args.time}).read())


def cmd_kill(args: argparse.Namespace) -> int:
    return _each(args, lambda api, ref: api.request("POST", f"/containers/{ref}/kill", {"signal": args.signal}).read())


def cmd_rm(args: argparse.Namespace) -> int:
    return _each(args, lambda api, ref: api.request("DELETE", f"/containers/{ref}", {
        "force": int(args.force), "v": int(args.volumes)}).read())


def cmd_wait(args: argparse.Namespace) -> int:
    from minicontainer.client.api import APIError

    api = client()
    code = 0
    for ref in args.containers:
        try:
            print(api.json("POST", f"/containers/{ref}/wait")["StatusCode"])
        except APIError as e:
            print(f"Error response from daemon: {e.message}", file=sys.stderr)
            code = 1
    return code


# `ps --format`'s fields (docker's names) and the titles `table` gives them.
PS_TITLES = {"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT",
             "RunningFor": "CREATED", "Ports": "PORTS", "State": "STATE", "Status": "STATUS", "Size": "SIZE",
             "Names": "NAMES", "Labels": "LABELS", "Mounts": "MOUNTS", "Networks": "NETWORKS"}


def _ps_fields(c: dict, no_trunc: bool) -> dict:
    import time

    command = c["Command"] if no_trunc else _trunc(c["Command"], 20)
    return {"ID": c["Id"] if no_trunc else c["Id"][:12], "Image": c["Image"], "Command": f'"{command}"',
            "CreatedAt": time.strftime("%Y-%m-%d %H:%M:%S +0000 UTC", time.gmtime(c["Created"])),
            "RunningFor": ago_unix(c["Created"]), "Ports": network.ports_text(c), "State": c.get("State", ""),
            "Status": c["Status"], "Size": "", "Names": ",".join(n.lstrip("/") for n in c["Names"]),
            "Labels": ",".join(f"{k}={v}" for k, v in sorted((c.get("Labels") or {}).items())),
            "Mounts": ",".join(name if no_trunc else _trunc(name, 15)  # a volume's name, else a bind's source
                               for name in (m.get("Name") or m.get("Source") or "" for m in c.get("Mounts") or [])),
            "Networks": ",".join((c.get("NetworkSettings") or {}).get("Networks") or {})}


def cmd_ps(args: argparse.Namespace) -> int:
    from minicontainer.client.api import filters_json

    rows = client().json("GET", "/containers/json", {"all": int(args.all), "filters": filters_json(args.filter)})
    if args.format and not args.quiet:
        from minicontainer.cli.format import formatted

        sys.stdout.write(formatted(args.format, [_ps_fields(c, args.no_trunc) for c in rows], PS_TITLES))
        return 0
    if args.quiet:
        for c in rows:
            print(c["Id"] if args.no_trunc else c["Id"][:12])
        return 0
    lines = []
    for c in rows:
        command = c["Command"] if args.no_trunc else _trunc(c["Command"], 20)
        lines.append([c["Id"] if args.no_trunc else c["Id"][:12], c["Image"], f'"{command}"',
                      ago_unix(c["Created"]), c["Status"], network.ports_text(c),
                      ",".join(n.lstrip("/") for n in c["Names"])])
    sys.stdout.write(table(["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"], lines))
    return 0


def _trunc(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def ago_unix(seconds: int) -> str:
    import time

    return ago(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds)))


def cmd_logs(args: argparse.Namespace) -> int:
    from minicontainer.cli.events import timestamp

    api = client()
    params = {"stdout": 1, "stderr": 1, "follow": int(args.follow), "timestamps": int(args.timestamps),
              "tail": args.tail, "since": timestamp(args.since), "until": timestamp(args.until)}
    resp = api.request("GET", f"/containers/{args.container}/logs", params)
    for kind, data in api.frames(resp):
        out = sys.stdout if kind == 1 else sys.stderr
        out.buffer.write(data)
        out.flush()
    return 0


def confirmed(warning: str) -> bool:
    """docker's question before a prune; anything but y or yes is no."""
    sys.stdout.write(f"{warning}\nAre you sure you want to continue? [y/N] ")
    sys.stdout.flush()
    return sys.stdin.readline().strip().lower() in ("y", "yes")


def cmd_prune(args: argparse.Namespace) -> int:
    from minicontainer.client.api import filters_json

    if not args.force and not confirmed("WARNING! This will remove all stopped containers."):
        return 0
    result = client().json("POST", "/containers/prune", {"filters": filters_json(args.filter)})
    print_deleted("Containers", result.get("ContainersDeleted"))
    print(f"Total reclaimed space: {human_size(result.get('SpaceReclaimed', 0))}")
    return 0


def print_deleted(kind: str, deleted: list[str] | None) -> None:
    if deleted:
        print(f"Deleted {kind}:")
        print("\n".join(deleted))
        print()


def cmd_rename(args: argparse.Namespace) -> int:
    client().request("POST", f"/containers/{args.container}/rename", {"name": args.new_name}).read()
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from minicontainer.cli.images import print_inspected
    from minicontainer.client.api import APIError

    api = client()
    found, code = [], 0
    # docker's order: a container, an image, a network, then a volume of that name
    paths = {"container": ("/containers/{}/json",), "image": ("/images/{}/json",), "network": ("/networks/{}",),
             "volume": ("/volumes/{}",)}
    kinds = paths[args.type] if args.type else tuple(p for ps in paths.values() for p in ps)
    for ref in args.names:
        for path in (kind.format(ref) for kind in kinds):
            try:
                found.append(api.json("GET", path))
                break
            except APIError as e:
                if e.status != 404:
                    raise
        else:
            print(f"Error: No such {args.type or 'object'}: {ref}", file=sys.stderr)
            code = 1
    print_inspected(found, args.format)
    return code


def cmd_top(args: argparse.Namespace) -> int:
    result = client().json("GET", f"/containers/{args.container}/top")
    sys.stdout.write(table(result["Titles"], result["Processes"]))
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    for change in client().json("GET", f"/containers/{args.container}/changes") or []:
        print(f"{'CAD'[change['Kind']]} {change['Path']}")
    return 0


def cmd_version(args: argparse.Namespace) -> int:
    import platform

    from minicontainer.cli.main import package_version

    print("Client:")
    print(f" Version:           {package_version()}")
    print(" API version:       1.45")
    print(f" Python version:    {platform.python_version()}")
    machine = platform.machine()
    print(f" OS/Arch:           linux/{ {'x86_64': 'amd64', 'aarch64': 'arm64'}.get(machine, machine)}")  # Go's names
    v = client().json("GET", "/version")
    print("\nServer: minicontainer engine")
    print(" Engine:")
    print(f"  Version:          {v['Version']}")
    print(f"  API version:      {v['ApiVersion']} (minimum version {v['MinAPIVersion']})")
    print(f"  OS/Arch:          {v['Os']}/{v['Arch']}")
    print(f"  Kernel version:   {v['KernelVersion']}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    i = client().json("GET", "/info")
    print("Server:")
    for key, label in (("Containers", "Containers"), ("ContainersRunning", " Running"), ("ContainersStopped", " Stopped"),
                       ("Images", "Images"), ("ServerVersion", "Server Version"), ("Driver", "Storage Driver"),
                       ("LoggingDriver", "Logging Driver"), ("CgroupDriver", "Cgroup Driver"),
                       ("CgroupVersion", "Cgroup Version"), ("KernelVersion", "Kernel Version"),
                       ("OperatingSystem", "Operating System"), ("Architecture", "Architecture"), ("NCPU", "CPUs"),
                       ("MemTotal", "Total Memory"), ("Name", "Name"), ("DockerRootDir", "Root Dir")):
        value = i.get(key)
        if key == "MemTotal":
            value = human_size(value or 0)
        print(f" {label}: {value}")
    for warning in i.get("Warnings") or []:
        print(f"WARNING: {warning}")
    return 0


def add_run_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--help", action="help", help="show this help and exit")
    p.add_argument("-d", "--detach", action="store_true", help="run in the background and print its ID")
    p.add_argument("-i", "--interactive", action="store_true", help="keep stdin open")
    p.add_argument("-t", "--tty", action="store_true",
                   help="give the program a terminal (with -i: yours, in raw mode, as `docker run -it`)")
    p.add_argument("--rm", action="store_true", help="remove the container when it exits")
    p.add_argument("--restart", type=restart_policy, metavar="POLICY",
                   help="restart when it exits: no, always, unless-stopped, on-failure[:N]")
    p.add_argument("--log-driver", help="json-file (the default) or none")
    p.add_argument("--log-opt", action="append", default=[], help="json-file: max-size=10m, max-file=3")
    p.add_argument("--name")
    p.add_argument("-e", "--env", action="append", default=[])
    p.add_argument("--env-file", action="append", default=[])
    p.add_argument("-l", "--label", action="append", default=[])
    p.add_argument("-w", "--workdir")
    p.add_argument("-u", "--user")
    p.add_argument("--entrypoint")
    p.add_argument("-h", "--hostname")
    p.add_argument("--init", action="store_true", help="run tini as PID 1: it forwards signals, reaps zombies")
    p.add_argument("--stop-signal")
    p.add_argument("--stop-timeout", type=int)
    add_resource_flags(p)
    security.add_run_flags(p)
    mounts.add_run_flags(p)
    network.add_run_flags(p)
    # Namespaces the container shares instead of having its own (engine/namespaces.py).
    p.add_argument("--pid", help="PID namespace: 'host', or 'container:NAME' to see another container's processes")
    p.add_argument("--uts", help="UTS namespace: 'host' (the host's hostname)")
    p.add_argument("--ipc", help="IPC namespace: 'private' (default), 'host', or 'container:NAME'")
    p.add_argument("--cgroupns", help="cgroup namespace: 'private' (default) or 'host'")
    p.add_argument("image")
    p.add_argument("command", nargs=argparse.REMAINDER)


def add_commands(commands: argparse._SubParsersAction) -> None:
    add_container_commands(commands)
    p = commands.add_parser("ps", help="list containers")
    _ps_flags(p)
    p = commands.add_parser("version", help="client and server versions")
    p.set_defaults(handler=cmd_version)
    p = commands.add_parser("info", help="what the daemon runs on")
    p.set_defaults(handler=cmd_info)
    group = commands.add_parser("container", help="manage containers (ls, prune, and the container commands)")
    sub = group.add_subparsers(dest="container_command", metavar="COMMAND", required=True)
    # `container ls` is `ps`, and every container command is there too, as in docker
    _ps_flags(sub.add_parser("ls", aliases=["list"], help="list containers"))
    add_container_commands(sub)
    from minicontainer.cli import archive, cp, run

    run.add_command(sub)
    cp.add_command(sub)
    archive.add_export(sub)
    p = sub.add_parser("prune", help="remove all stopped containers")
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("--filter", action="append", default=[], help="label=KEY or label=KEY=VALUE, until=24h")
    p.set_defaults(handler=cmd_prune)


def add_container_commands(commands: argparse._SubParsersAction) -> None:
    """The commands on containers: at the top level, and again under ``container``."""
    p = commands.add_parser("create", help="create a container without starting it", add_help=False)
    add_run_flags(p)
    p.set_defaults(handler=cmd_create, detach=False)

    def containers(p):
        p.add_argument("containers", nargs="+", metavar="CONTAINER")
        return p

    p = containers(commands.add_parser("start", help="start containers"))
    p.add_argument("-a", "--attach", action="store_true", help="attach its stdout and stderr, pass it our signals")
    p.add_argument("-i", "--interactive", action="store_true", help="attach its stdin too")
    from minicontainer.cli.exec import add_attach_flags

    add_attach_flags(p)
    p.add_argument("--explain", action="store_true", help="narrate the kernel steps on stderr")
    p.set_defaults(handler=cmd_start)
    for name, handler, helptext in (("stop", cmd_stop, "stop (StopSignal, then SIGKILL after -t seconds)"),
                                    ("restart", cmd_restart, "stop, then start again")):
        p = containers(commands.add_parser(name, help=helptext))
        p.add_argument("-t", "--time", type=int)
        p.add_argument("--explain", action="store_true", help="narrate the signals, the wait (and the start)")
        p.set_defaults(handler=handler)
    p = containers(commands.add_parser("kill", help="send a signal (default SIGKILL)"))
    p.add_argument("-s", "--signal", default="KILL")
    p.add_argument("--explain", action="store_true", help="narrate the kernel steps on stderr")
    p.set_defaults(handler=cmd_kill)
    p = containers(commands.add_parser("rm", help="remove containers"))
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("-v", "--volumes", action="store_true", help="remove its anonymous volumes too")
    p.add_argument("--explain", action="store_true", help="narrate the kernel steps on stderr")
    p.set_defaults(handler=cmd_rm)
    p = containers(commands.add_parser("wait", help="wait for containers to stop; print their exit codes"))
    p.set_defaults(handler=cmd_wait)
    p = commands.add_parser("logs", help="a container's output")
    p.add_argument("-f", "--follow", action="store_true")
    p.add_argument("-t", "--timestamps", action="store_true")
    p.add_argument("-n", "--tail", default="all")
    p.add_argument("--since", help="only output since this time (10m, 1h30m, an RFC 3339 time, Unix seconds)")
    p.add_argument("--until", help="only output before this time (the same forms)")
    p.add_argument("container")
    p.set_defaults(handler=cmd_logs)
    p = commands.add_parser("inspect", help="low-level information on containers, images, networks or volumes")
    p.add_argument("names", nargs="+")
    p.add_argument("-f", "--format")
    p.add_argument("--type", choices=("container", "image", "network", "volume"),
                   help="look only for this kind of object")
    p.set_defaults(handler=cmd_inspect)
    p = commands.add_parser("top", help="the processes of a running container")
    p.add_argument("container")
    p.set_defaults(handler=cmd_top)
    p = commands.add_parser("diff", help="what a container changed in its filesystem (A added, C changed, D deleted)")
    p.add_argument("container")
    p.set_defaults(handler=cmd_diff)
    p = commands.add_parser("rename", help="give a container another name")
    p.add_argument("container")
    p.add_argument("new_name", metavar="NEW_NAME")
    p.set_defaults(handler=cmd_rename)


def _ps_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("-a", "--all", action="store_true")
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("--no-trunc", action="store_true")
    p.add_argument("-f", "--filter", action="append", default=[],
                   help="status=, name= (a regex), id=, ancestor=, exited=, label=")
    p.add_argument("--format", help="a Go template per container, e.g. '{{.Names}}' or 'table {{.ID}}\\t{{.Status}}'")
    p.set_defaults(handler=cmd_ps)
