"""Following a container's output files: woken by inotify, or (without it) by looking."""

from __future__ import annotations

import asyncio
import errno
import json
import os
from pathlib import Path

import pytest

from minicontainer.engine.logs import LogTail, OutputWatcher
from minicontainer.kernel.syscalls import KernelError, Syscalls


class Box:
    """The part of a container a tail needs: its directory."""

    def __init__(self, directory: Path, log_config: dict | None = None) -> None:
        self.directory = directory
        self.record = {"HostConfig": {"LogConfig": log_config or {"Type": "json-file", "Config": {}}}}
        for name in ("stdout.raw", "stderr.raw"):
            (directory / name).touch()

    def path(self, name: str) -> str:
        return str(self.directory / name)


def _follow(directory: Path, sys: Syscalls) -> tuple[OutputWatcher, LogTail, asyncio.Queue]:
    """A watcher, and a tail following ``directory``'s files with one live reader (as ``logs -f``)."""
    watcher = OutputWatcher(sys)
    tail = LogTail(Box(directory))
    lines: asyncio.Queue = asyncio.Queue()
    tail.readers.append(lines)
    tail.start(watcher, sys)
    return watcher, tail, lines


def test_a_write_wakes_the_daemon_without_any_polling(tmp_path):
    async def scenario() -> None:
        sys = Syscalls()
        watcher, tail, lines = _follow(tmp_path, sys)
        assert tail.task is None and len(tail.watches) == 2  # no polling task: inotify only
        _append(tmp_path / "stderr.raw", b"oops\n")  # as the program would
        stream, line, _stamp = await asyncio.wait_for(lines.get(), 2)
        assert (stream, line) == (2, b"oops\n")
        _append(tmp_path / "stdout.raw", b"no newline at the end")
        tail.finish()
        assert (await lines.get())[:2] == (1, b"no newline at the end")  # the rest, at the end
        assert await lines.get() is None
        assert watcher.tails == {} and tail.watches == []
        watcher.close()
        ops = [e.op for e in sys.trace.events]
        assert ops == ["inotify_init1", "inotify_add_watch", "inotify_add_watch"]

    asyncio.run(scenario())
    log = [json.loads(line) for line in (tmp_path / "json.log").read_text().splitlines()]
    assert [(e["stream"], e["log"]) for e in log] == [("stderr", "oops\n"), ("stdout", "no newline at the end")]


def _append(path: Path, data: bytes) -> None:
    with open(path, "ab") as f:
        f.write(data)


class NoWatches(Syscalls):
    """The first watch is given, the second refused: fs.inotify.max_user_watches is reached."""

    def inotify_add_watch(self, fd: int, path: str, mask: int, *, detail: str = "") -> int:
        if path.endswith("stderr.raw"):
            raise KernelError("inotify_add_watch", path, errno.ENOSPC)
        return super().inotify_add_watch(fd, path, mask, detail=detail)


def test_without_inotify_the_tail_looks_now_and_then(tmp_path):
    async def scenario() -> None:
        watcher, tail, lines = _follow(tmp_path, NoWatches())
        assert tail.task is not None and tail.watches == []
        assert watcher.tails == {}  # the watch that was given is taken back: all or nothing
        _append(tmp_path / "stdout.raw", b"polled\n")
        assert (await asyncio.wait_for(lines.get(), 2))[:2] == (1, b"polled\n")
        tail.finish()
        watcher.close()

    asyncio.run(scenario())


def test_json_file_rotates_at_max_size_and_logs_reads_across_the_files(tmp_path):
    """As Docker's json-file: a line that would pass max-size first moves json.log to json.log.1
    (.1 to .2, the oldest beyond max-file deleted); the reader takes the rotated files first."""
    from minicontainer.engine.logs import log_files, write_log

    box = Box(tmp_path, {"Type": "json-file", "Config": {"max-size": "1k", "max-file": "3"}})
    for n in range(200):
        write_log(box, [{"log": f"line {n}\n", "stream": "stdout", "time": "2026-12-05T01:00:00.000000000Z"}])
    files = log_files(box)
    assert [os.path.basename(f) for f in files] == ["json.log.2", "json.log.1", "json.log"]
    assert all(os.path.getsize(f) <= 1024 for f in files)
    kept = [json.loads(line)["log"] for f in files for line in Path(f).read_text().splitlines()]
    assert kept[-1] == "line 199\n" and kept == [f"line {n}\n" for n in range(200 - len(kept), 200)]  # in order
    (tmp_path / "none").mkdir()
    none = Box(tmp_path / "none", {"Type": "none", "Config": {}})
    write_log(none, [{"log": "x\n", "stream": "stdout", "time": "2026-12-05T01:00:00.000000000Z"}])
    assert not os.path.exists(none.path("json.log"))


@pytest.mark.parametrize(("config", "message"), [
    ({"Type": "syslog"}, "the log driver 'syslog' is not supported"),
    ({"Type": "json-file", "Config": {"compress": "true"}}, "unknown log opt 'compress' for json-file log driver"),
    ({"Type": "none", "Config": {"max-size": "1m"}}, "unknown log opt 'max-size' for none log driver"),
    ({"Config": {"max-size": "1x"}}, "invalid size"),
    ({"Config": {"max-size": "1m", "max-file": "0"}}, "max-file cannot be less than 1"),
])
def test_log_options_not_honoured_are_refused(config, message):
    from minicontainer.engine import logs
    from minicontainer.engine.errors import InvalidParameter

    with pytest.raises(InvalidParameter, match=message):
        logs.check({"LogConfig": config})


def test_max_file_without_max_size_is_taken_as_dockerd_takes_it():
    from minicontainer.engine import logs

    logs.check({"LogConfig": {"Type": "json-file", "Config": {"max-file": "100"}}})  # one file: never more than 100
    host = {"LogConfig": {"Type": "", "Config": {"max-file": "100"}}}
    logs.check(host)
    assert host["LogConfig"] == {"Type": "json-file", "Config": {"max-file": "100"}}  # inspect shows the default
