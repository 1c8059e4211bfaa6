"""The image commands: ``pull``, ``images``, ``image inspect``, ``history``, ``tag``, ``rmi``,
``image prune``, ``login``, ``logout``, and the teaching extra ``starter``.

Each prints what ``docker`` prints for the same command, so that a learner's muscle memory (and
scripts) carry over.  Like docker's, they are requests to the daemon (``POST /images/create``,
``GET /images/json``...), so a user in the socket's group needs no root.  ``login`` and ``logout``
only touch this user's own credentials file; the daemon gets the credentials with each pull or push
(``X-Registry-Auth``).  ``starter`` asks the daemon to build images from this host's own files
(``POST /minicontainer/starter/NAME``, an extension of ours).
"""

from __future__ import annotations

import argparse
import json
import sys

from minicontainer.cli.format import table
from minicontainer.client.api import APIError, registry_auth  # the login goes with each pull and push
from minicontainer.units import human_size


class PullPrinter:
    """``docker pull``'s lines: one per layer and step, and a bar while a layer downloads on a terminal."""

    def __init__(self, out=None) -> None:
        self.out = out or sys.stdout
        self.tty = self.out.isatty()
        self.last: dict[str, str] = {}

    def __call__(self, msg: dict) -> None:
        status, layer = msg.get("status", ""), msg.get("id")
        if status in ("Downloading", "Extracting"):
            if not self.tty:
                return  # as docker without a terminal: only the step changes are printed
            detail = msg.get("progressDetail") or {}
            done, total = detail.get("current", 0), detail.get("total", 0)
            bar = ""
            if total:
                filled = int(40 * done / total)
                bar = f"[{'=' * max(filled - 1, 0)}{'>' if filled else ''}{' ' * (40 - filled)}] " \
                      f"{human_size(done)}/{human_size(total)}"
            self.out.write(f"\r{layer}: {status} {bar}\x1b[K")
            self.out.flush()
            self.last[layer] = status
            return
        if self.tty and layer in self.last and self.last[layer] in ("Downloading", "Extracting"):
            self.out.write("\r\x1b[K")
        self.out.write(f"{layer}: {status}\n" if layer else f"{status}\n")
        self.out.flush()
        if layer:
            self.last[layer] = status


def pull_through_daemon(api, image: str, printer, platform: str | None = None, *, explain: bool = False) -> None:
    """``POST /images/create?fromImage=...``: the daemon pulls, and streams its progress back (with
    ``explain``, each HTTP exchange it has with the registry too, narrated on stderr)."""
    from minicontainer.image.reference import parse

    ref = parse(image)
    params = {"fromImage": ref.name, "tag": ref.digest or ref.tag, "platform": platform,
              "explain": 1 if explain else None}
    resp = api.request("POST", "/images/create", params, headers=registry_auth(image))
    follow(resp, printer)


def follow(resp, printer) -> None:
    """Print a progress stream; an ``{"error": ...}`` in it ends the command (as docker: exit 1)."""
    t0 = None
    for line in resp:
        if not line.strip():
            continue
        msg = json.loads(line)
        if "error" in msg:  # after the 200: the daemon's error comes inside the stream
            raise APIError(500, msg["error"])
        if "explain" in msg:
            from minicontainer.observe.events import Event
            from minicontainer.observe.explain import format_event

            event = Event.from_dict(msg["explain"])
            t0 = event.at_ns if t0 is None else t0
            print(format_event(event, t0), file=sys.stderr, flush=True)
        elif printer:
            printer(msg)


def daemon_client():
    from minicontainer.cli.containers import client

    return client()


def cmd_pull(args: argparse.Namespace) -> int:
    from minicontainer.image.reference import parse

    ref = parse(args.image)
    if ":" not in args.image.rsplit("/", 1)[-1] and "@" not in args.image and not args.quiet:
        print("Using default tag: latest")
    api = daemon_client()
    pull_through_daemon(api, args.image, None if args.quiet else PullPrinter(), args.platform,
                        explain=args.explain)
    print(str(ref))
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    from minicontainer.image.reference import parse

    ref = parse(args.image)
    api = daemon_client()
    resp = api.request("POST", f"/images/{ref.familiar_name()}/push", {"tag": ref.tag},
                       headers=registry_auth(args.image))
    follow(resp, None if args.quiet else PullPrinter())
    return 0


def split_repo_tag(repo_tag: str) -> tuple[str, str]:
    """``127.0.0.1:5000/app:v1`` -> (``127.0.0.1:5000/app``, ``v1``): the tag is after the last ``:``
    that follows the last ``/`` (a registry's port is not a tag)."""
    repo, colon, tag = repo_tag.rpartition(":")
    return (repo, tag) if colon and "/" not in tag else (repo_tag, "latest")


def cmd_images(args: argparse.Namespace) -> int:
    from minicontainer.cli.containers import ago_unix

    rows = []
    ids = []
    from minicontainer.client.api import filters_json

    # `images busybox:1.36` is the filter reference=busybox:1.36, as the docker CLI sends it
    wanted = [*args.filter, *([f"reference={args.repository}"] if args.repository else [])]
    listed = daemon_client().json("GET", "/images/json", {"all": int(args.all), "filters": filters_json(wanted)})
    fields = []
    for image in sorted(listed, key=lambda i: i.get("Created", 0), reverse=True):
        shown_id = image["Id"] if args.no_trunc else image["Id"].split(":", 1)[-1][:12]
        if args.quiet:
            if shown_id not in ids:
                ids.append(shown_id)
            continue
        for repo, tag in [split_repo_tag(t) for t in image.get("RepoTags") or []] or [("<none>", "<none>")]:
            rows.append([repo, tag, shown_id, ago_unix(image.get("Created", 0)), human_size(image.get("Size", 0))])
            fields.append({"ID": shown_id, "Repository": repo, "Tag": tag, "Digest": "<none>",
                           "CreatedSince": rows[-1][3], "CreatedAt": _utc(image.get("Created", 0)),
                           "Size": rows[-1][4], "Containers": "N/A"})
    if args.quiet:
        print("\n".join(ids)) if ids else None
        return 0
    if args.format:
        from minicontainer.cli.format import formatted

        sys.stdout.write(formatted(args.format, fields, IMAGES_TITLES))
        return 0
    sys.stdout.write(table(["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"], rows))
    return 0


# `images --format`'s fields (docker's names) and the titles `table` gives them.
IMAGES_TITLES = {"Repository": "REPOSITORY", "Tag": "TAG", "ID": "IMAGE ID", "Digest": "DIGEST",
                 "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE", "Containers": "CONTAINERS"}


def _utc(seconds: int) -> str:
    import time

    return time.strftime("%Y-%m-%d %H:%M:%S +0000 UTC", time.gmtime(seconds))


def cmd_image_inspect(args: argparse.Namespace) -> int:
    from minicontainer.client.api import APIError

    api = daemon_client()
    found, code = [], 0
    for name in args.images:
        try:
            found.append(api.json("GET", f"/images/{name}/json"))
        except APIError as e:
            if e.status != 404:
                raise
            print(f"Error: No such image: {name}", file=sys.stderr)
            code = 1
    print_inspected(found, args.format)
    return code


def print_inspected(found: list[dict], fmt: str | None) -> None:
    """``inspect``'s output: the JSON array, or one line per object with ``--format``."""
    if fmt:
        from minicontainer.cli.format import go_template

        for item in found:
            print(go_template(fmt, item))
    else:
        print(json.dumps(found, indent=4))


def cmd_history(args: argparse.Namespace) -> int:
    from minicontainer.cli.containers import ago_unix

    rows = []
    for h in daemon_client().json("GET", f"/images/{args.image}/history"):
        created_by = h.get("CreatedBy", "")
        if not args.no_trunc and len(created_by) > 45:
            created_by = created_by[:44] + "…"
        shown = h.get("Id", "")
        shown = shown if args.no_trunc or shown == "<missing>" else shown.split(":", 1)[-1][:12]
        rows.append([shown, ago_unix(h.get("Created", 0)), created_by, human_size(h.get("Size", 0)),
                     h.get("Comment", "")])
    sys.stdout.write(table(["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"], rows))
    return 0


def cmd_tag(args: argparse.Namespace) -> int:
    from minicontainer.image.reference import parse

    target = parse(args.target)  # a bad name is refused here, before the daemon is asked
    repo, tag = split_repo_tag(target.familiar())
    daemon_client().request("POST", f"/images/{args.source}/tag", {"repo": repo, "tag": tag}).read()
    return 0


def cmd_rmi(args: argparse.Namespace) -> int:
    from minicontainer.client.api import APIError

    api = daemon_client()
    code = 0
    for name in args.images:
        try:
            for item in api.json("DELETE", f"/images/{name}", {"force": int(args.force),
                                                                   "noprune": int(args.no_prune)}) or []:
                for verb, what in item.items():
                    print(_familiar_line(f"{verb}: {what}"))
        except APIError as e:
            print(f"Error response from daemon: {e.message}", file=sys.stderr)
            code = 1
    return code


def _familiar_line(line: str) -> str:
    """``Untagged: docker.io/library/busybox:latest`` -> ``Untagged: busybox:latest``, as docker prints it."""
    from minicontainer.image.reference import parse

    verb, _, ref = line.partition(": ")
    if verb != "Untagged":
        return line
    try:
        return f"{verb}: {parse(ref).familiar()}"
    except ValueError:
        return line


def cmd_image_prune(args: argparse.Namespace) -> int:
    from minicontainer.cli.containers import confirmed
    from minicontainer.client.api import filters_json

    what = "all images without at least one container associated to them" if args.all else "all dangling images"
    if not args.force and not confirmed(f"WARNING! This will remove {what}."):
        return 0
    result = daemon_client().json("POST", "/images/prune",
                                  {"filters": filters_json([*args.filter, f"dangling={str(not args.all).lower()}"])})
    print_deleted_images(result)
    print(f"Total reclaimed space: {human_size(result.get('SpaceReclaimed', 0))}")
    return 0


def print_deleted_images(result: dict) -> None:
    """A prune's ``ImagesDeleted``, as docker lists them: ``untagged: busybox:latest``, ``deleted: sha256:...``."""
    if result.get("ImagesDeleted"):
        print("Deleted Images:")
        for item in result["ImagesDeleted"]:
            for verb, what in item.items():
                print(_familiar_line(f"{verb}: {what}").replace("Untagged:", "untagged:")
                      .replace("Deleted:", "deleted:"))
        print()


def cmd_login(args: argparse.Namespace) -> int:
    from minicontainer.image.credentials import normalize_registry_host, save_login
    from minicontainer.image.registry import RegistryClient, RegistryError

    host = normalize_registry_host(args.server or "docker.io")
    user = args.username or input("Username: ")
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    elif args.password:
        print("WARNING! Using --password via the CLI is insecure. Use --password-stdin.", file=sys.stderr)
        password = args.password
    else:
        import getpass

        password = getpass.getpass("Password: ")
    try:
        with RegistryClient() as client:
            client.check_login(host, user, password)
    except RegistryError as e:
        print(f"Error response from daemon: {e}", file=sys.stderr)
        return 1
    path = save_login(host, user, password)
    print(f"WARNING! Your password will be stored unencrypted in {path}.")
    print("Login Succeeded")
    return 0


def cmd_logout(args: argparse.Namespace) -> int:
    from minicontainer.image.credentials import normalize_registry_host, remove_login

    host = normalize_registry_host(args.server or "docker.io")
    if remove_login(host):
        print(f"Removing login credentials for {host}")
    else:
        print(f"Not logged in to {host}")
    return 0


def cmd_starter(args: argparse.Namespace) -> int:
    """Ask the daemon to build the starter images from this host's files (``POST
    /minicontainer/starter/NAME``, an extension of ours: no registry, no network)."""
    from minicontainer.client.api import APIError
    from minicontainer.image.starter import STARTERS

    api = daemon_client()
    names = args.names or [n for n in STARTERS if n != "redis" or _has_redis()]
    for name in names:
        try:
            image = api.json("POST", f"/minicontainer/starter/{name}")
        except APIError as e:
            print(f"Error response from daemon: {e.message}", file=sys.stderr)
            return 1
        short = image["Id"].split(":", 1)[-1][:12]
        print(f"{name}:latest  {short}  {human_size(image['Size'])}  built from this host's files")
    return 0


def _has_redis() -> bool:
    import shutil

    return shutil.which("redis-server") is not None


def add_commands(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("pull", help="download an image from a registry")
    _pull_args(p)
    p.set_defaults(handler=cmd_pull)
    p = commands.add_parser("push", help="upload an image to a registry")
    p.add_argument("image")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(handler=cmd_push)
    p = commands.add_parser("images", help="list the images in the store")
    _images_args(p)
    p.set_defaults(handler=cmd_images)

    image = commands.add_parser("image", help="manage images (inspect, ls, history, tag, rm, prune, pull)")
    sub = image.add_subparsers(dest="image_command", metavar="COMMAND", required=True)
    p = sub.add_parser("inspect")
    p.add_argument("images", nargs="+")
    p.add_argument("-f", "--format")
    p.set_defaults(handler=cmd_image_inspect)
    p = sub.add_parser("prune", help="remove dangling images (with -a: all unused)")
    p.add_argument("-a", "--all", action="store_true")
    p.add_argument("-f", "--force", action="store_true", help="do not ask for confirmation")
    p.add_argument("--filter", action="append", default=[], help="until=24h, label=KEY[=VALUE], label!=KEY")
    p.set_defaults(handler=cmd_image_prune)
    for name, handler in (("ls", cmd_images), ("history", cmd_history), ("rm", cmd_rmi), ("tag", cmd_tag),
                          ("pull", cmd_pull)):
        p = sub.add_parser(name)
        _ARGS[name](p)
        p.set_defaults(handler=handler)

    for name, handler in (("history", cmd_history), ("tag", cmd_tag), ("rmi", cmd_rmi)):
        p = commands.add_parser(name, help=_HELP[name])
        _ARGS[name](p)
        p.set_defaults(handler=handler)

    p = commands.add_parser("login", help="log in to a registry (credentials kept as docker keeps them)")
    p.add_argument("server", nargs="?")
    p.add_argument("-u", "--username")
    p.add_argument("-p", "--password")
    p.add_argument("--password-stdin", action="store_true")
    p.set_defaults(handler=cmd_login)
    p = commands.add_parser("logout", help="forget the credentials for a registry")
    p.add_argument("server", nargs="?")
    p.set_defaults(handler=cmd_logout)

    p = commands.add_parser("starter", help="build the offline starter images (busybox, hello-world, redis) "
                                            "from this host's own binaries")
    p.add_argument("names", nargs="*")
    p.set_defaults(handler=cmd_starter)


def _images_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("repository", nargs="?", metavar="REPOSITORY[:TAG]", help="only this repository (and tag)")
    p.add_argument("--format", help="a Go template per image, e.g. '{{.Repository}}:{{.Tag}}' or 'table ...'")
    p.add_argument("-f", "--filter", action="append", default=[],
                   help="dangling=true|false, reference=GLOB (busy*, busybox:1.*), label=KEY[=VALUE]")
    p.add_argument("-a", "--all", action="store_true")
    p.add_argument("-q", "--quiet", action="store_true", help="only image IDs")
    p.add_argument("--no-trunc", action="store_true")


def _history_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("image")
    p.add_argument("--no-trunc", action="store_true")


def _tag_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("source")
    p.add_argument("target")


def _rmi_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("images", nargs="+")
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("--no-prune", action="store_true", help="do not delete untagged parents")


def _pull_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("image")
    p.add_argument("--explain", action="store_true",
                   help="narrate on stderr every HTTP exchange the daemon has with the registry")
    p.add_argument("--platform", help="os/arch[/variant], e.g. linux/arm64 (default: this machine's)")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the image's name")


_ARGS = {"ls": _images_args, "history": _history_args, "rm": _rmi_args, "rmi": _rmi_args, "tag": _tag_args,
         "pull": _pull_args}
_HELP = {"history": "show the layers an image was built from", "tag": "give an image another name",
         "rmi": "remove images"}
