"""Container names as Docker makes them when none is given: ``adjective_noun`` (``brave_ritchie``).

The nouns are people whose work the course stands on: the authors of Unix, of Linux and of the
kernel features containers are made of.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from typing import Any

from minicontainer.engine.errors import Conflict, InvalidParameter

ADJECTIVES = (
    "admiring", "agile", "amazing", "bold", "brave", "bright", "calm", "clever", "cool", "curious", "daring",
    "eager", "elastic", "epic", "fervent", "focused", "friendly", "gallant", "gentle", "happy", "hopeful",
    "jolly", "keen", "kind", "lucid", "modest", "nimble", "patient", "peaceful", "quirky", "relaxed",
    "serene", "sharp", "stoic", "tender", "trusting", "upbeat", "vibrant", "wizardly", "zealous",
)

NOUNS = (
    "thompson",  # Ken Thompson: Unix
    "ritchie",  # Dennis Ritchie: Unix and C
    "mcilroy",  # Doug McIlroy: pipes
    "kernighan",  # Brian Kernighan
    "joy",  # Bill Joy: chroot in BSD (1982), the first step toward containers
    "torvalds",  # Linus Torvalds: Linux
    "biederman",  # Eric Biederman: PID and user namespaces
    "menage",  # Paul Menage: cgroups
    "heo",  # Tejun Heo: cgroup v2
    "viro",  # Al Viro: the VFS and mount namespaces
    "kamp",  # Poul-Henning Kamp: FreeBSD jails
    "hykes",  # Solomon Hykes: Docker
    "lamport",  # Leslie Lamport
    "hopper",  # Grace Hopper
    "lovelace",  # Ada Lovelace
    "turing",  # Alan Turing
    "dijkstra",  # Edsger Dijkstra
    "liskov",  # Barbara Liskov
    "hamilton",  # Margaret Hamilton
    "allen",  # Frances Allen
    "knuth",  # Donald Knuth
    "stallman",  # Richard Stallman: GNU
    "tanenbaum",  # Andrew Tanenbaum: MINIX
    "corbato",  # Fernando Corbató: time-sharing
    "saltzer",  # Jerome Saltzer: least privilege
    "bach",  # Maurice Bach: the design of the Unix operating system
    "pike",  # Rob Pike: Plan 9, whose namespaces inspired Linux's
    "presotto",  # Dave Presotto: Plan 9
)


def generate(taken: set[str], rng: random.Random | None = None) -> str:
    """A name not in ``taken``; after many collisions a digit is added, as Docker does."""
    rng = rng or random.SystemRandom()
    for attempt in range(100):
        name = f"{rng.choice(ADJECTIVES)}_{rng.choice(NOUNS)}"
        if attempt > 10:
            name += str(rng.randint(0, 9))
        if name not in taken:
            return name
    raise RuntimeError("no free container name found")


# Docker's rule for a name a user gives: a letter or digit, then letters, digits, "_", "." or "-".
VALID_NAME = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$")


def check(name: str) -> None:
    """Raise ValueError, with docker's message, for a name docker would refuse."""
    if not VALID_NAME.match(name):
        raise ValueError(f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")


def in_use(name: str, other_id: str) -> Conflict:
    """Docker's words (a 409) for a name another container has."""
    return Conflict(f'Conflict. The container name "/{name}" is already in use by container "{other_id}". '
                    "You have to remove (or rename) that container to be able to reuse that name.")


class Renaming:
    """``docker rename``, for :class:`~minicontainer.engine.service.Engine` (which inherits this).

    A name is only the record's: the kernel knows the container by its ID (its cgroup, its runtime
    state are named after the ID), so a running container can be renamed too."""

    containers: dict
    get: Callable[[str], Any]
    event_log: Any

    def rename(self, ref: str, new_name: str) -> None:
        container = self.get(ref)
        new_name = (new_name or "").lstrip("/")
        if not new_name:
            raise InvalidParameter("Neither old nor new names may be empty")
        try:
            check(new_name)
        except ValueError as e:
            raise InvalidParameter(str(e)) from None
        if new_name == container.name:
            raise InvalidParameter("Renaming a container with the same name as its current name")
        other = next((c for c in self.containers.values() if c.name == new_name), None)
        if other is not None:
            raise in_use(new_name, other.id)
        old_name = container.record["Name"]
        container.record["Name"] = "/" + new_name
        container.save()
        self.event_log.container(container, "rename", oldName=old_name)
