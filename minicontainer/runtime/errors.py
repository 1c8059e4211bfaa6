"""Failures of the runtime, and the exit codes Docker gives them.

Docker's convention, which ``minicontainer-runtime run`` follows so that a shell script can tell who
failed:

======  ==============================================================
125     the runtime itself failed (bad config, a mount that failed...)
126     the program exists but could not be executed (not executable)
127     the program was not found
N       otherwise the program's own exit status
128+N   the program was killed by signal N (137 = SIGKILL, 143 = SIGTERM)
======  ==============================================================
"""

from __future__ import annotations

EXIT_RUNTIME_FAILURE = 125
EXIT_NOT_EXECUTABLE = 126
EXIT_NOT_FOUND = 127


class RuntimeFailure(Exception):
    """Anything that stops the runtime from doing what it was asked; the message says what to do."""

    exit_code = EXIT_RUNTIME_FAILURE

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class ContainerNotFound(RuntimeFailure):
    def __init__(self, container_id: str) -> None:
        super().__init__(f"container '{container_id}' does not exist (`minicontainer-runtime list` shows those "
                         "that do)")
