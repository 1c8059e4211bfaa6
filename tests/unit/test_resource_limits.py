"""docker's limits flags -> HostConfig -> OCI resources (engine/resources.py), the stats document
(engine/stats.py) and the columns docker stats prints from it (observe/stats.py)."""

from __future__ import annotations

import os

import pytest

from minicontainer.engine import resources
from minicontainer.engine.errors import Conflict, InvalidParameter
from minicontainer.engine.stats import Sample, document
from minicontainer.kernel.cgroups import CgroupStats, Limits
from minicontainer.kernel.cgroups.base import IOEntry
from minicontainer.observe.stats import columns, cpu_percent, memory_used

MiB = 1 << 20


@pytest.mark.parametrize(("host", "message"), [
    ({"Memory": 4 * MiB}, "Minimum memory limit allowed is 6MB"),
    ({"MemoryReservation": MiB}, "Minimum memory reservation allowed is 6MB"),
    ({"Memory": 32 * MiB, "MemoryReservation": 64 * MiB}, "can not be less than memory reservation"),
    ({"MemorySwap": 64 * MiB}, "You should always set the Memory limit"),
    ({"Memory": 64 * MiB, "MemorySwap": 32 * MiB}, "memoryswap limit should be larger than memory limit"),
    ({"NanoCpus": 10**9, "CpuPeriod": 100000}, "Nano CPUs and CPU Period cannot both be set"),
    ({"NanoCpus": -1}, "range of CPUs is from 0.01 to"),
    ({"CpuPeriod": 500}, "CPU cfs period can not be less than 1ms"),
    ({"CpuQuota": 999}, "CPU cfs quota can not be less than 1ms"),
    ({"CpuShares": -2}, "invalid CPU shares (-2)"),
    ({"BlkioWeight": 5}, "Range of blkio weight is from 10 to 1000"),
    ({"CpusetCpus": "0-x"}, "Invalid value 0-x for cpuset cpus"),
    ({"CpusetCpus": "4096"}, "Requested CPUs are not available"),
])
def test_dockerds_checks(host, message):
    with pytest.raises(InvalidParameter, match=message.replace("(", r"\(").replace(")", r"\)")):
        resources.check(host)


def test_hostconfig_to_limits_and_oci():
    host = {"Memory": 64 * MiB, "NanoCpus": 500_000_000, "PidsLimit": 20, "CpuShares": 512, "CpusetCpus": "0"}
    limits = resources.limits(host)
    assert limits == Limits(memory_limit=64 * MiB, memory_swap=128 * MiB, cpu_shares=512, cpu_quota=50_000,
                            cpu_period=100_000, cpuset_cpus="0", pids_limit=20)
    assert resources.oci_resources(limits) == {
        "memory": {"limit": 64 * MiB, "swap": 128 * MiB}, "cpu": {"shares": 512, "quota": 50_000, "period": 100_000,
                                                                  "cpus": "0"}, "pids": {"limit": 20}}
    assert resources.limits({"MemorySwap": -1}).memory_swap == -1
    assert resources.limits({"CpuQuota": 20_000, "CpuPeriod": 50_000}).cpu_quota == 20_000
    assert resources.with_default_swap({"Memory": 8 * MiB, "MemorySwap": 0})["MemorySwap"] == 16 * MiB


def test_update_changes_only_what_is_given():
    current = {**resources.FIELDS, "Memory": 64 * MiB, "MemorySwap": 128 * MiB, "NanoCpus": 10**9}
    fields, changes = resources.update(current, {"Memory": 96 * MiB, "CpuShares": 0, "PidsLimit": 0})
    assert fields["Memory"] == 96 * MiB and fields["MemorySwap"] == 128 * MiB and fields["PidsLimit"] == -1
    assert changes == Limits(memory_limit=96 * MiB, pids_limit=-1)
    with pytest.raises(InvalidParameter, match="update the memoryswap at the same time"):
        resources.update(current, {"Memory": 256 * MiB})
    with pytest.raises(Conflict, match="CPU Quota cannot be updated as NanoCPUs has already been set"):
        resources.update(current, {"CpuQuota": 50_000})
    fields, _ = resources.update(current, {"RestartPolicy": {"Name": "always"}})  # engine/restart.py's to apply
    assert "RestartPolicy" not in fields
    with pytest.raises(InvalidParameter, match="KernelMemory"):
        resources.update(current, {"KernelMemory": 10 * MiB})
    _fields, changes = resources.update(current, {"RestartPolicy": {"Name": "", "MaximumRetryCount": 0},
                                                  "KernelMemory": 0, "NanoCpus": 2 * 10**9 if os.cpu_count() > 1
                                                  else 10**9})
    assert changes.cpu_period == 100_000


class FakeContainer:
    id = "c" * 64
    name = "web"


class FakeCgroup:
    version = "v1"

    def __init__(self, stats: CgroupStats) -> None:
        self._stats = stats

    def stats(self) -> CgroupStats:
        return self._stats


def v1_stats(cpu_usec: int) -> CgroupStats:
    return CgroupStats(memory_usage=10 * MiB, memory_max_usage=12 * MiB, oom_kills=0, cpu_usage_usec=cpu_usec,
                       pids_current=3, cpu_user_usec=cpu_usec, cpu_system_usec=0, cpu_percpu_ns=(cpu_usec * 1000, 0),
                       cpu_periods=10, cpu_throttled_periods=4, cpu_throttled_usec=5000, memory_limit=64 * MiB,
                       memory_failcnt=0, memory_detail={"total_inactive_file": 2 * MiB, "cache": 3 * MiB},
                       pids_limit=None, io_bytes=(IOEntry(8, 0, "Read", 4096), IOEntry(8, 0, "Write", 1000)))


def test_the_stats_document_and_docker_columns():
    before = Sample(FakeCgroup(v1_stats(1_000_000)), 0)
    now = Sample(FakeCgroup(v1_stats(1_500_000)), 0)
    now.system_ns = before.system_ns + 2_000_000_000  # two CPUs for a second
    doc = document(FakeContainer(), now, before)
    assert doc["name"] == "/web" and doc["precpu_stats"]["cpu_usage"]["total_usage"] == 1_000_000_000
    assert doc["cpu_stats"]["throttling_data"] == {"periods": 10, "throttled_periods": 4, "throttled_time": 5_000_000}
    assert doc["memory_stats"]["max_usage"] == 12 * MiB and doc["pids_stats"] == {"current": 3}
    assert doc["blkio_stats"]["io_service_bytes_recursive"][0] == {"major": 8, "minor": 0, "op": "Read", "value": 4096}
    doc["cpu_stats"]["online_cpus"] = 2
    assert cpu_percent(doc) == pytest.approx(50.0)  # half a CPU
    assert memory_used(doc) == 8 * MiB
    row = columns(doc)
    assert row == {"Container": "cccccccccccc", "ID": "cccccccccccc", "Name": "web", "CPUPerc": "50.00%",
                   "MemUsage": "8MiB / 64MiB", "MemPerc": "12.50%", "NetIO": "0B / 0B", "BlockIO": "4.1kB / 1kB",
                   "PIDs": "3"}
    stopped = document(FakeContainer(), None, None)
    assert stopped == {"name": "/web", "id": "c" * 64, "read": "0001-01-01T00:00:00Z",
                       "preread": "0001-01-01T00:00:00Z"}
    first = document(FakeContainer(), now, None)  # a stream's first: no precpu
    assert "system_cpu_usage" not in first["precpu_stats"] and first["precpu_stats"]["cpu_usage"]["total_usage"] == 0


def test_v2_memory_is_usage_minus_inactive_file():
    assert memory_used({"memory_stats": {"usage": 100, "stats": {"inactive_file": 30}}}) == 70
    assert memory_used({"memory_stats": {"usage": 100, "stats": {"inactive_file": 300}}}) == 100
