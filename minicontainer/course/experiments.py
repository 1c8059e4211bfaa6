"""The cgroup experiments of notebook 3, each a function a cell calls (and a slider reruns).

Each starts a busybox container with a limit, samples what the kernel counts for its cgroup
(:mod:`minicontainer.observe.sampler`, the daemon's stats stream), and removes the container; the
series it returns is what :mod:`minicontainer.observe.plots` draws.
"""

from __future__ import annotations

import time
from typing import Any

from minicontainer.observe import plots
from minicontainer.observe.sampler import Sampler, Series

# awk keeps a 1 MiB string every 30 ms: memory rises steadily until the limit, where the OOM killer ends it.
ALLOCATE = ["awk", 'BEGIN { while (1) { a[i++] = sprintf("%1048576s", ""); system("sleep 0.03") } }']
BUSY = ["sh", "-c", "while :; do :; done"]  # one CPU's worth of work, for ever
# Forks until refused; "; exit 0" keeps the shell (else it would exec the last sleep in its own place).
FORK_LOOP = ["sh", "-c", "(while :; do sleep 60 & done) 2>/dev/null; sleep 60; exit 0"]


def memory_limit(client: Any, limit_mib: int, *, timeout: float = 20) -> tuple[Series, dict]:
    """The allocating program under ``limit_mib`` MiB: its series (up to the OOM kill) and final State."""
    box = client.containers.create("busybox", ALLOCATE, mem_limit=f"{limit_mib}m")
    try:
        box.start()
        series = box.sample(duration=timeout, interval=0.05)
        box.wait()
        box.reload()
        return series, box.attrs["State"]
    finally:
        box.remove(force=True)


def cpu_quota(client: Any, cpus: float, *, seconds: float = 2) -> Series:
    """A busy loop under a quota of ``cpus`` CPUs, sampled for ``seconds``."""
    box = client.containers.run("busybox", BUSY, detach=True, nano_cpus=int(cpus * 1e9))
    try:
        time.sleep(0.2)
        return box.sample(duration=seconds, interval=0.2)
    finally:
        box.remove(force=True)


def pids_limit(client: Any, limit: int, *, timeout: float = 10) -> Series:
    """A fork loop under ``limit`` processes: sampled from its start until it is held at the limit."""
    box = client.containers.create("busybox", FORK_LOOP, pids_limit=limit)
    sampler = Sampler(client, [box], interval=0.05)
    try:
        box.start()
        sampler.start()
        deadline = time.monotonic() + timeout
        while box.stats(stream=False, one_shot=True)["pids_stats"].get("current", 0) < limit and \
                time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        return sampler.stop()[0]
    finally:
        box.remove(force=True)


def pause_and_unpause(client: Any, *, each: float = 1.0) -> Series:
    """A busy loop sampled while it runs, is paused (the freezer), then unpaused, ``each`` seconds apart."""
    box = client.containers.run("busybox", BUSY, detach=True)
    try:
        sampler = Sampler(client, [box], interval=0.1).start()
        time.sleep(each)
        box.pause()
        time.sleep(each)
        box.unpause()
        time.sleep(each)
        return sampler.stop()[0]
    finally:
        box.remove(force=True)


def memory_slider(client: Any, start: int = 32) -> Any:
    """A slider for the memory limit; moving it reruns :func:`memory_limit` and redraws its plot."""
    import ipywidgets
    from IPython.display import display

    slider = ipywidgets.IntSlider(value=start, min=16, max=96, step=16, description="limit (MiB)",
                                  continuous_update=False)
    out = ipywidgets.Output()

    def rerun(limit: int) -> None:
        series, state = memory_limit(client, limit)
        with out:
            out.clear_output(wait=True)
            print(f"limit {limit} MiB: OOMKilled={state['OOMKilled']}, exit code {state['ExitCode']}, "
                  f"after {series[-1].t:.2f} s")
            display(plots.memory(series))

    slider.observe(lambda change: rerun(change["new"]), names="value")
    rerun(start)
    return ipywidgets.VBox([slider, out])
