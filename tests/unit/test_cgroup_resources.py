"""Reading, changing and freezing a container's cgroup (stats, update, pause) on fake v1 and v2 trees."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_cgroups import HYBRID_MOUNTINFO, HYBRID_SELF, V2_MOUNTINFO, V2_SELF, v1_host, v2_host

from minicontainer.kernel.cgroups import CgroupV1, CgroupV2, Limits, detect, open_cgroup
from minicontainer.kernel.cgroups.base import CgroupError, IOEntry

MiB = 1 << 20


@pytest.fixture
def v1(tmp_path: Path):
    sys, layout = v1_host(tmp_path, HYBRID_MOUNTINFO, HYBRID_SELF)
    cg = open_cgroup(sys, "mc/c1", layout=layout)
    cg.create()
    assert isinstance(cg, CgroupV1)
    return sys, cg


@pytest.fixture
def v2(tmp_path: Path):
    sys, _own = v2_host(tmp_path)
    cg = open_cgroup(sys, "mc/c1", layout=detect(V2_MOUNTINFO, V2_SELF, root=str(tmp_path)))
    cg.apply(Limits())
    assert isinstance(cg, CgroupV2)
    return sys, cg


def test_v1_stats_read_every_counter_docker_shows(v1):
    _sys, cg = v1
    d = cg.paths
    Path(d["cpuacct"], "cpuacct.stat").write_text("user 150\nsystem 50\n")
    Path(d["cpuacct"], "cpuacct.usage_percpu").write_text("3000000 2000000 \n")
    Path(d["cpu"], "cpu.stat").write_text("nr_periods 40\nnr_throttled 12\nthrottled_time 900000000\n")
    Path(d["memory"], "memory.limit_in_bytes").write_text(f"{32 * MiB}\n")
    Path(d["memory"], "memory.failcnt").write_text("7\n")
    Path(d["memory"], "memory.stat").write_text("cache 4096\nrss 8192\ntotal_inactive_file 1024\n")
    Path(d["pids"], "pids.max").write_text("20\n")
    s = cg.stats()
    assert s.cpu_usage_usec == 5000 and s.cpu_percpu_ns == (3000000, 2000000)
    assert (s.cpu_user_usec, s.cpu_system_usec) == (1_500_000, 500_000)  # ticks of 1/100 s
    assert (s.cpu_periods, s.cpu_throttled_periods, s.cpu_throttled_usec) == (40, 12, 900000)
    assert (s.memory_usage, s.memory_max_usage, s.memory_limit, s.memory_failcnt) == (4096, 8192, 32 * MiB, 7)
    assert s.memory_detail == {"cache": 4096, "rss": 8192, "total_inactive_file": 1024}
    assert (s.pids_current, s.pids_limit, s.oom_kills) == (1, 20, 2)
    assert s.io_bytes == (IOEntry(8, 0, "Read", 4096), IOEntry(8, 0, "Write", 512), IOEntry(8, 0, "Total", 4608))


def test_v1_unlimited_memory_reads_as_none(v1):
    assert v1[1].stats().memory_limit is None  # 9223372036854771712: v1's "no limit"


def test_v2_stats(v2):
    _sys, cg = v2
    d = cg.directory
    Path(d, "cpu.stat").write_text("usage_usec 9000\nuser_usec 6000\nsystem_usec 3000\nnr_periods 10\n"
                                   "nr_throttled 4\nthrottled_usec 120000\n")
    Path(d, "memory.max").write_text(f"{64 * MiB}\n")
    Path(d, "memory.stat").write_text("anon 8192\nfile 4096\ninactive_file 2048\n")
    Path(d, "io.stat").write_text("8:16 rbytes=1024 wbytes=4096 rios=1 wios=2 dbytes=0 dios=0\n")
    s = cg.stats()
    assert (s.cpu_usage_usec, s.cpu_user_usec, s.cpu_system_usec) == (9000, 6000, 3000)
    assert (s.cpu_periods, s.cpu_throttled_periods, s.cpu_throttled_usec) == (10, 4, 120000)
    assert s.memory_limit == 64 * MiB and s.memory_failcnt == 0 and s.oom_kills == 3
    assert s.memory_detail == {"anon": 8192, "file": 4096, "inactive_file": 2048}
    assert s.pids_limit is None and s.cpu_percpu_ns is None
    assert s.io_bytes == (IOEntry(8, 16, "read", 1024), IOEntry(8, 16, "write", 4096))


def test_v1_freeze_and_thaw(v1):
    _sys, cg = v1
    cg.freeze()
    state = Path(cg.paths["freezer"], "freezer.state")
    assert state.read_text() == "FROZEN"
    cg.thaw()
    assert state.read_text() == "THAWED"


def test_v2_freeze_waits_for_the_kernel_to_say_frozen(v2):
    _sys, cg = v2
    cg.freeze()
    assert Path(cg.directory, "cgroup.freeze").read_text() == "1"
    assert "frozen 1" in Path(cg.directory, "cgroup.events").read_text()
    cg.thaw()
    assert Path(cg.directory, "cgroup.freeze").read_text() == "0"


def test_v2_freeze_that_never_completes_is_an_error(v2, monkeypatch):
    sys, cg = v2
    real = sys.write_file

    def stuck(path, data, *, detail=""):  # the freeze is asked for, but a task never stops
        real(path, data, detail=detail)
        if path.endswith("cgroup.freeze"):
            Path(path).with_name("cgroup.events").write_text("populated 1\nfrozen 0\n")

    monkeypatch.setattr(sys, "write_file", stuck)
    with pytest.raises(CgroupError, match="did not freeze within a second"):
        cg.freeze()


def test_v1_update_raising_memory_writes_memsw_first(v1):
    sys, cg = v1
    cg.apply(Limits(memory_limit=32 * MiB, memory_swap=64 * MiB))
    start = len(sys.writes())
    cg.update(Limits(memory_limit=128 * MiB, memory_swap=256 * MiB))
    knobs = [Path(p).name for p, _ in sys.writes()[start:]]
    assert knobs == ["memory.memsw.limit_in_bytes", "memory.limit_in_bytes"]
    start = len(sys.writes())
    cg.update(Limits(memory_limit=16 * MiB, memory_swap=32 * MiB))  # lowering: memory first
    assert [Path(p).name for p, _ in sys.writes()[start:]] == ["memory.limit_in_bytes",
                                                                "memory.memsw.limit_in_bytes"]
    assert sys.written(f"{cg.paths['memory']}/memory.limit_in_bytes") == str(16 * MiB)


def test_v2_update_of_the_period_alone_keeps_the_quota(v2):
    sys, cg = v2
    cg.update(Limits(cpu_quota=50000, cpu_period=100000))
    cg.update(Limits(cpu_period=200000))
    assert sys.written(f"{cg.directory}/cpu.max") == "50000 200000"
    cg.update(Limits(cpu_quota=-1))
    assert sys.written(f"{cg.directory}/cpu.max") == "max 200000"


def test_blkio_weight_where_the_kernel_has_none_is_an_error(v1):
    with pytest.raises(CgroupError, match="blockIO.weight: this kernel's blkio controller has no weight"):
        v1[1].update(Limits(blkio_weight=300))


def test_limits_changes_lists_what_is_set():
    assert Limits(memory_limit=1, pids_limit=5).changes() == {"memory_limit": 1, "pids_limit": 5}
