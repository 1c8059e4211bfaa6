"""``docker build`` with the classic builder: a Dockerfile, step by step, each step an image.

A build is a chain of commits.  Every instruction starts from the image the previous one made
(the *parent*) and makes a new one, so that each step can be cached, and a rebuild starts again
where something changed:

* ``FROM`` picks the first parent: an image (pulled if missing, or always with ``--pull``), an
  earlier stage of the same Dockerfile (multi-stage builds), or ``scratch`` (nothing);
* ``RUN`` creates a real container from the parent, through the engine's own create, attach,
  start and wait (what ``docker run`` uses), prints its output, and commits it: its upper
  directory becomes the new layer (:mod:`minicontainer.engine.commit`).  A command that fails
  stops the build with Docker's ``The command '...' returned a non-zero code: N``;
* ``COPY`` and ``ADD`` mount the parent's layers with an empty upper directory, copy the files from
  the context (or, ``--from``, from another stage or image) into it, and snapshot that upper;
  ``WORKDIR`` does the same to create its directory (no layer when it already exists);
* every other instruction (``ENV``, ``CMD``, ``LABEL``...) only changes the config: its image has
  the same layers as its parent, and its history entry says ``empty_layer``.

**The cache.**  Before doing a step, the builder looks for an image it made earlier from the same
parent by the same step with the same resulting config: the key is (parent image ID, the step's
``created_by`` text, the config).  ``COPY``'s text holds a checksum of the files it copies, so an
edited file changes the key, and every later step misses too (their parent is new).  Hits print
`` ---> Using cache``; ``--no-cache`` looks nothing up.

Output is the classic builder's, line for line (``Step 2/5 : RUN ...``, `` ---> Running in ...``,
``Removing intermediate container ...``, ``Successfully built ...``), as JSON messages of the
``POST /build`` stream; with ``explain`` each step is narrated as well (the container, the snapshot,
the layer's digest, the cache's decision and why).
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import hashlib
import json
import os
import secrets
import shutil
import stat
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, NamedTuple

from minicontainer.engine import images as image_service
from minicontainer.engine.build_cache import BuildCache
from minicontainer.engine.commit import NewLayer, make_image, store_layer
from minicontainer.engine.errors import EngineError, InvalidParameter
from minicontainer.engine.instructions import DEFAULT_SHELL, apply_to_config
from minicontainer.image import dockerfile, overlay
from minicontainer.image.dockerfile import DockerfileError, Instruction, expand
from minicontainer.image.store import Image
from minicontainer.kernel.mounts import secure_join
from minicontainer.kernel.syscalls import Syscalls
from minicontainer.observe.events import Trace

if TYPE_CHECKING:
    from minicontainer.engine.service import Engine

# Build args every build accepts without an ARG line (and keeps out of the image's history).
PROXY_ARGS = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy", "NO_PROXY",
              "no_proxy", "ALL_PROXY", "all_proxy")


class BuildOptions(NamedTuple):
    """What ``POST /build`` asks (``docker build``'s flags)."""

    tags: tuple[str, ...] = ()  # -t, full references ("docker.io/user/redis:latest")
    dockerfile: str = "Dockerfile"  # -f, relative to the context
    quiet: bool = False  # -q: only the image ID
    nocache: bool = False
    pull: bool = False  # pull every FROM image, even one that is here
    rm: bool = True  # remove each intermediate container after its step succeeds
    forcerm: bool = False  # ... and after one that fails
    buildargs: dict[str, str | None] = {}  # noqa: RUF012 - a NamedTuple's default, never mutated
    labels: dict[str, str] = {}  # noqa: RUF012
    target: str = ""  # build up to this stage
    network_mode: str = "default"  # --network of the RUN containers: bridge (the default), none, host, a network
    extra_hosts: tuple[str, ...] = ()  # --add-host of the RUN containers: "name:address"
    explain: bool = False  # ours: narrate each step
    auth: dict | None = None  # X-Registry-Config: {registry: {username, password}} for FROM's pulls


class BuildFailed(EngineError):
    """A step failed: the stream's error, with the failed command's exit code (``docker build``'s)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def _line(text: str) -> dict:
    return {"stream": text + "\n"}


class StageState:
    """Where a stage is: its latest image and the config the next image gets."""

    def __init__(self, image: Image | None, config: dict) -> None:
        self.image = image
        self.config = config
        self.args: dict[str, str | None] = {}  # the ARGs declared in this stage (value or None)
        self.cmd_set = False  # a CMD in this stage (then an ENTRYPOINT no longer resets it)
        self.author = ""  # MAINTAINER
        self.meta: dict[str, str] = {}  # the meta ARGs' values (before the first FROM)

    @property
    def shell(self) -> list[str]:
        return list(self.config.get("Shell") or DEFAULT_SHELL)

    def env(self) -> dict[str, str]:
        return dict(e.split("=", 1) for e in self.config.get("Env") or [] if "=" in e)

    def variables(self) -> dict[str, str]:
        """What ``$NAME`` means now: the ARGs, then the ENVs (an ENV wins over an ARG of its name)."""
        return {**{k: v for k, v in self.args.items() if v is not None}, **self.env()}


class Builder:
    def __init__(self, engine: Engine, options: BuildOptions, workdir: str) -> None:
        self.engine = engine
        self.store = engine.store
        self.options = options
        self.workdir = workdir
        self.context = os.path.join(workdir, "context")
        self.sys = Syscalls()
        self.trace = Trace("daemon")
        self.cache = BuildCache(self.store)
        self.used_args: set[str] = set()
        self.stage_images: dict[str, Image | None] = {}  # by name and by index
        self.mounts = 0

    # --- narration ----------------------------------------------------------------------------------
    def note(self, op: str, args: str, result: str = "ok", detail: str = "") -> dict | None:
        event = self.trace.record(op, args, result, detail=detail)
        return {"explain": event._asdict()} if self.options.explain else None

    def kernel_notes(self, since: int) -> list[dict]:
        """The kernel steps of the mounts done for a step (only with explain)."""
        if not self.options.explain:
            return []
        return [{"explain": ev._asdict()} for ev in list(self.sys.trace)[since:]]

    def from_cache(self, state: StageState, key: str, created_by: str, why: str) -> list[dict] | None:
        """On a hit: the stage moves on to the cached image; the lines to print.  None on a miss."""
        hit = None if self.options.nocache else self.cache.lookup(key)
        if hit is None:
            return None
        parent = state.image.short_id if state.image else "scratch"
        note = self.note("cache", f"{created_by.strip()} on {parent}", f"hit {hit.short_id}", why)
        state.image = hit
        return [*([note] if note else []), _line(" ---> Using cache"), _line(f" ---> {hit.short_id}")]

    # --- mounting an image's files ---------------------------------------------------------------------
    def _scratch_dir(self) -> str:
        self.mounts += 1
        directory = os.path.join(self.workdir, f"mount-{self.mounts}")
        os.makedirs(directory)
        return directory

    @contextlib.contextmanager
    def mounted(self, image: Image | None):
        """The image's files, to read (``COPY --from``): its layers under a throw-away upper directory."""
        directory = self._scratch_dir()
        try:
            yield overlay.mount_rootfs(self.sys, self.store.lowerdirs(image) if image else [], directory)
        finally:
            overlay.unmount_rootfs(self.sys, directory, remove=False)
            shutil.rmtree(directory, ignore_errors=True)

    def change(self, image: Image | None, work: Callable[[str], None]) -> NewLayer | None:
        """Mount ``image`` with an empty upper directory, let ``work(root)`` change its files, and
        store what changed as a layer (None if nothing did).  Call under the store's lease."""
        directory = self._scratch_dir()
        try:
            root = overlay.mount_rootfs(self.sys, self.store.lowerdirs(image) if image else [], directory)
            try:
                work(root)
            finally:
                overlay.unmount_rootfs(self.sys, directory, remove=False)
            return store_layer(self.store, os.path.join(directory, "upper"), image)
        finally:
            shutil.rmtree(directory, ignore_errors=True)

    # --- the steps ---------------------------------------------------------------------------------------
    async def run(self, df: dockerfile.Dockerfile) -> AsyncIterator[dict]:
        stages = df.stages[:df.stage_index(self.options.target) + 1] if self.options.target else df.stages
        steps = list(df.meta_args) + [i for s in stages for i in (s.source, *s.instructions)]
        labels = self._label_step(stages[-1])
        total = len(steps) + (1 if labels else 0)
        number = 0
        meta = self._meta_args(df)
        for ins in df.meta_args:
            number += 1
            yield _line(f"Step {number}/{total} : {ins.original}")
        state: StageState | None = None
        for stage in stages:
            number += 1
            yield _line(f"Step {number}/{total} : {stage.source.original}")
            state = StageState(None, {})
            async for msg in self._from(stage, state, meta, df.escape):
                yield msg
            instructions = list(stage.instructions) + ([labels] if labels and stage is stages[-1] else [])
            for ins in instructions:
                number += 1
                yield _line(f"Step {number}/{total} : {ins.original}")
                async for msg in self._step(ins, state, df.escape):
                    yield msg
            self.stage_images[str(stage.index)] = state.image
            if stage.name:
                self.stage_images[stage.name] = state.image
            if state.image is not None:
                yield {"aux": {"ID": state.image.id}}
        unused = sorted(set(self.options.buildargs) - self.used_args - set(PROXY_ARGS) - set(meta))
        if unused:
            yield _line(f"[Warning] One or more build-args [{' '.join(unused)}] were not consumed")
        if state is None or state.image is None:
            raise BuildFailed("No image was generated. Is your Dockerfile empty?")
        self.final = state.image

    def _label_step(self, last: dockerfile.Stage) -> Instruction | None:
        """``--label k=v`` becomes one more LABEL step at the end, as the classic builder adds it."""
        if not self.options.labels:
            return None
        pairs = tuple(sorted(self.options.labels.items()))
        text = "LABEL " + " ".join(f'"{k}"="{v}"' for k, v in pairs)
        return Instruction("LABEL", (), False, (), text, last.source.line, tuple((k, json.dumps(v)) for k, v in pairs))

    def _meta_args(self, df: dockerfile.Dockerfile) -> dict[str, str]:
        """The ARGs before the first FROM, with ``--build-arg`` values: what FROM lines may use."""
        values: dict[str, str] = {}
        for ins in df.meta_args:
            for name, default in ins.pairs:
                given = self.options.buildargs.get(name)
                if name in self.options.buildargs and given is not None:
                    values[name] = given
                    self.used_args.add(name)
                elif default is not None:
                    values[name] = expand(default, values, df.escape)
        return values

    async def _from(self, stage: dockerfile.Stage, state: StageState, meta: dict[str, str],
                    escape: str) -> AsyncIterator[dict]:
        try:
            base = expand(stage.base, meta, escape)
            platform = expand(stage.platform, meta, escape) if stage.platform else None
        except ValueError as e:
            raise BuildFailed(f"FROM (line {stage.source.line}): {e}") from None
        if platform:
            from minicontainer.image.builder import host_architecture

            if platform not in (f"linux/{host_architecture()}", "linux"):
                raise BuildFailed(f"FROM --platform={platform}: this daemon builds and runs linux/"
                                  f"{host_architecture()} only (a RUN could not run another platform's programs)")
        state.meta = meta
        if base.lower() == "scratch":
            state.image, state.config = None, {}
            return
        if base.lower() in self.stage_images:
            state.image = self.stage_images[base.lower()]
            state.config = dict(state.image.config.get("config") or {}) if state.image else {}
        else:
            image = None
            if not self.options.pull:
                with contextlib.suppress(LookupError):
                    image = image_service.find(self.store, base)
            if image is None:
                async for msg in self.engine.pull(base, None, None, self._auth_for(base)):
                    if "error" in msg:
                        raise BuildFailed(msg["error"])
                    yield msg
                try:
                    image = image_service.find(self.store, base)
                except LookupError:
                    raise BuildFailed(f"pull access denied for {base}, repository does not exist") from None
            state.image = image
            state.config = dict(image.config.get("config") or {})
        if state.image is not None:
            yield _line(f" ---> {state.image.short_id}")
        triggers = state.config.pop("OnBuild", None) or []
        if triggers:
            yield _line(f"# Executing {len(triggers)} build trigger{'s' if len(triggers) > 1 else ''}")
            for text in triggers:
                try:
                    trigger = dockerfile.parse_instruction(stage.source.line, text, escape)
                except DockerfileError as e:
                    raise BuildFailed(f"ONBUILD trigger of {base}: {e}") from None
                async for msg in self._step(trigger, state, escape):
                    yield msg

    def _auth_for(self, image: str) -> dict:
        from minicontainer.image.reference import parse

        domain = parse(image).domain
        for server, creds in (self.options.auth or {}).items():
            if isinstance(creds, dict) and server.replace("https://", "").split("/")[0] in (domain, "index." + domain):
                return {**creds, "serveraddress": domain}
        return {}

    async def _step(self, ins: Instruction, state: StageState, escape: str) -> AsyncIterator[dict]:
        loop = asyncio.get_running_loop()
        try:
            if ins.keyword == "RUN":
                async for msg in self._run(ins, state):
                    yield msg
                return
            if ins.keyword in ("COPY", "ADD"):
                created_by, work = await loop.run_in_executor(None, self._prepare_copy, ins, state, escape)
            elif ins.keyword == "WORKDIR":
                created_by, work = self._prepare_workdir(ins, state, escape)
            else:
                created_by, work = self._metadata(ins, state, escape), None
        except (ValueError, OSError) as e:
            raise BuildFailed(f"{ins.keyword} failed (line {ins.line}): {e}") from None
        key = self.cache.key(state.image, created_by, state.config)
        cached = self.from_cache(state, key, created_by, "the same step on the same parent with the same config "
                                 "made this image before: nothing to do")
        if cached is not None:
            for msg in cached:
                yield msg
            return
        if not self.options.nocache:
            note = self.note("cache", created_by.strip(), "miss", "no image was made from this parent by this "
                             "step yet" + (" (the checksum of the files it copies is part of the step)"
                                           if ins.keyword in ("COPY", "ADD") else ""))
            if note:
                yield note
        since = len(list(self.sys.trace))
        image = await loop.run_in_executor(None, self._make, state, work, created_by)
        for msg in self.kernel_notes(since):
            yield msg
        for msg in self._image_notes(state.image, image):
            yield msg
        self.cache.remember(key, state.image, image)
        state.image = image
        yield _line(f" ---> {image.short_id}")

    def _make(self, state: StageState, work: Callable[[str], None] | None, created_by: str) -> Image:
        with self.store.lease():
            layer = self.change(state.image, work) if work is not None else None
            return make_image(self.store, state.image, state.config, layer, created_by=created_by,
                              author=state.author)

    def _image_notes(self, parent: Image | None, image: Image) -> list[dict]:
        if not self.options.explain:
            return []
        notes = []
        if parent is None or image.chain_ids != parent.chain_ids:
            layer = self.store.layer(image.chain_ids[-1])
            notes.append(self.note("layer", layer.diff_id, f"{layer.size} B", "the snapshot of the upper directory "
                                   "(overlay whiteouts written as .wh. files), stored under its digest"))
        else:
            notes.append(self.note("layer", "none", "empty_layer", "only the config changed: the new image shares "
                                   "its parent's layers"))
        notes.append(self.note("image", image.id, "ok", "the config (with one more history entry) hashed: the "
                               "image ID"))
        return [n for n in notes if n]

    # --- RUN ------------------------------------------------------------------------------------------------
    def _build_args_env(self, state: StageState) -> list[str]:
        """The ARGs in effect for a RUN, as KEY=value, sorted (ENV ones win and are not repeated)."""
        env = state.env()
        return sorted(f"{k}={v}" for k, v in state.args.items() if v is not None and k not in env)

    async def _run(self, ins: Instruction, state: StageState) -> AsyncIterator[dict]:
        if state.image is None:
            raise BuildFailed(f"RUN (line {ins.line}): there is nothing to run in an image FROM scratch yet")
        command = list(ins.args) if ins.json else state.shell + [ins.args[0] if ins.args else ""]
        args_env = self._build_args_env(state)
        created_by = " ".join(command)
        if args_env:
            created_by = f"|{len(args_env)} {' '.join(args_env)} {created_by}"
        key = self.cache.key(state.image, created_by, state.config)
        cached = self.from_cache(state, key, created_by, "this command ran on this parent with this config "
                                 "before: its image is reused (a RUN is cached by its text, not by what it "
                                 "would do today)")
        if cached is not None:
            for msg in cached:
                yield msg
            return
        proxies = [f"{k}={v}" for k, v in self.options.buildargs.items() if k in PROXY_ARGS and v is not None]
        body = {"Image": state.image.id, "Cmd": command, "Entrypoint": [],
                "Env": list(state.config.get("Env") or []) + args_env + proxies,
                "WorkingDir": state.config.get("WorkingDir") or "", "User": state.config.get("User") or "",
                "AttachStdout": True, "AttachStderr": True, "HostConfig": {"NetworkMode": self.options.network_mode,
                                                                  "ExtraHosts": list(self.options.extra_hosts)}}
        cid = (await self.engine.create(body, None))["Id"]
        yield _line(f" ---> Running in {cid[:12]}")
        note = self.note("container", f"{cid[:12]} from {state.image.short_id}: {' '.join(command)}", "created",
                         "an intermediate container, made and started as `run` makes them; its writes land in "
                         "its own upper directory")
        if note:
            yield note
        failed = True
        try:
            attachment = await self.engine.attach(cid, stdin=False, stdout=True, stderr=True, logs=False)
            await self.engine.start(cid)
            async for stream, data in attachment.output:
                text = data.decode("utf-8", "replace")
                # The classic builder colours what a step writes to stderr (red), as clients expect.
                yield {"stream": f"\x1b[91m{text}\x1b[0m" if stream == 2 else text}
            code = (await self.engine.wait(cid))["StatusCode"]
            if code != 0:
                raise BuildFailed(f"The command '{' '.join(command)}' returned a non-zero code: {code}", code)
            container = self.engine.get(cid)
            since = len(list(self.sys.trace))

            def commit() -> Image:
                with self.store.lease():
                    layer = store_layer(self.store, container.path("upper"), state.image)
                    return make_image(self.store, state.image, state.config, layer, created_by=created_by,
                                      author=state.author)

            image = await asyncio.get_running_loop().run_in_executor(None, commit)
            for msg in self.kernel_notes(since):
                yield msg
            note = self.note("snapshot", f"upper/ of {cid[:12]}", "layer" if image.chain_ids != state.image.chain_ids
                             else "empty", "what the command wrote, as a layer tar; the container is not needed "
                             "any more")
            if note:
                yield note
            for msg in self._image_notes(state.image, image):
                yield msg
            failed = False
        finally:
            if self.options.forcerm or (self.options.rm and not failed):
                await self.engine.remove(cid, force=True, volumes=True)  # its VOLUMEs: anonymous, as Docker
                if not failed:
                    yield _line(f"Removing intermediate container {cid[:12]}")
        self.cache.remember(key, state.image, image)
        state.image = image
        yield _line(f" ---> {image.short_id}")

    # --- metadata -----------------------------------------------------------------------------------------
    def _expand(self, text: str, state: StageState, escape: str) -> str:
        return expand(text, state.variables(), escape)

    def _metadata(self, ins: Instruction, state: StageState, escape: str) -> str:
        """Apply a config-only instruction to ``state.config``; returns its history text."""
        nop = " ".join(state.shell) + " #(nop)  "
        if ins.keyword == "ARG":
            shown = []
            for name, default in ins.pairs:
                value: str | None
                if name in self.options.buildargs and self.options.buildargs[name] is not None:
                    value = self.options.buildargs[name]
                    self.used_args.add(name)
                elif default is not None:
                    value = self._expand(default, state, escape)
                else:
                    value = state.meta.get(name)  # `ARG NAME` in a stage takes the meta ARG's value
                state.args[name] = value
                shown.append(f"{name}={value}" if default is not None else name)
            return nop + "ARG " + " ".join(shown)
        if ins.keyword == "MAINTAINER":
            state.author = ins.args[0]
            return nop + f"MAINTAINER {ins.args[0]}"
        text = apply_to_config(state.config, ins, state.variables(), escape, cmd_set=state.cmd_set)
        state.cmd_set = state.cmd_set or ins.keyword == "CMD"
        return nop + text

    # --- WORKDIR ------------------------------------------------------------------------------------------
    def _prepare_workdir(self, ins: Instruction, state: StageState, escape: str):
        path = self._expand(ins.args[0], state, escape)
        import posixpath

        workdir = posixpath.normpath(posixpath.join(state.config.get("WorkingDir") or "/", path))
        state.config["WorkingDir"] = workdir

        def work(root: str) -> None:
            _make_dirs(root, workdir, (0, 0))

        return " ".join(state.shell) + f" #(nop) WORKDIR {workdir}", work

    # --- COPY and ADD -------------------------------------------------------------------------------------
    def _prepare_copy(self, ins: Instruction, state: StageState, escape: str):
        """Resolve the sources, checksum them (the cache key), and return the work that copies them."""
        import posixpath

        words = [self._expand(w, state, escape) for w in ins.args]
        sources, dest = words[:-1], words[-1]
        if ins.keyword == "ADD" and any(s.startswith(("http://", "https://", "git@")) for s in sources):
            raise ValueError("ADD from a URL needs the network, which this daemon's builds do not have: download "
                             "the file into the build context, then ADD or COPY it from there")
        source = ins.flag("from")
        root, holder = self._source_root(source)
        try:
            found: list[tuple[str, str]] = []  # (path on this host, name relative to the source root)
            for src in sources:
                found += _resolve_sources(root, src, in_context=source is None)
            checksum = _checksum([p for p, _ in found])
        finally:
            if holder is not None:
                holder.__exit__(None, None, None)
        workdir = state.config.get("WorkingDir") or "/"
        target = posixpath.normpath(posixpath.join(workdir, dest))
        if (dest.endswith("/") or dest in (".", "./")) and target != "/":
            target += "/"  # "a directory": kept in the history text, as Docker writes it
        into_dir = dest.endswith("/") or dest in (".", "/") or len(found) > 1 or any(
            glob.has_magic(s) for s in sources)
        if len(found) > 1 and not (dest.endswith("/") or dest in (".", "/")):
            raise ValueError(f"When using {ins.keyword} with more than one source file, the destination must be a "
                             "directory and end with a /")
        flags = "".join(f" --{n}={v}" for n, v in ins.flags if n != "from")
        where = f" from {source}" if source else ""
        created_by = " ".join(state.shell) + f" #(nop) {ins.keyword}{flags} {checksum}{where} in {target} "
        chown, chmod = ins.flag("chown"), ins.flag("chmod")
        mode = None
        if chmod is not None:
            try:
                mode = int(chmod, 8)
            except ValueError:
                raise ValueError(f"invalid --chmod={chmod}: give an octal mode such as 755") from None
        unpack_archives = ins.keyword == "ADD"

        def work(dest_root: str) -> None:
            owner = _owner(dest_root, chown)
            src_root, src_holder = self._source_root(source)
            try:
                for path, rel in _resolve_sources_again(src_root, sources, source is None):
                    _copy_one(path, rel, dest_root, target, into_dir, owner, mode, unpack_archives)
            finally:
                if src_holder is not None:
                    src_holder.__exit__(None, None, None)

        return created_by, work

    def _source_root(self, source: str | None):
        """Where COPY reads: the context, or (``--from``) a stage's or an image's files, mounted."""
        if source is None:
            return self.context, None
        key = source.lower()
        if key in self.stage_images:
            image = self.stage_images[key]
        else:
            try:
                image = image_service.find(self.store, source)
            except LookupError:
                raise ValueError(f"COPY --from={source}: no stage of that name before this one, and no image "
                                 "of that name here (pull it first)") from None
        holder = self.mounted(image)
        return holder.__enter__(), holder


# --- copying files into an image ------------------------------------------------------------------------


def _resolve_sources(root: str, src: str, *, in_context: bool) -> list[tuple[str, str]]:
    """A COPY source (maybe with wildcards) -> [(path, relative name)]; an error if it matches nothing."""
    import posixpath

    clean = posixpath.normpath("/" + src).lstrip("/") if in_context else posixpath.normpath(src).lstrip("/")
    if in_context and posixpath.normpath(src).startswith(".."):
        raise ValueError(f"Forbidden path outside the build context: {src} ()")
    if glob.has_magic(clean):
        names = sorted(glob.glob(clean, root_dir=root)) if clean else []
    else:
        names = [clean] if os.path.lexists(_inside(root, clean)) or clean in ("", ".") else []
    if not names:
        raise ValueError(f"file not found in build context or excluded by .dockerignore: stat {src}: file does "
                         "not exist" if in_context else f"{src}: no such file or directory in the source image")
    return [(_inside(root, n), n) for n in names]


def _resolve_sources_again(root: str, sources: list[str], in_context: bool) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for src in sources:
        found += _resolve_sources(root, src, in_context=in_context)
    return found


def _inside(root: str, rel: str) -> str:
    """``rel`` under ``root``, symlinks resolved as the image (or context) sees them, never escaping."""
    return secure_join(root, rel) if rel not in ("", ".") else root


def _checksum(paths: list[str]) -> str:
    """What COPY's cache key holds: ``file:<sha256>`` (one file), ``dir:`` (one directory), ``multi:``.

    Each file counts with its name, mode, size, link target and content (not its owner, which the
    CLI's tar sets to 0, nor its time: touching a file changes nothing)."""
    digest = hashlib.sha256()
    for top in paths:
        entries = [(top, "")]
        if os.path.isdir(top) and not os.path.islink(top):
            for dirpath, dirs, files in os.walk(top):
                dirs.sort()
                entries += [(os.path.join(dirpath, n), os.path.relpath(os.path.join(dirpath, n), top))
                            for n in sorted(dirs + files)]
        for path, rel in entries:
            st = os.lstat(path)
            digest.update(f"{rel}\0{stat.S_IMODE(st.st_mode)}\0{stat.S_IFMT(st.st_mode)}\0".encode())
            if stat.S_ISLNK(st.st_mode):
                digest.update(os.readlink(path).encode())
            elif stat.S_ISREG(st.st_mode):
                digest.update(str(st.st_size).encode())
                with open(path, "rb") as f:
                    while chunk := f.read(1 << 20):
                        digest.update(chunk)
    kind = "multi" if len(paths) > 1 else ("dir" if os.path.isdir(paths[0]) and not os.path.islink(paths[0])
                                           else "file")
    return f"{kind}:{digest.hexdigest()}"


def _owner(root: str, chown: str | None) -> tuple[int, int]:
    """``--chown=user:group`` by the image's own /etc/passwd and /etc/group; root by default."""
    if not chown:
        return 0, 0
    from minicontainer.engine.spec import resolve_user

    user = resolve_user(root, chown)
    return user.uid, (user.gid if ":" in chown else user.uid)  # no group: the UID's number, as Docker


def _make_dirs(root: str, path: str, owner: tuple[int, int]) -> str:
    """``mkdir -p`` of ``path`` inside ``root`` (created ones 0755, owned by ``owner``); its real path."""
    parts = [p for p in path.split("/") if p]
    for i in range(1, len(parts) + 1):
        here = secure_join(root, "/".join(parts[:i]))
        if not os.path.lexists(here):
            os.mkdir(here, 0o755)
            os.chown(here, *owner)
        elif not os.path.isdir(here):
            raise ValueError(f"mkdir /{'/'.join(parts[:i])}: not a directory (a file of that name is in the image)")
    return secure_join(root, path)


def _is_archive(path: str) -> bool:
    """ADD unpacks a tar (plain, gzip, bzip2 or xz); any other file is copied as it is."""
    import tarfile

    try:
        return tarfile.is_tarfile(path)
    except OSError:
        return False


def _copy_one(path: str, rel: str, root: str, target: str, into_dir: bool, owner: tuple[int, int],
              mode: int | None, unpack_archives: bool) -> None:
    """Copy one source (a file, or a directory's *contents*, as Docker does) to ``target`` in ``root``."""
    import posixpath

    st = os.lstat(path)
    existing = secure_join(root, target)
    if stat.S_ISDIR(st.st_mode):
        dest_dir = _make_dirs(root, target, owner)
        _copy_tree(path, dest_dir, root, posixpath.join("/", target), owner, mode)
        return
    if unpack_archives and stat.S_ISREG(st.st_mode) and _is_archive(path):
        dest_dir = _make_dirs(root, target, owner)
        _unpack_archive(path, dest_dir, root, posixpath.join("/", target))
        return
    if into_dir or target.endswith("/") or os.path.isdir(existing):
        _make_dirs(root, target, owner)
        target = posixpath.join(target, os.path.basename(rel))
    else:
        _make_dirs(root, posixpath.dirname(target) or "/", owner)
    _place(path, secure_join(root, target), owner, mode)


def _copy_tree(src: str, dest_dir: str, root: str, dest_in_image: str, owner: tuple[int, int],
               mode: int | None) -> None:
    import posixpath

    for name in sorted(os.listdir(src)):
        s = os.path.join(src, name)
        inside = posixpath.join(dest_in_image, name)
        d = secure_join(root, inside)  # re-resolved: the image may have a symlink of that name
        if os.path.isdir(s) and not os.path.islink(s):
            if not os.path.isdir(d) or os.path.islink(d):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(d)
                os.mkdir(d)
            sst = os.lstat(s)
            os.chown(d, *owner)
            os.chmod(d, mode if mode is not None else stat.S_IMODE(sst.st_mode))
            _copy_tree(s, d, root, inside, owner, mode)
            os.utime(d, ns=(sst.st_atime_ns, sst.st_mtime_ns))
        else:
            _place(s, d, owner, mode)


def _place(src: str, dest: str, owner: tuple[int, int], mode: int | None) -> None:
    """One file or symlink, replacing what the image had there; owner, mode and mtime set."""
    st = os.lstat(src)
    if os.path.lexists(dest) and (os.path.isdir(dest) and not os.path.islink(dest)):
        raise ValueError(f"cannot copy {os.path.basename(src)} over the directory {dest}")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(dest)  # never write through what was there (it may be a symlink)
    if stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(src), dest)
        os.lchown(dest, *owner)
        return
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(f"{src}: only files, directories and symlinks can be copied")
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "wb") as out, open(src, "rb") as f:
        shutil.copyfileobj(f, out, 1 << 20)
        os.fchown(out.fileno(), *owner)
        os.fchmod(out.fileno(), mode if mode is not None else stat.S_IMODE(st.st_mode))
    os.utime(dest, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def _unpack_archive(path: str, dest_dir: str, root: str, dest_in_image: str) -> None:
    """ADD of a local tar: unpacked by the layer unpacker (whose rules keep every entry inside) into a
    scratch directory beside the mount, then merged into the destination."""
    import bz2
    import lzma
    import tempfile

    from minicontainer.image.builder import OCI_LAYER
    from minicontainer.image.layers import unpack

    with open(path, "rb") as f:
        head = f.read(6)
    opener = bz2.open if head.startswith(b"BZh") else lzma.open if head.startswith(b"\xfd7zXZ\x00") else None
    with tempfile.TemporaryDirectory(dir=os.path.dirname(root)) as tmp:
        with (opener or open)(path, "rb") as f:
            unpack(f, tmp, OCI_LAYER if opener else "")  # "": gzip, zstd or plain, by its magic number
        _copy_tree(tmp, dest_dir, root, dest_in_image, (0, 0), None)


async def receive_context(upload: AsyncIterator[bytes], directory: str) -> None:
    """The context tar, streamed in from the client and unpacked as it comes (safely: the layer
    unpacker refuses names that would land outside)."""
    from minicontainer.engine.threads import ChunkReader, fed
    from minicontainer.image.layers import LayerError, unpack

    reader = ChunkReader()
    os.makedirs(directory)

    def work() -> None:
        try:
            unpack(reader, directory, "")
        finally:
            reader.close()

    try:
        async with fed(reader, upload):  # the upload goes into the reader while the thread unpacks it
            await asyncio.get_running_loop().run_in_executor(None, work)
    except LayerError as e:
        raise InvalidParameter(f"the build context is not a readable tar: {e}") from None


async def build(engine: Engine, upload: AsyncIterator[bytes], options: BuildOptions) -> AsyncIterator[dict]:
    """``POST /build``: the stream of messages.  A bad Dockerfile fails before the first message
    (an HTTP 400, as dockerd's); a failed step ends the stream with its error."""
    from minicontainer.image.context import IGNORE_FILE, Ignore
    from minicontainer.image.reference import parse

    workdir = os.path.join(engine.data_root, "build", secrets.token_hex(8))
    builder = Builder(engine, options, workdir)
    try:
        await receive_context(upload, builder.context)
        name = options.dockerfile or "Dockerfile"
        try:
            with open(secure_join(builder.context, name), encoding="utf-8") as f:  # noqa: ASYNC230 - small
                text = f.read()
        except (FileNotFoundError, IsADirectoryError):
            raise InvalidParameter(f"Cannot locate specified Dockerfile: {name}") from None
        try:
            df = dockerfile.parse(text, name)
            if options.target:
                df.stage_index(options.target)
        except DockerfileError as e:
            raise InvalidParameter(str(e)) from None
        # What .dockerignore excludes is not there for COPY (the Dockerfile and it included).
        ignore = Ignore.of(builder.context)
        for rel in (name, IGNORE_FILE):
            if ignore.excluded(rel):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(builder.context, rel))
        buffered: list[dict] = []
        try:
            async for msg in builder.run(df):
                if options.quiet:
                    buffered.append(msg)
                else:
                    yield msg
        except BuildFailed as e:
            yield {"errorDetail": {"message": str(e), "code": e.code}, "error": str(e)}
            return
        image = builder.final
        tagged = []
        for tag in options.tags:
            if tag not in image.repo_tags:  # a rebuild that changed nothing rewrites nothing
                engine.store.tag(image.id, tag)
            tagged.append(parse(tag).familiar())
            engine.event_log.image("tag", image.id, tagged[-1])
        if options.quiet:
            yield _line(image.id)
            return
        yield _line(f"Successfully built {image.short_id}")
        for familiar in tagged:
            yield _line(f"Successfully tagged {familiar}")
    finally:
        # Removed in the background: the client need not wait for the context's files to go.
        asyncio.get_running_loop().run_in_executor(None, shutil.rmtree, workdir, True)
