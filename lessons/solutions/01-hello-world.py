"""Solutions to the exercises of notebook 1, What happens when you run hello-world (instructors' copy).

``SOLUTIONS`` are accepted answers, ``WRONG`` the most common wrong ones (each must be refused with a
hint); ``context(client)`` gives what each check needs besides the answer.  tests/integration/
test_notebooks.py runs every check against both.
"""

from minicontainer.course import timeline


def image_of(container):
    # The image, by its ID (the sha256 of its config), is recorded in the container at create.
    return container.attrs["Image"]


def init_mounts(events):
    return sum(1 for e in events if e["op"] == "mount" and e["side"] == "init")


SOLUTIONS = {
    "hello-world/image-id": image_of,
    "hello-world/exec-side": "init",
    "hello-world/init-mounts": init_mounts,
}

WRONG = {
    "hello-world/image-id": lambda container: container.id,  # the container's own ID
    "hello-world/exec-side": "stage1",  # stage1 made the namespaces, but exited after its fork
    "hello-world/init-mounts": lambda events: sum(1 for e in events if e["op"] == "mount"),  # the parent's too
}


def context(client) -> dict[str, dict]:
    """A fresh run of hello-world, whose recorded events the mount-counting check reads."""
    container = client.containers.create("hello-world")
    try:
        container.start()
        container.wait()
        events = timeline.events_of(client, container)
    finally:
        container.remove(force=True)
    return {"hello-world/image-id": {"client": client}, "hello-world/init-mounts": {"events": events}}
