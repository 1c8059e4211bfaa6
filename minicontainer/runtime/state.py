"""What the runtime remembers about a container between commands.

``create``, ``start``, ``kill`` and ``delete`` are separate processes, as with runc.  They share one
directory per container under the runtime's root (``/run/minicontainer-runtime/<id>`` by default)::

    state.json    id, bundle, init's PID and start time, the cgroup, annotations, later hooks
    exec.fifo     present while the container is "created": init is blocked opening it
    events.jsonl  the kernel steps of create and start, for --explain and the notebooks

The status is never stored; it is *observed*, so it cannot go stale:

* ``created``: init is alive and exec.fifo still exists (start has not been called);
* ``running``: init is alive and has been started;
* ``stopped``: init is gone (or is a zombie).  A PID can be reused by an unrelated process after
  ours exits, so "alive" also checks that the process's start time is the one recorded.
"""

from __future__ import annotations

import errno
import json
import os
import re
import time

from minicontainer.runtime.errors import ContainerNotFound, RuntimeFailure

DEFAULT_ROOT = "/run/minicontainer-runtime"
OCI_VERSION = "1.2.0"
_VALID_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,127}$")


def check_id(container_id: str) -> None:
    if not _VALID_ID.match(container_id):
        raise RuntimeFailure(f"invalid container id '{container_id}': use letters, digits and _ . + - "
                             "(at most 128, not starting with a punctuation mark)")


def process_start_time(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat (clock ticks after boot), or None if there is no such live process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    fields = data[data.rindex(b")") + 2:].split()
    if fields[0] in (b"Z", b"X"):  # a zombie has exited; it only waits to be reaped
        return None
    return int(fields[19])


class State:
    """One container's record.  (A plain class: this module is on every container's start-up path,
    and ``dataclasses`` alone costs more to import than the rest of the runtime.)"""

    # What state.json holds.
    SAVED = ("id", "bundle", "pid", "start_time", "created", "cgroup", "annotations", "hooks")

    def __init__(self, id: str, bundle: str, root: str, pid: int = 0, start_time: int = 0,
                 created: str = "", cgroup: dict | None = None, annotations: dict | None = None,
                 hooks: dict | None = None) -> None:
        self.id = id
        self.bundle = bundle
        self.root = root  # the runtime's state root (not saved: it is where the file is)
        self.pid = pid  # init's PID on the host
        self.start_time = start_time  # init's start time, to tell it from a later process with its PID
        self.created = created
        self.cgroup = cgroup or {}  # Cgroup.to_state(): enough to find and remove it again
        self.annotations = annotations or {}
        self.hooks = hooks or {}  # poststart and poststop hooks, kept from create (runtime/hooks.py)
        # With process.terminal: the pseudo-terminal's master side, open in the creating process only
        # (a file descriptor cannot be saved; `create --console-socket` hands it on).
        self.console_fd = -1

    @property
    def dir(self) -> str:
        return os.path.join(self.root, self.id)

    @property
    def fifo(self) -> str:
        return os.path.join(self.dir, "exec.fifo")

    @property
    def events_file(self) -> str:
        return os.path.join(self.dir, "events.jsonl")

    # -- lifecycle of the directory ----------------------------------------------------------------
    @classmethod
    def reserve(cls, root: str, container_id: str, bundle: str) -> State:
        """Claim the id: mkdir is atomic, so two concurrent creates cannot both get it."""
        check_id(container_id)
        os.makedirs(root, mode=0o711, exist_ok=True)
        st = cls(id=container_id, bundle=bundle, root=root,
                 created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        try:
            os.mkdir(st.dir, 0o711)
        except FileExistsError:
            raise RuntimeFailure(f"container '{container_id}' already exists (delete it first, or choose "
                                 "another id)") from None
        st.save()  # status "creating" (no PID yet): visible to list, removable by delete --force
        return st

    @classmethod
    def load(cls, root: str, container_id: str) -> State:
        check_id(container_id)
        try:
            with open(os.path.join(root, container_id, "state.json"), encoding="utf-8") as f:
                data = json.load(f)
        except FileNotFoundError:
            raise ContainerNotFound(container_id) from None
        return cls(root=root, **{k: v for k, v in data.items() if k in cls.SAVED})

    def save(self) -> None:
        """Write state.json atomically: a reader sees the old file or the new one, never half."""
        tmp = os.path.join(self.dir, ".state.json.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({k: getattr(self, k) for k in self.SAVED}, f, indent=1)
        os.rename(tmp, os.path.join(self.dir, "state.json"))

    def remove(self) -> None:
        """Remove the files the runtime made (and only those), then the directory."""
        for name in ("state.json", ".state.json.tmp", "exec.fifo", "events.jsonl"):
            remove_quietly(os.path.join(self.dir, name))
        try:
            os.rmdir(self.dir)
        except FileNotFoundError:
            pass

    # -- what is observed ---------------------------------------------------------------------------
    def alive(self) -> bool:
        return self.pid > 0 and process_start_time(self.pid) == self.start_time

    @property
    def status(self) -> str:
        if not self.pid:
            return "creating"
        if not self.alive():
            return "stopped"
        return "created" if os.path.exists(self.fifo) else "running"

    def oci(self) -> dict:
        """The state as the OCI runtime spec defines it (``runtime.md``, "State")."""
        status = self.status
        out = {"ociVersion": OCI_VERSION, "id": self.id, "status": status,
               "pid": self.pid if status in ("created", "running") else 0, "bundle": self.bundle,
               "created": self.created, "annotations": self.annotations}
        return out


def list_ids(root: str) -> list[str]:
    try:
        names = os.listdir(root)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if os.path.exists(os.path.join(root, n, "state.json")))


def remove_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError as e:
        if e.errno != errno.ENOENT:
            raise
