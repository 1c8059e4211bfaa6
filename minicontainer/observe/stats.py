"""From a stats document (``GET /containers/{id}/stats``) to the numbers people read.

The daemon sends raw counters; turning them into rates and percentages is the client's job, and
this module does it exactly as the docker CLI does (``cli/command/container/stats_helpers.go``), so
that ``minicontainer stats`` and ``docker stats`` print the same columns for the same container:

* **CPU %**: the container's CPU time over the whole host's, between ``precpu_stats`` and
  ``cpu_stats``, times the number of CPUs, times 100: 50% is half of one CPU; 200% two full CPUs;
* **MEM USAGE**: ``usage`` minus the inactive page cache (file data the kernel can drop at once);
  **MEM %** that over ``limit`` (the host's memory when there is no limit);
* **NET I/O** and **BLOCK I/O**: bytes received / sent, read / written, since the start;
* **PIDS**: processes and threads now.

Standard library only: the CLI and a non-root notebook kernel import it.
"""

from __future__ import annotations

from minicontainer.units import human_size


def cpu_percent(doc: dict) -> float:
    """0 unless both the container's and the host's CPU time grew between the two readings."""
    cpu, pre = doc.get("cpu_stats") or {}, doc.get("precpu_stats") or {}
    used = (cpu.get("cpu_usage") or {}).get("total_usage", 0) - (pre.get("cpu_usage") or {}).get("total_usage", 0)
    system = (cpu.get("system_cpu_usage") or 0) - (pre.get("system_cpu_usage") or 0)
    cpus = cpu.get("online_cpus") or len((cpu.get("cpu_usage") or {}).get("percpu_usage") or [])
    if used > 0 and system > 0:
        return used / system * cpus * 100
    return 0.0


def memory_used(doc: dict) -> int:
    """docker's rule: v1's ``total_inactive_file`` or v2's ``inactive_file`` is not counted as used."""
    memory = doc.get("memory_stats") or {}
    usage, stats = memory.get("usage") or 0, memory.get("stats") or {}
    v1 = stats.get("total_inactive_file")
    if v1 is not None and v1 < usage:
        return usage - v1
    v2 = stats.get("inactive_file", 0)
    return usage - v2 if v2 < usage else usage


def memory_percent(doc: dict) -> float:
    limit = (doc.get("memory_stats") or {}).get("limit") or 0
    return memory_used(doc) / limit * 100 if limit else 0.0


def network_io(doc: dict) -> tuple[int, int]:
    """Bytes received and sent on every interface."""
    nets = (doc.get("networks") or {}).values()
    return sum(n.get("rx_bytes", 0) for n in nets), sum(n.get("tx_bytes", 0) for n in nets)


def block_io(doc: dict) -> tuple[int, int]:
    """Bytes read and written: v1 names the operations Read/Write, v2 read/write."""
    entries = (doc.get("blkio_stats") or {}).get("io_service_bytes_recursive") or []
    read = sum(e["value"] for e in entries if e.get("op", "")[:1].lower() == "r")
    written = sum(e["value"] for e in entries if e.get("op", "")[:1].lower() == "w")
    return read, written


def binary_size(size: float) -> str:
    """``528KiB``, ``64MiB``: 1024-based, 4 significant digits, as docker's units.BytesSize."""
    return human_size(size, binary=True)


def columns(doc: dict, *, no_trunc: bool = False, name: str | None = None) -> dict[str, str]:
    """The fields of ``docker stats --format``: .ID .Name .CPUPerc .MemUsage .MemPerc .NetIO .BlockIO
    .PIDs (and .Container, the name or ID the user gave)."""
    cid = doc.get("id", "")
    rx, tx = network_io(doc)
    read, written = block_io(doc)
    limit = (doc.get("memory_stats") or {}).get("limit") or 0
    return {"Container": name or cid[:12], "ID": cid if no_trunc else cid[:12],
            "Name": doc.get("name", "").lstrip("/"), "CPUPerc": f"{cpu_percent(doc):.2f}%",
            "MemUsage": f"{binary_size(memory_used(doc))} / {binary_size(limit)}",
            "MemPerc": f"{memory_percent(doc):.2f}%",
            "NetIO": f"{human_size(rx)} / {human_size(tx)}",
            "BlockIO": f"{human_size(read)} / {human_size(written)}",
            "PIDs": str((doc.get("pids_stats") or {}).get("current", 0))}


# The titles `--format "table ..."` gives each field, and docker's default table.
TITLES = {"Container": "CONTAINER", "ID": "CONTAINER ID", "Name": "NAME", "CPUPerc": "CPU %",
          "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET I/O", "BlockIO": "BLOCK I/O",
          "PIDs": "PIDS"}
DEFAULT_FORMAT = "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}"
