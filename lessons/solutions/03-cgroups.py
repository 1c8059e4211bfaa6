"""Solutions to the exercises of notebook 3, cgroups (instructors' copy).  See 01-hello-world.py for the
shape of this file."""


def was_oom_killed(container):
    return container.attrs["State"]["OOMKilled"]


SOLUTIONS = {
    "cgroups/oom-killed": was_oom_killed,
    "cgroups/quarter-cpu": 250_000_000,
}

WRONG = {
    "cgroups/oom-killed": lambda container: container.attrs["State"]["ExitCode"] == 137,  # any SIGKILL
    "cgroups/quarter-cpu": 0.25,  # CPUs, not nano-CPUs
}


def context(client) -> dict[str, dict]:
    return {key: {"client": client} for key in SOLUTIONS}
