"""One ``docker-registry serve`` process of ours (distribution, Debian's docker-registry) on a free
port of 127.0.0.1: the tests' registries (conftest.py's fixtures) and bench_pull.py's."""

from __future__ import annotations

import http.client
import json
import secrets
import shutil
import socket
import subprocess
import time
from pathlib import Path

from minicontainer.image.reference import Reference, parse
from minicontainer.image.registry import RegistryClient

REGISTRY_BINARY = shutil.which("docker-registry") or "/usr/bin/docker-registry"


class RunningRegistry:
    """A ``docker-registry serve`` process of ours, and what tests need to talk to it.  ``kind`` names
    it in errors (``token``, ``basic``...)."""

    def __init__(self, workdir: Path, kind: str, auth: dict | None = None, middleware: dict | None = None,
                 user: str | None = None, password: str | None = None, log_level: str = "info") -> None:
        self.workdir = workdir
        self.kind = kind
        self.storage = workdir / "storage"
        self.storage.mkdir(parents=True)
        self.log = workdir / "registry.log"
        self.user, self.password = user, password
        self._auth, self._middleware = auth, middleware
        self.log_level = log_level  # "error" for a benchmark: no line written per request
        self.process: subprocess.Popen | None = None
        self.host = ""

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def ref(self, name: str) -> Reference:
        """``registry.ref("tests/app:v1")`` -> ``127.0.0.1:PORT/tests/app:v1``."""
        return parse(f"{self.host}/{name}")

    def credentials(self, host: str) -> tuple[str, str] | None:
        return (self.user, self.password) if self.user and host == self.host else None

    def client(self, **kwargs) -> RegistryClient:
        """A client with this registry's credentials (if any) and quick retries."""
        kwargs.setdefault("credentials", self.credentials)
        kwargs.setdefault("backoff", 0.05)
        kwargs.setdefault("timeout", 10)
        return RegistryClient(**kwargs)

    def blob_path(self, digest: str) -> Path:
        """Where the registry keeps a blob on disk (filesystem driver layout)."""
        algo, hexdigest = digest.split(":", 1)
        return self.storage / "docker/registry/v2/blobs" / algo / hexdigest[:2] / hexdigest / "data"

    def start(self) -> None:
        for _ in range(5):  # a port found free can be taken before the registry binds it: try another
            port = free_port()
            self.host = f"127.0.0.1:{port}"
            config = {
                "version": "0.1",
                "log": {"level": self.log_level, "formatter": "text"},
                "storage": {"filesystem": {"rootdirectory": str(self.storage)}, "delete": {"enabled": True},
                            "maintenance": {"uploadpurging": {"enabled": False}}},
                "http": {"addr": self.host, "secret": secrets.token_hex(16)},
                "health": {"storagedriver": {"enabled": False}},
            }
            if self._auth:
                config["auth"] = self._auth
            if self._middleware:
                config["middleware"] = self._middleware
            path = self.workdir / "config.yml"
            path.write_text(json.dumps(config, indent=1))  # JSON is YAML
            with open(self.log, "ab") as log:
                self.process = subprocess.Popen([REGISTRY_BINARY, "serve", str(path)], stdin=subprocess.DEVNULL,
                                                stdout=log, stderr=subprocess.STDOUT)
            if self._wait_ready(port):
                return
            self.stop()
        raise RuntimeError(f"the {self.kind} registry did not start:\n{self.log_tail()}")

    def _wait_ready(self, port: int, timeout: float = 15) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
                conn.request("GET", "/v2/")
                status = conn.getresponse().status
                conn.close()
                if status in (200, 401):
                    return True
            except OSError:
                pass
            time.sleep(0.01)
        return False

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
