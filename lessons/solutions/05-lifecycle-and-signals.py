"""Solutions to the exercises of notebook 5, Lifecycle and signals (instructors' copy).  See
01-hello-world.py for the shape of this file."""

SOLUTIONS = {
    "lifecycle/sigkill-code": 137,
    "lifecycle/fast-stop": {"init": True},
    "lifecycle/events": ["create", "start", "die", "destroy"],
}

WRONG = {
    "lifecycle/sigkill-code": 143,  # death by SIGTERM: but the program ignored it
    "lifecycle/fast-stop": {"auto_remove": True},  # still sleep as PID 1
    "lifecycle/events": ["create", "start", "stop", "destroy"],  # nobody stopped it
}


def context(client) -> dict[str, dict]:
    return {"lifecycle/fast-stop": {"client": client}, "lifecycle/events": {"client": client}}
