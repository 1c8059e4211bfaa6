"""The image commands: ``pull``, ``images``, ``image inspect``, ``history``, ``tag``, ``rmi``,
``image prune``, ``login``, ``logout``, and the teaching extra ``starter``.

Each prints what ``docker`` prints for the same command, so that a learner's muscle memory (and
scripts) carry over.  They call the engine in-process for now; with ``minicontainerd`` they will go
through the daemon, as docker's do.
"""

from __future__ import annotations

import argparse
import json
import sys

from minicontainer.cli.format import ago, human_size, table


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


def cmd_pull(args: argparse.Namespace) -> int:
    from minicontainer.engine import images
    from minicontainer.image.reference import parse

    ref = parse(args.image)
    if ":" not in args.image.rsplit("/", 1)[-1] and "@" not in args.image and not args.quiet:
        print("Using default tag: latest")
    printer = None if args.quiet else PullPrinter()
    images.pull(args.image, images.open_store(), platform=args.platform, progress=printer)
    print(str(ref))
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    from minicontainer.engine import images

    images.push(args.image, images.open_store(), progress=None if args.quiet else PullPrinter())
    return 0


def cmd_images(args: argparse.Namespace) -> int:
    from minicontainer.engine import images
    from minicontainer.engine.images import familiar_repository

    store = images.open_store()
    rows = []
    ids = []
    for image in sorted(store.images(), key=lambda i: i.created, reverse=True):
        shown_id = image.id if args.no_trunc else image.short_id
        if args.quiet:
            if shown_id not in ids:
                ids.append(shown_id)
            continue
        tags = [familiar_repository(t) for t in image.repo_tags] or [("<none>", "<none>")]
        for repo, tag in tags:
            if args.repository and repo != args.repository:
                continue
            rows.append([repo, tag, shown_id, ago(image.created), human_size(image.size)])
    if args.quiet:
        print("\n".join(ids)) if ids else None
        return 0
    sys.stdout.write(table(["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"], rows))
    return 0


def cmd_image_inspect(args: argparse.Namespace) -> int:
    from minicontainer.engine import images
    from minicontainer.engine.images import inspect_json
    from minicontainer.image.store import NotFound

    store = images.open_store()
    found, code = [], 0
    for name in args.images:
        try:
            found.append(inspect_json(images.find(store, name)))
        except NotFound:
            print(f"Error: No such image: {name}", file=sys.stderr)
            code = 1
    print_inspected(found, args.format)
    return code


def print_inspected(found: list[dict], fmt: str | None) -> None:
    """``inspect``'s output: the JSON array, or one line per object with ``--format``."""
    if fmt:
        for item in found:
            print(_go_template(fmt, item))
    else:
        print(json.dumps(found, indent=4))


def _go_template(fmt: str, data: dict) -> str:
    """The one shape of ``--format`` most used: ``{{.Field}}`` / ``{{.A.B}}`` / ``{{json .X}}``."""
    import re

    def value(path: str):
        v = data
        for part in path.strip(".").split("."):
            v = v.get(part) if isinstance(v, dict) else None
        return v

    def sub(m: re.Match) -> str:
        expr = m.group(1).strip()
        if expr.startswith("json "):
            return json.dumps(value(expr[5:].strip()))
        v = value(expr)
        return "" if v is None else (json.dumps(v) if isinstance(v, (dict, list)) else str(v))

    return re.sub(r"\{\{(.*?)\}\}", sub, fmt)


def cmd_history(args: argparse.Namespace) -> int:
    from minicontainer.engine import images

    image = images.find(images.open_store(), args.image)
    config = image.config
    history = list(reversed(config.get("history") or []))
    rows = []
    sizes = iter(reversed([images.open_store().layer(c).size for c in image.chain_ids]))
    for i, h in enumerate(history):
        size = 0 if h.get("empty_layer") else next(sizes, 0)
        created_by = h.get("created_by", "")
        if not args.no_trunc and len(created_by) > 45:
            created_by = created_by[:44] + "…"
        rows.append([image.short_id if i == 0 else "<missing>", ago(h.get("created", "")), created_by,
                     human_size(size), h.get("comment", "")])
    sys.stdout.write(table(["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"], rows))
    return 0


def cmd_tag(args: argparse.Namespace) -> int:
    from minicontainer.engine import images
    from minicontainer.image.reference import parse

    store = images.open_store()
    image = images.find(store, args.source)
    store.tag(image.id, str(parse(args.target)))
    return 0


def cmd_rmi(args: argparse.Namespace) -> int:
    from minicontainer.engine import images
    from minicontainer.image.reference import parse
    from minicontainer.image.store import StoreError

    store = images.open_store()
    code = 0
    for name in args.images:
        try:
            try:
                key = str(parse(name))
                store.resolve(key)
            except (ValueError, LookupError):
                key = name
            for line in store.remove_image(key, force=args.force, in_use=images.in_use(store)):
                print(_familiar_line(line))
        except StoreError as e:
            print(f"Error response from daemon: {e}", file=sys.stderr)
            code = 1
    if code == 0:
        store.gc()
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
    from minicontainer.engine import images

    what = "all images without at least one container associated to them" if args.all else "all dangling images"
    if not args.force:
        sys.stdout.write(f"WARNING! This will remove {what}.\nAre you sure you want to continue? [y/N] ")
        sys.stdout.flush()
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            return 0
    store = images.open_store()
    lines = store.prune(dangling_only=not args.all, in_use=images.in_use(store))
    result = store.gc()
    if lines:
        print("Deleted Images:")
        for line in lines:
            print(_familiar_line(line).replace("Untagged:", "untagged:").replace("Deleted:", "deleted:"))
        print()
    print(f"Total reclaimed space: {human_size(getattr(result, 'bytes_freed', 0))}")
    return 0


def cmd_login(args: argparse.Namespace) -> int:
    from minicontainer.image.auth import normalize_registry_host, save_login
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
    from minicontainer.image.auth import normalize_registry_host, remove_login

    host = normalize_registry_host(args.server or "docker.io")
    if remove_login(host):
        print(f"Removing login credentials for {host}")
    else:
        print(f"Not logged in to {host}")
    return 0


def cmd_starter(args: argparse.Namespace) -> int:
    from minicontainer.engine import images
    from minicontainer.image.starter import STARTERS, install_starter

    store = images.open_store()
    names = args.names or [n for n in STARTERS if n != "redis" or _has_redis()]
    for name in names:
        if name not in STARTERS:
            print(f"no starter image '{name}' (there are: {', '.join(STARTERS)})", file=sys.stderr)
            return 1
        image = install_starter(store, name)
        print(f"{name}:latest  {image.short_id}  {human_size(image.size)}  built from this host's files")
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
    p.add_argument("repository", nargs="?")
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


def _pull_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("image")
    p.add_argument("--platform", help="os/arch[/variant], e.g. linux/arm64 (default: this machine's)")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the image's name")


_ARGS = {"ls": _images_args, "history": _history_args, "rm": _rmi_args, "rmi": _rmi_args, "tag": _tag_args,
         "pull": _pull_args}
_HELP = {"history": "show the layers an image was built from", "tag": "give an image another name",
         "rmi": "remove images"}
