"""The Python client for notebooks, shaped like docker-py::

    import minicontainer
    client = minicontainer.from_env()
    client.containers.run("busybox", "echo hi")          # b'hi\\n'
    box = client.containers.run("busybox", "sleep 60", detach=True)
    box.logs(); box.stop(); box.wait(); box.remove()
    client.images.pull("busybox"); client.images.list()
    data = client.volumes.create("data"); client.volumes.list(); data.remove()

It speaks the Engine API to ``minicontainerd`` over its unix socket (starting the daemon if it is
not running, as root), as docker-py speaks to dockerd.  In a notebook, containers and images show
themselves as small tables.
"""

from __future__ import annotations

import json
import shlex
from collections import namedtuple

from minicontainer.client.api import APIClient, APIError, registry_auth


class ContainerError(Exception):
    """``containers.run`` of a program that exited non-zero (docker-py raises the same)."""

    def __init__(self, container: Container, exit_status: int, command, image: str, stderr: bytes) -> None:
        super().__init__(f"Command '{command}' in image '{image}' returned non-zero exit status {exit_status}: "
                         f"{stderr.decode(errors='replace')}")
        self.container = container
        self.exit_status = exit_status
        self.stderr = stderr


# What ``exec_run`` returns, as docker-py's: the exit code (None while it may still run: detached or
# streamed) and the output (bytes; ``(stdout, stderr)`` with ``demux``; an iterator with ``stream``;
# the connection itself with ``socket``).  (collections' namedtuple, not typing's NamedTuple: every
# command of the CLI imports this package, and ``typing`` alone costs it 2 ms.)
ExecResult = namedtuple("ExecResult", ["exit_code", "output"])


class Model:
    """What docker-py's objects share: the client they came from and the daemon's JSON (``attrs``)."""

    def __init__(self, client: Client, attrs: dict) -> None:
        self.client = client
        self.attrs = attrs

    @property
    def id(self) -> str:
        return self.attrs["Id"]

    @property
    def short_id(self) -> str:
        """The 12 hex digits docker prints (an image ID's ``sha256:`` prefix left out)."""
        return self.id.split(":", 1)[-1][:12]

    def __eq__(self, other: object) -> bool:
        """The same object of the daemon's (as docker-py compares them: ``volume in client.volumes.list()``)."""
        return isinstance(other, self.__class__) and self.id == other.id

    def __hash__(self) -> int:
        return hash(f"{self.__class__.__name__}:{self.id}")


class Container(Model):

    @property
    def name(self) -> str:
        return self.attrs.get("Name", "").lstrip("/")

    @property
    def status(self) -> str:
        return self.attrs.get("State", {}).get("Status", "")

    def reload(self) -> None:
        self.attrs = self.client.api.json("GET", f"/containers/{self.id}/json")

    def start(self) -> None:
        self.client.api.request("POST", f"/containers/{self.id}/start").read()

    def stop(self, timeout: int | None = None) -> None:
        self.client.api.request("POST", f"/containers/{self.id}/stop", {"t": timeout}).read()

    def kill(self, signal: str | int = "SIGKILL") -> None:
        self.client.api.request("POST", f"/containers/{self.id}/kill", {"signal": signal}).read()

    def restart(self, timeout: int | None = None) -> None:
        self.client.api.request("POST", f"/containers/{self.id}/restart", {"t": timeout}).read()

    def wait(self, condition: str = "not-running") -> dict:
        return self.client.api.json("POST", f"/containers/{self.id}/wait", {"condition": condition})

    def remove(self, force: bool = False, v: bool = False) -> None:
        """``v``: its anonymous volumes go too (``docker rm -v``)."""
        self.client.api.request("DELETE", f"/containers/{self.id}", {"force": int(force), "v": int(v)}).read()

    def logs(self, *, stdout: bool = True, stderr: bool = True, timestamps: bool = False, tail: str | int = "all",
             since: float | None = None, stream: bool = False, follow: bool | None = None):
        """The output so far (bytes), or with ``stream=True`` an iterator of it as it comes (following
        the container until it ends, as docker-py's ``follow`` defaults to with ``stream``)."""
        follow = stream if follow is None else follow
        resp = self.client.api.request("GET", f"/containers/{self.id}/logs",
                                       {"stdout": int(stdout), "stderr": int(stderr), "timestamps": int(timestamps),
                                        "tail": tail, "since": since, "follow": int(follow)})
        chunks = (data for _kind, data in self.client.api.frames(resp))
        return chunks if stream else b"".join(chunks)

    def exec_run(self, cmd: str | list[str], stdout: bool = True, stderr: bool = True, stdin: bool = False,
                 tty: bool = False, privileged: bool = False, user: str = "", detach: bool = False,
                 stream: bool = False, socket: bool = False, environment: dict | list | None = None,
                 workdir: str | None = None, demux: bool = False) -> ExecResult:
        """Run ``cmd`` in this (running) container, as docker-py's ``exec_run``: the exec instance is
        created, started, its output read to the end, then its exit code asked for."""
        if isinstance(environment, dict):
            environment = [f"{k}={v}" for k, v in environment.items()]
        api = self.client.api
        exec_id = api.json("POST", f"/containers/{self.id}/exec", None, {
            "Cmd": shlex.split(cmd) if isinstance(cmd, str) else list(cmd), "AttachStdin": stdin,
            "AttachStdout": stdout, "AttachStderr": stderr, "Tty": tty, "Privileged": privileged, "User": user,
            "Env": environment or [], "WorkingDir": workdir or ""})["Id"]
        if detach:
            api.request("POST", f"/exec/{exec_id}/start", None, {"Detach": True, "Tty": tty}).read()
            return ExecResult(None, b"")
        resp = api.exec_start(exec_id, tty=tty)
        if socket:
            return ExecResult(None, resp)
        frames = api.frames(resp)
        if stream:
            if demux:
                return ExecResult(None, (((data, None) if kind == 1 else (None, data)) for kind, data in frames))
            return ExecResult(None, (data for _kind, data in frames))
        chunks = list(frames)  # until the daemon closes the stream: the process has exited
        resp.close()
        code = api.json("GET", f"/exec/{exec_id}/json")["ExitCode"]
        if demux:
            out, err = (b"".join(data for kind, data in chunks if kind == k) for k in (1, 2))
            return ExecResult(code, (out or None, err or None))
        return ExecResult(code, b"".join(data for _kind, data in chunks))

    def top(self) -> dict:
        return self.client.api.json("GET", f"/containers/{self.id}/top")

    def pause(self) -> None:
        """Freeze every process of the container (the cgroup freezer); :meth:`unpause` thaws them."""
        self.client.api.request("POST", f"/containers/{self.id}/pause").read()

    def unpause(self) -> None:
        self.client.api.request("POST", f"/containers/{self.id}/unpause").read()

    def update(self, **limits) -> dict:
        """Change the limits while it runs, docker-py's names: ``mem_limit="64m"``, ``memswap_limit``,
        ``mem_reservation``, ``cpu_quota``, ``cpu_period``, ``cpu_shares``, ``cpuset_cpus``,
        ``cpuset_mems``, ``blkio_weight``, ``nano_cpus``, ``pids_limit``."""
        from minicontainer.units import parse_bytes

        body = {}
        for name, value in limits.items():
            if name not in UPDATE_FIELDS:
                raise TypeError(f"update() got an unexpected keyword argument '{name}'")
            body[UPDATE_FIELDS[name]] = parse_bytes(value) if isinstance(value, str) and name.startswith("mem") \
                else value
        return self.client.api.json("POST", f"/containers/{self.id}/update", body=body)

    def stats(self, stream: bool = True, one_shot: bool | None = None):
        """The stats document (a dict) with ``stream=False``, else an iterator of them, one a second."""
        params = {"stream": int(stream), "one-shot": None if one_shot is None else int(one_shot)}
        if not stream:
            return self.client.api.json("GET", f"/containers/{self.id}/stats", params)
        return self.client.api.stream_json("GET", f"/containers/{self.id}/stats", params)

    def sample(self, duration: float = 10.0, interval: float = 0.1):
        """Record its use (memory, CPU, throttling, processes, I/O, and its events) every ``interval``
        seconds for ``duration`` seconds or until it stops: a :class:`~minicontainer.observe.sampler.Series`
        to print, index, or draw with :mod:`minicontainer.observe.plots`."""
        from minicontainer.observe.sampler import sample

        return sample(self, duration, interval=interval, client=self.client)

    def diff(self) -> list[dict]:
        return self.client.api.json("GET", f"/containers/{self.id}/changes") or []

    def commit(self, repository: str | None = None, tag: str | None = None, *, message: str = "",
               author: str = "", changes: list[str] | None = None, pause: bool = True) -> Image:
        """docker-py's ``commit``: the container's changes (its upper layer) as a new image's top layer."""
        reply = self.client.api.json("POST", "/commit", {"container": self.id, "repo": repository, "tag": tag,
                                                         "comment": message, "author": author, "pause": int(pause),
                                                         "changes": changes or []}, {})
        return self.client.images.get(reply["Id"])

    def __repr__(self) -> str:
        return f"<Container: {self.short_id}>"

    def _repr_html_(self) -> str:
        state = self.attrs.get("State", {})
        rows = [("ID", self.short_id), ("Name", self.name), ("Image", self.attrs.get("Config", {}).get("Image", "")),
                ("Command", shlex.join([self.attrs.get("Path", ""), *self.attrs.get("Args", [])])),
                ("Status", state.get("Status", "")), ("PID", state.get("Pid", "")),
                ("Exit code", state.get("ExitCode", "")), ("OOM killed", state.get("OOMKilled", ""))]
        return _html_table(f"container {self.name}", rows)


class Image(Model):
    @property
    def tags(self) -> list[str]:
        return self.attrs.get("RepoTags") or []

    def save(self, *, format: str = "docker-archive") -> bytes:
        """The image as ``docker save`` writes it (a tar); ``format="oci-archive"`` (ours): an OCI image
        layout, with the manifest, config and layers exactly as a registry serves them."""
        return self.client.api.request("GET", f"/images/{self.id}/get", {"format": format}).read()

    def __repr__(self) -> str:
        return f"<Image: {', '.join(repr(t) for t in self.tags)}>"

    def _repr_html_(self) -> str:
        from minicontainer.units import human_size

        rows = [("ID", self.short_id), ("Tags", ", ".join(self.tags)), ("Size", human_size(self.attrs.get("Size", 0))),
                ("Layers", len((self.attrs.get("RootFS") or {}).get("Layers") or []) or "")]
        return _html_table("image", rows)


# docker-py's keyword arguments of create() for the confinement -> the Engine API's HostConfig fields
CONFINEMENT_FIELDS = {"privileged": "Privileged", "cap_add": "CapAdd", "cap_drop": "CapDrop",
                      "security_opt": "SecurityOpt", "devices": "Devices", "device_cgroup_rules": "DeviceCgroupRules",
                      "group_add": "GroupAdd", "sysctls": "Sysctls", "shm_size": "ShmSize", "ulimits": "Ulimits",
                      "oom_score_adj": "OomScoreAdj", "oom_kill_disable": "OomKillDisable",
                      "mem_swappiness": "MemorySwappiness", "cgroup_parent": "CgroupParent"}


def confinement_fields(options: dict) -> dict:
    """docker-py's confinement arguments -> HostConfig fields, converted as docker-py converts them:
    ``devices`` strings split into PathOnHost, PathInContainer, CgroupPermissions; ``group_add``
    entries as strings; ``shm_size`` with units (``"128m"``)."""
    from minicontainer.units import parse_bytes

    out = {}
    for name, value in options.items():
        if name not in CONFINEMENT_FIELDS:
            raise TypeError(f"create() got an unexpected keyword argument '{name}'")
        if name == "devices":
            value = [_device(d) if isinstance(d, str) else d for d in value or []]
        elif name == "group_add":
            value = [str(g) for g in value or []] or None
        elif name == "shm_size" and isinstance(value, str):
            value = parse_bytes(value)
        out[CONFINEMENT_FIELDS[name]] = value
    return out


def _device(text: str) -> dict:
    """``/dev/sdb``, ``/dev/sdb:/dev/xvdb``, ``/dev/sdb:/dev/xvdb:r`` (docker-py's parse_devices)."""
    parts = text.split(":")
    host, inside, mode = parts[0], parts[1] if len(parts) > 1 else parts[0], parts[2] if len(parts) > 2 else "rwm"
    return {"PathOnHost": host, "PathInContainer": inside, "CgroupPermissions": mode}


class Volume(Model):
    """A named volume: ``attrs`` is ``docker volume inspect``'s JSON; its ID is its name."""

    @property
    def id(self) -> str:
        return self.attrs["Name"]

    @property
    def name(self) -> str:
        return self.attrs["Name"]

    def reload(self) -> None:
        self.attrs = self.client.api.inspect_volume(self.id)

    def remove(self, force: bool = False) -> None:
        """Remove it and its data (refused while a container uses it)."""
        self.client.api.remove_volume(self.id, force=force)

    def __repr__(self) -> str:
        return f"<Volume: {self.short_id}>"

    def _repr_html_(self) -> str:
        labels = ", ".join(f"{k}={v}" for k, v in (self.attrs.get("Labels") or {}).items())
        options = ", ".join(f"{k}={v}" for k, v in (self.attrs.get("Options") or {}).items())
        rows = [("Name", self.name), ("Driver", self.attrs.get("Driver", "")),
                ("Mountpoint", self.attrs.get("Mountpoint", "")), ("Created", self.attrs.get("CreatedAt", "")),
                ("Labels", labels), ("Options", options)]
        return _html_table("volume", rows)


class VolumeCollection:
    """``client.volumes``, as docker-py's."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def create(self, name: str | None = None, *, driver: str | None = None, driver_opts: dict | None = None,
               labels: dict | None = None) -> Volume:
        attrs = self.client.api.create_volume(name, driver, driver_opts, labels)
        return Volume(self.client, attrs)

    def get(self, volume_id: str) -> Volume:
        return Volume(self.client, self.client.api.inspect_volume(volume_id))

    def list(self, filters: dict | None = None) -> list[Volume]:
        return [Volume(self.client, attrs) for attrs in self.client.api.volumes(filters)["Volumes"] or []]

    def prune(self, filters: dict | None = None) -> dict:
        return self.client.api.prune_volumes(filters)


# docker-py's keyword arguments of update() -> the Engine API's fields
UPDATE_FIELDS = {"mem_limit": "Memory", "memswap_limit": "MemorySwap", "mem_reservation": "MemoryReservation",
                 "cpu_quota": "CpuQuota", "cpu_period": "CpuPeriod", "cpu_shares": "CpuShares",
                 "cpuset_cpus": "CpusetCpus", "cpuset_mems": "CpusetMems", "blkio_weight": "BlkioWeight",
                 "nano_cpus": "NanoCpus", "pids_limit": "PidsLimit"}


def volume_binds(volumes: dict | list | None) -> list[str]:
    """docker-py's ``volumes`` -> ``HostConfig.Binds``: ``{"/src": {"bind": "/dst", "mode": "ro"}}``
    (or ``"ro": True``, ``"propagation": "rshared"``, or just ``{"/src": "/dst"}``), or a list of
    ``"/src:/dst[:mode]"`` as they are."""
    if not isinstance(volumes, dict):
        return list(volumes or [])
    binds = []
    for source, spec in volumes.items():
        if isinstance(spec, str):
            binds.append(f"{source}:{spec}:rw")
            continue
        mode = ("ro" if spec["ro"] else "rw") if "ro" in spec else spec.get("mode") or "rw"
        if spec.get("propagation"):
            mode += "," + spec["propagation"]
        binds.append(f"{source}:{spec['bind']}:{mode}")
    return binds


class ContainerCollection:
    def __init__(self, client: Client) -> None:
        self.client = client

    def create(self, image: str, command: str | list[str] | None = None, *, name: str | None = None,
               environment: list[str] | dict | None = None, working_dir: str | None = None, user: str | None = None,
               hostname: str | None = None, entrypoint: str | list[str] | None = None, auto_remove: bool = False,
               init: bool = False, mem_limit: int | str | None = None, nano_cpus: int | None = None,
               pids_limit: int | None = None, labels: dict | None = None, stdin_open: bool = False,
               pid_mode: str | None = None, uts_mode: str | None = None, ipc_mode: str | None = None,
               cgroupns: str | None = None, network_mode: str | None = None, volumes: dict | list | None = None,
               mounts: list | None = None, tmpfs: dict | list | None = None, read_only: bool = False,
               volumes_from: list[str] | None = None, **confinement) -> Container:
        """docker-py's ``containers.create``, with its argument names.  ``pid_mode``, ``uts_mode``,
        ``ipc_mode``, ``cgroupns`` and ``network_mode`` share a namespace instead of making one:
        ``"host"``, or for PID, IPC and network ``"container:NAME"``; ``network_mode="none"``: a network
        namespace with only ``lo``.  ``volumes`` in docker-py's forms (``{"/host/dir": {"bind": "/data",
        "mode": "ro"}, "myvolume": {"bind": "/vol"}}`` or ``["/host/dir:/data:ro"]``), ``mounts`` as
        docker-py's ``Mount`` dicts, ``tmpfs`` (``{"/run": "size=64m"}``), ``read_only``, ``volumes_from``.
        The confinement too (:func:`confinement_fields`): ``privileged``, ``cap_add``, ``devices=["/dev/sdb:/dev/xvdb:r"]``, ``sysctls={"net.ipv4.ip_forward": "1"}``,
        ``ulimits=[{"Name": "nofile", "Soft": 100, "Hard": 200}]``, ``shm_size="128m"``, ``group_add``..."""
        from minicontainer.units import parse_bytes

        if isinstance(environment, dict):
            environment = [f"{k}={v}" for k, v in environment.items()]
        body = {"Image": image, "Cmd": shlex.split(command) if isinstance(command, str) else command,
                "Env": environment or [], "WorkingDir": working_dir or "", "User": user or "",
                "Hostname": hostname or "", "Labels": labels or {}, "OpenStdin": stdin_open,
                "HostConfig": {"AutoRemove": auto_remove, "Init": init, "NanoCpus": nano_cpus or 0,
                               "PidsLimit": pids_limit, "PidMode": pid_mode or "", "UTSMode": uts_mode or "",
                               "IpcMode": ipc_mode or "", "CgroupnsMode": cgroupns or "",
                               "NetworkMode": network_mode or "",
                               "Memory": parse_bytes(mem_limit) if isinstance(mem_limit, str) else mem_limit or 0,
                               **confinement_fields(confinement)}}
        if entrypoint is not None:
            body["Entrypoint"] = shlex.split(entrypoint) if isinstance(entrypoint, str) else entrypoint
        binds = volume_binds(volumes)
        body["HostConfig"].update({
            "Binds": binds or None, "Mounts": mounts or None, "ReadonlyRootfs": read_only,
            "Tmpfs": dict(t.split(":", 1) if ":" in t else (t, "") for t in tmpfs) if isinstance(tmpfs, list) else tmpfs,
            "VolumesFrom": volumes_from or None})
        if binds:
            body["Volumes"] = {(bind.split(":") + [""])[1] or bind: {} for bind in binds}  # as docker-py sends them
        try:
            cid = self.client.api.json("POST", "/containers/create", {"name": name}, body)["Id"]
        except APIError as e:
            if e.status != 404:
                raise
            self.client.images.pull(image)
            cid = self.client.api.json("POST", "/containers/create", {"name": name}, body)["Id"]
        return self.get(cid)

    def run(self, image: str, command: str | list[str] | None = None, *, detach: bool = False,
            remove: bool = False, stdout: bool = True, stderr: bool = False, **kwargs) -> Container | bytes:
        """Like docker-py: the container if ``detach``, else its output (a ContainerError if it failed)."""
        container = self.create(image, command, **kwargs)
        container.start()
        if detach:
            container.reload()
            return container
        status = container.wait()["StatusCode"]
        out = container.logs(stdout=stdout, stderr=stderr)
        if status != 0:
            err = container.logs(stdout=False, stderr=True)
            if remove:
                container.remove(force=True)
            raise ContainerError(container, status, command, image, err)
        if remove:
            container.remove(force=True)
        return out

    def get(self, ref: str) -> Container:
        return Container(self.client, self.client.api.json("GET", f"/containers/{ref}/json"))

    def list(self, all: bool = False, filters: dict | None = None) -> list[Container]:
        rows = self.client.api.json("GET", "/containers/json",
                                    {"all": int(all), "filters": json.dumps(filters or {})})
        return [self.get(row["Id"]) for row in rows]

    def prune(self) -> dict:
        return self.client.api.json("POST", "/containers/prune")


class ImageCollection:
    def __init__(self, client: Client) -> None:
        self.client = client

    def pull(self, repository: str, tag: str | None = None, *, progress=None) -> Image:
        """Pull, with a progress callback or (in a notebook, ``progress=True``) per-layer bars."""
        from minicontainer.image.reference import parse

        ref = parse(f"{repository}:{tag}" if tag else repository)
        bars = None
        if progress is True:
            from minicontainer.observe.progress import PullBars

            progress = bars = PullBars()
        try:
            for msg in self.client.api.stream_json("POST", "/images/create",
                                                   {"fromImage": ref.name, "tag": ref.digest or ref.tag},
                                                   headers=registry_auth(str(ref))):
                if "error" in msg:
                    raise APIError(500, msg["error"])
                if progress:
                    progress(msg)
        finally:
            if bars is not None:
                bars.close()
        return self.get(str(ref))

    def get(self, name: str) -> Image:
        return Image(self.client, self.client.api.json("GET", f"/images/{name}/json"))

    def list(self) -> list[Image]:
        return [self.get(row["Id"]) for row in self.client.api.json("GET", "/images/json")]

    def remove(self, name: str, force: bool = False) -> list[dict]:
        return self.client.api.json("DELETE", f"/images/{name}", {"force": int(force)})


class Client:
    def __init__(self, socket_path: str | None = None) -> None:
        self.api = APIClient(socket_path)
        self.containers = ContainerCollection(self)
        self.images = ImageCollection(self)
        self.volumes = VolumeCollection(self)

    def version(self) -> dict:
        return self.api.json("GET", "/version")

    def info(self) -> dict:
        return self.api.json("GET", "/info")

    def events(self, since=None, until=None, filters: dict | None = None, decode: bool = True):
        """docker-py's ``events``: the daemon's events (create, start, die, stop, kill, destroy...) as they
        happen; with ``until``, those of the range, then the iterator ends.  ``since``/``until``: Unix
        seconds, or datetimes."""
        def stamp(t):
            if t is None:
                return None
            return f"{t.timestamp() if hasattr(t, 'timestamp') else t:.9f}"

        params = {"since": stamp(since), "until": stamp(until), "filters": json.dumps(filters) if filters else None}
        if not decode:
            raise ValueError("events(decode=False) is not supported: this client yields decoded dicts only")
        return self.api.stream_json("GET", "/events", params)

    def ping(self) -> bool:
        return self.api.request("GET", "/_ping").read() == b"OK"

    def close(self) -> None:
        """Nothing to close: each request has its own connection (kept for docker-py's shape)."""


def from_env() -> Client:
    """A client for the daemon named by MINICONTAINER_HOST (unix:///...), else the default socket."""
    return Client()


def _html_table(title: str, rows: list[tuple[str, object]]) -> str:
    import html  # only in a notebook: the CLI imports this package for its API client, and starts faster

    body = "".join(f"<tr><th style='text-align:left'>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
                   for k, v in rows)
    return f"<table><caption>{html.escape(title)}</caption>{body}</table>"
