"""Starter images for a machine with no network: built from the host's own binaries.

A classroom behind a firewall, a laptop on a train: ``minicontainer starter`` (and ``make demo``)
builds three images into the store, so that ``minicontainer run busybox`` and the course work with
no registry at all.  Each is labelled ``org.minicontainer.built-locally=true``.

* ``busybox``: Debian's busybox-static, one static binary, and a link per command it implements.
* ``hello-world``: the smallest program that can greet you, written out byte by byte below: an ELF
  header, one program header, and three system calls (write, exit).  No libc, no loader: the kernel
  maps the file and jumps to its first instruction.
* ``redis``: the host's ``redis-server`` and ``redis-cli`` with the shared libraries ``ldd`` says
  they need, and busybox for a shell (``exec -it ID redis-cli``, ``exec -it ID sh``).

Each is **reproducible**: every file's time, and the image's creation time, is the newest
modification time of the host files it is made from (hello-world's: a fixed date).  The same host
binaries give the same layers, hence the same image ID, so building again changes nothing (and leaves
no untagged image behind); after an upgrade of the host's redis, the image is new.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import tempfile
from collections.abc import Callable

from minicontainer.image import builder
from minicontainer.runtime.busybox import find_static_busybox, make_rootfs

LABELS = {"org.minicontainer.built-locally": "true"}

GREETING = b"""
Hello from minicontainer!
This message shows that your installation appears to be working correctly.

To generate this message, minicontainer:
 1. found the "hello-world" image in its store (a program of a few hundred bytes, built locally),
 2. stacked the image's layer with overlayfs into a root filesystem for the container,
 3. started this program in new namespaces, as PID 1, after pivot_root into that filesystem,
 4. passed its output on to your terminal.

Try something more ambitious: minicontainer run busybox sh -c 'hostname; ps'
"""


def hello_elf(machine: str | None = None, message: bytes = GREETING) -> bytes:
    """A static ELF executable that writes ``message`` to stdout and exits 0.

    Layout: ELF header (64 bytes), one PT_LOAD program header (56 bytes) mapping the whole file at
    0x400000, then the code, then the message.
    """
    machine = machine or os.uname().machine
    base, code_at = 0x400000, 64 + 56
    if machine == "x86_64":
        e_machine = 0x3E
        code = b"".join([
            b"\xb8\x01\x00\x00\x00",  # mov eax, 1        write(
            b"\xbf\x01\x00\x00\x00",  # mov edi, 1          fd 1 = stdout,
            b"\x48\x8d\x35" + struct.pack("<i", 16),  # lea rsi, [rip+16]  the message (16 bytes on)
            b"\xba" + struct.pack("<I", len(message)),  # mov edx, len          its length)
            b"\x0f\x05",  # syscall
            b"\xb8\x3c\x00\x00\x00",  # mov eax, 60       exit(
            b"\x31\xff",  # xor edi, edi        0)
            b"\x0f\x05",  # syscall
        ])
    elif machine == "aarch64":
        e_machine = 0xB7
        words = [
            0xD2800020,  # mov x0, #1          write(stdout,
            0x100000E1,  # adr x1, +28           the message (7 instructions on),
            0xD2800002 | (len(message) << 5),  # mov x2, #len   its length)
            0xD2800808,  # mov x8, #64         (64 = write)
            0xD4000001,  # svc #0
            0xD2800000,  # mov x0, #0          exit(0)
            0xD2800BA8,  # mov x8, #93         (93 = exit)
            0xD4000001,  # svc #0
        ]
        code = struct.pack("<8I", *words)
    else:
        raise ValueError(f"no hello-world program for {machine} (x86_64 and aarch64 only)")
    total = code_at + len(code) + len(message)
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)  # 64-bit, little-endian, version 1, System V
    header = ident + struct.pack("<HHIQQQIHHHHHH", 2, e_machine, 1, base + code_at, 64, 0, 0, 64, 56, 1, 0, 0, 0)
    program_header = struct.pack("<IIQQQQQQ", 1, 5, 0, base, base, total, total, 0x1000)  # PT_LOAD, R+X
    return header + program_header + code + message


HELLO_EPOCH = 1_767_225_600  # 2026-01-01: hello-world is made from this file's bytes, not from host files


def _busybox(root: str) -> builder.BuiltImage:
    make_rootfs(root)
    return builder.build([root], cmd=["sh"], labels=LABELS, mtime=newest_mtime([find_static_busybox()]),
                         created_by=["COPY /bin/busybox (host's busybox-static)"])


def _hello_world(root: str) -> builder.BuiltImage:
    path = os.path.join(root, "hello")
    with open(path, "wb") as f:
        f.write(hello_elf())
    os.chmod(path, 0o755)
    return builder.build([root], cmd=["/hello"], labels=LABELS, mtime=HELLO_EPOCH,
                         created_by=["COPY hello (a hand-made ELF)"])


def _redis(root: str) -> builder.BuiltImage:
    make_rootfs(root)  # busybox: a shell and the usual commands, for `exec -it ID sh`
    programs = []
    for name in ("redis-server", "redis-cli"):
        found = shutil.which(name)
        if not found:
            raise FileNotFoundError(f"{name} is not installed (apt-get install redis-server)")
        programs.append(os.path.realpath(found))
    files = sorted(set(programs + [lib for program in programs for lib in shared_libraries(program)]))
    for src in files:
        dest = os.path.join(root, src.lstrip("/"))
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        shutil.copy2(src, dest)
    os.makedirs(os.path.join(root, "usr/bin"), exist_ok=True)
    for name, program in zip(("redis-server", "redis-cli"), programs, strict=True):
        link = os.path.join(root, "usr/bin", name)
        if not os.path.lexists(link):
            os.symlink(os.path.relpath(os.path.join(root, program.lstrip("/")), os.path.join(root, "usr/bin")), link)
    os.makedirs(os.path.join(root, "data"), exist_ok=True)
    with open(os.path.join(root, "etc/passwd"), "w") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\nredis:x:999:999:redis:/data:/bin/false\n"
                "nobody:x:65534:65534:nobody:/:/bin/false\n")
    with open(os.path.join(root, "etc/group"), "w") as f:
        f.write("root:x:0:\nredis:x:999:\nnogroup:x:65534:\n")
    return builder.build([root], cmd=["redis-server", "--protected-mode", "no"], working_dir="/data",
                         labels=LABELS, mtime=newest_mtime([find_static_busybox(), *files]),
                         created_by=["COPY redis-server, redis-cli, their libraries and busybox from the host"])


def newest_mtime(paths: list[str]) -> int:
    """The newest modification time of the host files an image is made from: its files' time."""
    return max(int(os.stat(path).st_mtime) for path in paths)


def shared_libraries(binary: str) -> list[str]:
    """The shared libraries a dynamically linked program loads, and its loader, as ``ldd`` lists them."""
    out = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
    libs = []
    for line in out.splitlines():
        parts = line.split()
        for part in parts:
            if part.startswith("/") and os.path.exists(part):
                libs.append(part)
    return sorted(set(libs))


STARTERS: dict[str, Callable[[str], builder.BuiltImage]] = {
    "busybox": _busybox,
    "hello-world": _hello_world,
    "redis": _redis,
}


def build_starter(name: str) -> builder.BuiltImage:
    work = tempfile.mkdtemp(prefix=f"minicontainer-starter-{name}-")
    try:
        root = os.path.join(work, "rootfs")
        os.mkdir(root)
        return STARTERS[name](root)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def install_starter(store, name: str):
    """Build starter image ``name`` and put it in ``store`` as ``docker.io/library/<name>:latest``."""
    from minicontainer.image.pull import install

    built = build_starter(name)
    with store.lease():  # no garbage collection (an rmi, a prune) may take the blobs before the record
        for layer in built.layers:
            store.put_blob(layer.data, layer.digest)
        store.put_blob(built.config, built.image_id)
        store.put_blob(built.manifest, built.manifest_digest)
        return install(store, built.manifest, built.config, repo_tag=f"docker.io/library/{name}:latest")
